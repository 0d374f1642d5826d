"""Running a service's Alembic migrations on PostgreSQL or SQLite.

Services may share one database (the one-machine mode does), so each keeps its own Alembic
version table (``alembic_version_<service>``) and its own table names; otherwise the second
service to migrate would find the first one's revision and skip its own tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.db import make_engine


def alembic_config(script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    return config


def _upgrade(connection: Any, script_location: Path, version_table: str, revision: str) -> None:
    config = alembic_config(script_location, version_table)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(
    engine: AsyncEngine, script_location: Path, version_table: str, revision: str = "head"
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, script_location, version_table, revision)


async def upgrade_url(
    url: str, script_location: Path, version_table: str, revision: str = "head"
) -> None:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
    engine = make_engine(url, pool_size=1)
    try:
        await upgrade(engine, script_location, version_table, revision)
    finally:
        await engine.dispose()


def run_env(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through the service's `migrate` command")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
