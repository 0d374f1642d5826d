"""The settings follower on real Redis: current document first, then every change, in order,
never an older version, through Redis restarts (own server for those)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from eas_schemas.envelope import EventEnvelope
from eas_schemas.station_settings import (
    CURRENT_SETTINGS_KEY,
    StationSettings,
    redacted,
)
from eas_schemas.streams import SETTINGS_CHANGED
from eas_testkit.factories import current_settings_body, settings_changed_envelope
from servicekit.bus import AsyncBus, stream_key
from servicekit.embedded import EmbeddedRedis
from servicekit.settings_follower import (
    SettingsFollower,
    SettingsVersion,
    SyncSettingsFollower,
    configured,
    parse_current,
)

pytestmark = pytest.mark.integration


def doc(version: int, same: list[str] | None = None) -> StationSettings:
    settings = StationSettings()
    settings.location.same_codes = same if same is not None else [f"0390{version:02d}"]
    return settings


async def write_doc(client: aioredis.Redis, ns: str, version: int, settings: StationSettings):
    body = current_settings_body(version, settings)
    await client.set(stream_key(CURRENT_SETTINGS_KEY, ns), body)


async def announce(client: aioredis.Redis, ns: str, version: int) -> str:
    return await AsyncBus(client, ns).publish(SETTINGS_CHANGED, settings_changed_envelope(version))


async def save(
    client: aioredis.Redis, ns: str, version: int, settings: StationSettings | None = None
):
    """What station-api does after a commit: the event, then the document."""
    await announce(client, ns, version)
    await write_doc(client, ns, version, settings or doc(version))


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def settled(follower: SettingsFollower, client: aioredis.Redis, ns: str) -> None:
    """Return once everything published so far has been fully handled: instead of sleeping
    and hoping, two entries that announce no version go after it, and the follower reading
    the second means its work on all before the first is done (one loop turn at a time:
    read, then refresh, then read again)."""
    bus = AsyncBus(client, ns)
    marker = EventEnvelope[dict[str, Any]](type="test.marker", source="test", data={})
    await bus.publish(SETTINGS_CHANGED, marker)
    last = await bus.publish(SETTINGS_CHANGED, marker)
    await eventually(lambda: follower.last_id == last)


class Recorder:
    def __init__(self) -> None:
        self.versions: list[int] = []
        self.fail_next = 0

    def reached(self, version: int) -> bool:
        # Versions saved back to back may be coalesced (only the newest document is read);
        # what must hold is: strictly increasing, ending at the newest.
        assert self.versions == sorted(set(self.versions)), self.versions
        return bool(self.versions) and self.versions[-1] == version

    async def __call__(self, applied: SettingsVersion) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("database away")
        self.versions.append(applied.version)


def running(follower: SettingsFollower) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(follower.run(stop))


def test_parse_and_configured() -> None:
    assert parse_current(None) is None
    parsed = parse_current(json.dumps({"version": 3, "settings": redacted(doc(3))}))
    assert parsed is not None and parsed.version == 3
    assert parsed.settings.location.same_codes == ["039003"]
    with pytest.raises(ValueError, match=r"is not \{version, settings\}"):
        parse_current("[]")
    assert not configured(StationSettings().location)
    assert configured(doc(1).location)


async def test_current_document_then_every_change(aredis, bus_namespace) -> None:
    await save(aredis, bus_namespace, 1)
    rec = Recorder()
    follower = SettingsFollower(aredis, bus_namespace, rec, block_ms=200)
    assert await follower.sync()
    assert rec.versions == [1] and follower.applied_version == 1
    stop, task = running(follower)
    try:
        for version in (2, 3):
            await save(aredis, bus_namespace, version)
        await eventually(lambda: rec.reached(3))
        assert follower.current is not None
        assert follower.current.settings.location.same_codes == ["039003"]
    finally:
        stop.set()
        await task


async def test_no_document_means_nothing_applied(aredis, bus_namespace) -> None:
    rec = Recorder()
    follower = SettingsFollower(aredis, bus_namespace, rec, block_ms=100)
    stop, task = running(follower)
    try:
        await eventually(lambda: follower.last_id is not None)  # pinned: events are read now
        await settled(follower, aredis, bus_namespace)
        assert rec.versions == [] and follower.applied_version == 0
        # station-api with nothing saved publishes version 0: still "no document".
        await write_doc(aredis, bus_namespace, 0, StationSettings())
        await announce(aredis, bus_namespace, 1)  # an event without its document yet
        await settled(follower, aredis, bus_namespace)
        assert rec.versions == []
        await write_doc(aredis, bus_namespace, 1, doc(1))  # the late document is picked up
        await eventually(lambda: rec.versions == [1])
    finally:
        stop.set()
        await task


async def test_older_and_repeated_versions_are_ignored(aredis, bus_namespace) -> None:
    await save(aredis, bus_namespace, 5)
    rec = Recorder()
    follower = SettingsFollower(aredis, bus_namespace, rec, block_ms=100)
    stop, task = running(follower)
    try:
        await eventually(lambda: rec.versions == [5])
        await save(aredis, bus_namespace, 4)  # out of order: an older version arrives late
        await save(aredis, bus_namespace, 5)  # the same version again
        await announce(aredis, bus_namespace, 5)
        await save(aredis, bus_namespace, 6)
        await eventually(lambda: rec.reached(6))
        await settled(follower, aredis, bus_namespace)
        assert rec.versions == [5, 6]
    finally:
        stop.set()
        await task


async def test_failed_callback_is_retried(aredis, bus_namespace) -> None:
    rec = Recorder()
    rec.fail_next = 2
    follower = SettingsFollower(aredis, bus_namespace, rec, block_ms=100, retry_min_s=0.05)
    stop, task = running(follower)
    try:
        await eventually(lambda: follower.last_id is not None)
        await save(aredis, bus_namespace, 1)
        await eventually(lambda: rec.versions == [1])
        assert follower.stats.callback_failures == 2
    finally:
        stop.set()
        await task


async def test_change_announced_before_the_pin_is_not_missed(aredis, bus_namespace) -> None:
    # station-api announced v2 but has not written its document yet when we start.
    await save(aredis, bus_namespace, 1)
    await announce(aredis, bus_namespace, 2)
    rec = Recorder()
    follower = SettingsFollower(aredis, bus_namespace, rec, block_ms=100, retry_min_s=0.05)
    stop, task = running(follower)
    try:
        await eventually(lambda: rec.versions == [1])
        await write_doc(aredis, bus_namespace, 2, doc(2))  # no new event: the retry finds it
        await eventually(lambda: rec.versions == [1, 2], timeout=3)
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("persist", [True, False])
async def test_redis_restart_is_survived(bus_namespace, persist: bool) -> None:
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="eas-settings-")), persist=persist)
    url = server.start()
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=2)
    rec = Recorder()
    follower = SettingsFollower(
        client, bus_namespace, rec, block_ms=100, retry_min_s=0.05, retry_max_s=0.5
    )
    stop, task = running(follower)
    try:
        for version in (1, 2, 3):
            await save(client, bus_namespace, version)
        await eventually(lambda: rec.reached(3))
        server.stop()
        await eventually(lambda: follower.stats.redis_errors >= 1)  # it saw the outage
        server.start()
        writer = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            # Without persistence the stream starts over at ids below the follower's position.
            await save(writer, bus_namespace, 4)
        finally:
            await writer.aclose()
        await eventually(lambda: rec.reached(4), timeout=15)
        assert follower.stats.redis_errors >= 1
    finally:
        stop.set()
        await task
        await client.aclose()
        server.stop()


async def test_threaded_follower(redis_url, aredis, bus_namespace) -> None:
    await save(aredis, bus_namespace, 1)
    seen: list[int] = []
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    follower = SyncSettingsFollower(
        client, bus_namespace, lambda d: seen.append(d.version), block_ms=100
    )
    stop = threading.Event()
    try:
        assert follower.sync() and seen == [1]
        follower.start(stop)
        await save(aredis, bus_namespace, 2)
        await save(aredis, bus_namespace, 1)  # older: ignored
        await save(aredis, bus_namespace, 3)
        await eventually(lambda: seen[-1] == 3)
        assert seen == sorted(set(seen)) and 1 not in seen[1:]
    finally:
        stop.set()
        assert follower.thread is not None
        follower.thread.join(timeout=5)
        client.close()
    assert not follower.thread.is_alive()
