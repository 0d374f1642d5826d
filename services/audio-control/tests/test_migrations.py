"""The Alembic history builds exactly the tables the code uses, on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from audio_control.migrate import VERSION_TABLE, upgrade_url
from audio_control.tables import metadata
from servicekit.db import make_engine

pytestmark = pytest.mark.integration


async def _diff(url: str) -> list[Any]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "compare_type": True,
                        "version_table": VERSION_TABLE,
                        "include_name": lambda name, type_, parent: (
                            type_ != "table" or name in metadata.tables
                        ),
                    },
                )
                return list(compare_metadata(context, metadata))

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_schema_matches_on_postgresql(database_url: str) -> None:
    await upgrade_url(database_url)
    assert await _diff(database_url) == []


async def test_schema_matches_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audio.db'}"
    await upgrade_url(url)
    assert await _diff(url) == []
