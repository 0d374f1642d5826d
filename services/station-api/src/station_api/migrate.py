"""Schema migrations (Alembic) for PostgreSQL and SQLite, run before the service starts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit import migrations

MIGRATIONS = Path(__file__).parent / "migrations"
# Its own version table: in one-machine mode the services share one database.
VERSION_TABLE = "alembic_version_station_api"


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await migrations.upgrade(engine, MIGRATIONS, VERSION_TABLE, revision)


async def upgrade_url(url: str, revision: str = "head") -> None:
    await migrations.upgrade_url(url, MIGRATIONS, VERSION_TABLE, revision)
