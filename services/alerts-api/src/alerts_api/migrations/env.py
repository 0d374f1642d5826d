"""Alembic environment: runs on the connection handed in by `alerts-api migrate`."""

from alerts_api.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
