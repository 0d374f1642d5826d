"""Schema migrations (Alembic) for PostgreSQL and SQLite, run before the service starts."""

from __future__ import annotations

from pathlib import Path

from servicekit import migrations

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_audio_control"


async def upgrade_url(url: str, revision: str = "head") -> None:
    await migrations.upgrade_url(url, MIGRATIONS, VERSION_TABLE, revision)
