"""Alembic environment: runs on the connection handed in by `eas-monitor migrate`."""

from eas_monitor.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
