"""A request that needs the database while it cannot be reached answers 503 with a message
(and Retry-After), at once: not a 500, not a hang. A query the database refuses is still an
error of ours (500), not an outage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from eas_schemas.envelope import EventEnvelope, encode_entry
from eas_testkit.servers import LocalPostgres
from servicekit.bus import stream_key
from servicekit.consumer import GroupConsumer
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


async def test_a_consumer_waits_out_a_database_outage_without_using_up_deliveries(
    aredis: Any, bus_namespace: str
) -> None:
    """Two replicas, one delivery allowed: the handler meets an unreachable database for
    longer than several min-idle periods, and the entry is still handled once, by the replica
    that first got it, with its delivery count unchanged and nothing dead-lettered."""
    attempts: list[str] = []
    outage = asyncio.Event()

    def handler(name: str) -> Any:
        async def handle(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
            attempts.append(name)
            if not outage.is_set():
                raise ConnectionRefusedError(111, "Connect call failed")

        return handle

    replicas = [
        GroupConsumer(
            aredis,
            "alerts.ingested",
            "g",
            name,
            handler(name),
            namespace=bus_namespace,
            min_idle_ms=200,
            block_ms=100,
            max_deliveries=1,
        )
        for name in ("one", "two")
    ]
    for c in replicas:
        await c.ensure_group()
    key = stream_key("alerts.ingested", bus_namespace)
    entry = envelope_fields()
    await aredis.xadd(key, entry)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in replicas]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(attempts) < 4 and loop.time() < deadline:  # > 2 s of outage, 10 min-idles
            await asyncio.sleep(0.05)
        assert len(attempts) >= 4
        outage.set()
        while sum(c.stats.handled for c in replicas) < 1 and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert sum(c.stats.handled for c in replicas) == 1
    assert sum(c.stats.dead_lettered for c in replicas) == 0
    assert set(attempts) == {attempts[0]}  # never reclaimed by the other replica
    assert await aredis.xlen(stream_key("bus.deadletter", bus_namespace)) == 0


def envelope_fields() -> dict[str, str]:
    return encode_entry(EventEnvelope[dict[str, Any]](type="test.item", source="t", data={"n": 1}))


async def test_heartbeats_name_the_database_while_it_is_down(
    redis_url: str, bus_namespace: str, aredis: Any
) -> None:
    """The bus stays up through a database outage: each heartbeat says which dependency failed
    (the checks /readyz makes), so the dashboard can say so without polling."""
    from eas_schemas.envelope import decode_entry
    from eas_schemas.streams import SERVICE_HEARTBEAT
    from servicekit.runtime import ServiceInfo, ServiceRuntime
    from servicekit.settings import StoreSettings

    cluster = LocalPostgres()
    settings = StoreSettings(
        database_url=cluster.start(),
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        heartbeat_interval_s=0.2,
        instance="beat-1",
    )
    runtime = ServiceRuntime(ServiceInfo("beat-test", "0.1.0", "t", "t"), settings)
    key = stream_key(SERVICE_HEARTBEAT, bus_namespace)

    async def beats_after(last: str) -> list[tuple[str, Any]]:
        rows = await aredis.xrange(key, min=f"({last}" if last != "0" else "-")
        return [(entry_id, decode_entry(f).data) for entry_id, f in rows]

    async def next_beat(last: str, want: Any) -> tuple[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for entry_id, beat in await beats_after(last):
                last = entry_id
                if want(beat):
                    return entry_id, beat
            await asyncio.sleep(0.1)
        raise AssertionError("no such heartbeat within 30 s")

    try:
        runtime.heartbeat()
        last, beat = await next_beat("0", lambda b: True)
        assert beat["ready"] is True and beat["checks"] == {"database": "ok", "redis": "ok"}
        cluster.stop_fast()
        last, beat = await next_beat(last, lambda b: b["checks"].get("database") != "ok")
        assert beat["ready"] is False and beat["checks"]["redis"] == "ok"
        assert beat["checks"]["database"] == "error: unavailable"
        cluster.start()
        _, beat = await next_beat(last, lambda b: b["checks"].get("database") == "ok")
        assert beat["ready"] is True
    finally:
        await runtime.aclose()
        cluster.stop()
