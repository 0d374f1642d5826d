"""Consumer-group delivery rules on real Redis (own namespace per test; own server for restarts)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from servicekit.bus import stream_key
from servicekit.consumer import GroupConsumer, PermanentError
from servicekit.embedded import EmbeddedRedis

STREAM = "alerts.ingested"


def envelope(n: int) -> dict[str, str]:
    return encode_entry(EventEnvelope[dict[str, Any]](type="test.item", source="t", data={"n": n}))


async def wait_for(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            if await predicate():
                return
        except RedisConnectionError:
            pass  # a pooled connection from before a server restart; the next try reconnects
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


class Recorder:
    def __init__(self, fail_first: int = 0, permanent_for: set[int] | None = None) -> None:
        self.seen: list[int] = []
        self.attempts: dict[int, int] = {}
        self.fail_first = fail_first
        self.permanent_for = permanent_for or set()

    async def __call__(self, entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        n = int(env.data["n"])
        self.attempts[n] = self.attempts.get(n, 0) + 1
        if n in self.permanent_for:
            raise PermanentError(f"item {n} can never work")
        if self.attempts[n] <= self.fail_first:
            raise RuntimeError(f"transient failure {self.attempts[n]}")
        self.seen.append(n)


def consumer(client, ns: str, handler, name: str = "c1", **kw) -> GroupConsumer:
    kw.setdefault("min_idle_ms", 200)
    kw.setdefault("block_ms", 100)
    return GroupConsumer(client, STREAM, "g", name, handler, namespace=ns, **kw)


async def run_until(c: GroupConsumer, predicate, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        await wait_for(predicate, timeout)
    finally:
        stop.set()
        await task


async def test_every_entry_handled_once_and_acked(aredis, bus_namespace):
    key = stream_key(STREAM, bus_namespace)
    for n in range(50):
        await aredis.xadd(key, envelope(n))
    rec = Recorder()
    c = consumer(aredis, bus_namespace, rec)

    async def done() -> bool:
        return len(rec.seen) == 50

    await run_until(c, done)
    assert sorted(rec.seen) == list(range(50))
    assert await c.pending_count() == 0


async def test_transient_failure_is_retried_then_succeeds(aredis, bus_namespace):
    await aredis.xadd(stream_key(STREAM, bus_namespace), envelope(7))
    rec = Recorder(fail_first=2)
    c = consumer(aredis, bus_namespace, rec, max_deliveries=5)

    async def done() -> bool:
        return rec.seen == [7]

    await run_until(c, done)
    assert rec.attempts[7] == 3
    assert await c.pending_count() == 0


async def test_poison_entries_go_to_dead_letter_and_do_not_block(aredis, bus_namespace):
    key = stream_key(STREAM, bus_namespace)
    await aredis.xadd(key, {"garbage": "not an envelope"})
    await aredis.xadd(key, envelope(1))
    await aredis.xadd(key, envelope(2))  # permanent failure
    await aredis.xadd(key, envelope(3))  # always fails: retries exhausted
    await aredis.xadd(key, envelope(4))
    rec = Recorder(permanent_for={2})
    always = Recorder(fail_first=99)

    async def handler(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        if env.data["n"] == 3:
            await always(entry_id, env)
        else:
            await rec(entry_id, env)

    c = consumer(aredis, bus_namespace, handler, max_deliveries=3)
    dlq = stream_key("bus.deadletter", bus_namespace)

    async def done() -> bool:
        return await aredis.xlen(dlq) == 3 and len(rec.seen) == 2

    await run_until(c, done)
    assert sorted(rec.seen) == [1, 4]
    letters = [decode_entry(f).data for _, f in await aredis.xrange(dlq)]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == ["RuntimeError", "item 2 can never work", "not an event envelope"]
    assert always.attempts[3] == 3
    assert await c.pending_count() == 0


async def test_entry_of_a_killed_consumer_is_reclaimed(aredis, bus_namespace):
    key = stream_key(STREAM, bus_namespace)
    started = asyncio.Event()

    async def hangs(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        started.set()
        await asyncio.sleep(3600)

    dead = consumer(aredis, bus_namespace, hangs, name="dies")
    await dead.ensure_group()
    await aredis.xadd(key, envelope(42))
    stop = asyncio.Event()
    task = asyncio.create_task(dead.run(stop))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()  # killed between read and ack
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await dead.pending_count() == 1

    rec = Recorder()
    survivor = consumer(aredis, bus_namespace, rec, name="survivor")

    async def done() -> bool:
        return rec.seen == [42]

    await run_until(survivor, done)
    assert survivor.stats.reclaimed == 1
    assert await survivor.pending_count() == 0


async def test_group_lost_by_flush_is_recreated_and_nothing_after_is_lost(bus_namespace):
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="eas-flush-")), persist=False)
    url = server.start()
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        key = stream_key(STREAM, bus_namespace)
        rec = Recorder()
        c = consumer(client, bus_namespace, rec)
        stop = asyncio.Event()
        task = asyncio.create_task(c.run(stop))
        await client.xadd(key, envelope(1))

        async def first() -> bool:
            return rec.seen == [1]

        await wait_for(first)
        await client.flushall()  # what a restart without persistence does: stream and group gone
        await client.xadd(key, envelope(2))
        await client.xadd(key, envelope(3))

        async def rest() -> bool:
            return sorted(rec.seen) == [1, 2, 3]

        await wait_for(rest)
        stop.set()
        await task
        assert c.stats.group_recreated >= 1
    finally:
        await client.aclose()
        server.stop()


async def test_redis_restart_mid_stream_is_survived(bus_namespace):
    data = Path(tempfile.mkdtemp(prefix="eas-restart-"))
    server = EmbeddedRedis(data, persist=True)
    url = server.start()
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    try:
        key = stream_key(STREAM, bus_namespace)
        rec = Recorder()
        c = consumer(client, bus_namespace, rec)
        stop = asyncio.Event()
        task = asyncio.create_task(c.run(stop))
        for n in range(10):
            await client.xadd(key, envelope(n))

        async def first() -> bool:
            return len(rec.seen) == 10

        await wait_for(first)
        server.stop()

        async def saw_outage() -> bool:
            return c.stats.redis_errors >= 1

        await wait_for(saw_outage)
        server.start()
        writer = aioredis.Redis.from_url(url, decode_responses=True)
        for n in range(10, 20):
            await writer.xadd(key, envelope(n))
        await writer.aclose()

        async def rest() -> bool:
            return set(rec.seen) == set(range(20)) and await c.pending_count() == 0

        await wait_for(rest, timeout=20)
        stop.set()
        await task
        # At-least-once: an ack lost on a dying connection means a redelivery, which the
        # idempotent handlers absorb; what must never happen is a lost entry.
        assert set(rec.seen) == set(range(20))
    finally:
        await client.aclose()
        server.stop()


def test_the_embedded_server_with_a_password_refuses_anonymous_clients(tmp_path):
    import stat

    import redis as sync_redis_lib

    from servicekit.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis", persist=False, password="pw-not-on-the-cmdline")
    url = server.start()
    try:
        assert server.process is not None
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert b"pw-not-on-the-cmdline" not in cmdline
        assert stat.S_IMODE((tmp_path / "redis" / "auth.conf").stat().st_mode) == 0o600
        with pytest.raises(sync_redis_lib.AuthenticationError):
            sync_redis_lib.Redis(port=server.port).ping()
        assert sync_redis_lib.Redis.from_url(url).ping() is True
    finally:
        server.stop()
