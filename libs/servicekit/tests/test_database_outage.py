"""A request that needs the database while it cannot be reached answers 503 with a message
(and Retry-After), at once: not a 500, not a hang. A query the database refuses is still an
error of ours (500), not an outage."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from eas_testkit.servers import LocalPostgres
from servicekit.db import make_engine
from servicekit.embedded import free_port
from servicekit.errors import DATABASE_UNAVAILABLE, install_error_handlers

pytestmark = pytest.mark.integration


def app_on(url: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    engine = make_engine(url)

    @app.get("/read")
    async def read() -> dict[str, int]:
        async with engine.connect() as conn:
            return {"one": int((await conn.execute(text("select 1"))).scalar_one())}

    @app.get("/bad")
    async def bad() -> dict[str, int]:
        async with engine.connect() as conn:
            await conn.execute(text("select * from no_such_table"))
        return {}

    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_nothing_listening_is_a_503_with_a_message() -> None:
    app = app_on(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    answer = await get(app, "/read")
    assert answer.status_code == 503
    assert answer.json() == {"detail": DATABASE_UNAVAILABLE}
    assert answer.headers["retry-after"] == "5"


async def test_a_server_stopped_under_open_connections_is_a_503_then_recovers() -> None:
    cluster = LocalPostgres()
    try:
        app = app_on(cluster.start())
        assert (await get(app, "/read")).json() == {"one": 1}  # the pool now holds a connection
        cluster.stop_fast()
        started = time.monotonic()
        answer = await get(app, "/read")
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"] == DATABASE_UNAVAILABLE
        assert time.monotonic() - started < 30  # bounded, never asyncpg's 60 s connect wait
        cluster.start()
        assert (await get(app, "/read")).json() == {"one": 1}
    finally:
        cluster.stop()


async def test_a_query_the_database_refuses_is_not_an_outage(postgres_admin_url: str) -> None:
    answer = await get(app_on(postgres_admin_url), "/bad")
    assert answer.status_code == 500
