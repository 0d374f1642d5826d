"""Alembic environment: runs on the connection handed in by `audio-control migrate`."""

from audio_control.tables import metadata
from servicekit.migrations import run_env

run_env(metadata)
