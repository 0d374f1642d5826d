"""The Alembic history builds exactly the tables the code uses, on PostgreSQL and SQLite,
and the service runs on SQLite (the one-machine default) as well."""

from __future__ import annotations

from pathlib import Path

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect

from servicekit.db import make_engine
from station_api.app import create_app
from station_api.migrate import upgrade_url
from station_api.tables import metadata


async def _diff(url: str) -> list:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn):
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "compare_type": True,
                        "version_table": "alembic_version_station_api",
                        "include_name": lambda name, type_, parent: (
                            type_ != "table" or name in metadata.tables
                        ),
                    },
                )
                return compare_metadata(context, metadata), inspect(sync_conn).get_table_names()

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_schema_matches_on_postgresql(database_url):
    await upgrade_url(database_url)
    await upgrade_url(database_url)  # idempotent
    diff, tables = await _diff(database_url)
    assert diff == []
    assert "alembic_version_station_api" in tables and "alembic_version" not in tables


async def test_schema_matches_and_service_runs_on_sqlite(tmp_path: Path, settings):
    url = f"sqlite+aiosqlite:///{tmp_path / 'station.db'}"
    await upgrade_url(url)
    diff, _ = await _diff(url)
    assert diff == []
    app = create_app(settings.model_copy(update={"database_url": url}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
            setup = await http.post(
                "/api/auth/setup",
                json={
                    "setup_token": app.state.setup_token,
                    "username": "admin",
                    "password": "sqlite admin password",
                },
            )
            assert setup.status_code == 201
            login = await http.post(
                "/api/auth/token", data={"username": "admin", "password": "sqlite admin password"}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            http.cookies.clear()
            saved = await http.put(
                "/api/settings",
                json={"settings": {"identity": {"callsign": "KSQL"}}},
                headers=headers,
            )
            assert saved.json()["version"] == 1
            rotated = await http.post(
                "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
            )
            assert rotated.status_code == 200
            audit = await http.get("/api/audit", headers=headers)
            assert len(audit.json()["items"]) == 3
            last = await http.delete("/api/users/admin", headers=headers)
            assert last.status_code == 409
