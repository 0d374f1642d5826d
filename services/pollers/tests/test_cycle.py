"""Poll -> publish -> commit -> status against real Redis, including a Redis outage."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import redis

from eas_schemas.events import ALERT_INGESTED_TYPE, POLLER_STATUS_TYPE, FeedKind
from eas_schemas.streams import ALERTS_INGESTED, POLLER_STATUS
from pollers.cycle import FeedLoop
from pollers.feeds.base import Feed, PollResult
from pollers.feeds.cap_folder import CapFolderFeed
from pollers.file_fingerprints import FileFingerprints
from pollers.publisher import AlertPublisher
from pollers.seen_alerts import SeenAlerts
from servicekit.bus import SyncBus, stream_key

pytestmark = pytest.mark.integration


def _loop(folder: Path, client: redis.Redis, ns: str) -> FeedLoop:
    feed = CapFolderFeed(folder, FileFingerprints(client, folder, ns))
    publisher = AlertPublisher(SyncBus(client, ns), SeenAlerts(client, ns), "pollers/test")
    return FeedLoop(feed, publisher, rng=random.Random(5))


def _point_at(loop: FeedLoop, client: redis.Redis) -> None:
    assert isinstance(loop.feed, CapFolderFeed)
    loop.publisher.bus.client = client
    loop.publisher.seen.client = client
    loop.feed.fingerprints.client = client


def test_cycle_publishes_new_alerts_once(
    tmp_path, cap_fixtures, sync_redis_client, bus_namespace, stream_reader
) -> None:
    for name in (
        "update-chain-3-cancel.xml",
        "update-chain-1-alert.xml",
        "update-chain-2-update.xml",
    ):
        shutil.copy(cap_fixtures / "good" / name, tmp_path / name)
    shutil.copy(cap_fixtures / "bad" / "truncated.xml", tmp_path / "truncated.xml")
    loop = _loop(tmp_path, sync_redis_client, bus_namespace)
    status = loop.run_cycle()
    assert status.ok and status.new == 3 and status.fetched == 4 and status.errors == 0
    assert len(status.rejected) == 1 and status.rejected[0].startswith(
        "truncated.xml: malformed XML"
    )
    assert status.next_poll_s == loop.feed.interval_s

    alerts = stream_reader(stream_key(ALERTS_INGESTED, bus_namespace))
    assert {a["type"] for a in alerts} == {ALERT_INGESTED_TYPE}
    # Oldest first: the Alert, then its Update, then the Cancel, whatever the file order.
    assert [a["data"]["alert"]["msg_type"] for a in alerts] == ["Alert", "Update", "Cancel"]
    first = alerts[0]
    assert first["subject"] == (
        "w-nws.webmaster@noaa.gov/urn:oid:2.49.0.1.840.0.wsw-cle-2026-0007.001.1/"
        "2026-01-15T09:10:00+00:00"
    )
    assert first["source"] == "pollers/test"
    assert first["data"]["feed"] == f"cap-folder:{tmp_path}"
    assert first["data"]["feed_kind"] == FeedKind.CAP_FOLDER.value
    assert len(first["data"]["raw_sha256"]) == 64

    (st,) = stream_reader(stream_key(POLLER_STATUS, bus_namespace))
    assert st["type"] == POLLER_STATUS_TYPE and st["data"]["new"] == 3

    # A second cycle, and a fresh loop (a restart), publish nothing new.
    assert loop.run_cycle().new == 0
    shutil.copy(cap_fixtures / "good" / "update-chain-1-alert.xml", tmp_path / "copy-of-1.xml")
    restarted = _loop(tmp_path, sync_redis_client, bus_namespace).run_cycle()
    assert restarted.fetched == 1 and restarted.new == 0
    assert len(stream_reader(stream_key(ALERTS_INGESTED, bus_namespace))) == 3


def test_redis_outage_loses_nothing(
    tmp_path, cap_fixtures, sync_redis_client, dead_redis, bus_namespace, stream_reader
) -> None:
    shutil.copy(cap_fixtures / "good" / "nws-tor-cuyahoga.xml", tmp_path / "tor.xml")
    loop = _loop(tmp_path, dead_redis, bus_namespace)
    down = loop.run_cycle()
    assert not down.ok and down.new == 0 and down.errors == 1
    # Retried sooner than the interval while the bus is down, with jittered backoff.
    assert 0.5 <= down.next_poll_s <= 1.0
    assert 0.5 <= loop.run_cycle().next_poll_s <= 2.0

    _point_at(loop, sync_redis_client)
    up = loop.run_cycle()
    assert up.ok and up.new == 1
    assert len(stream_reader(stream_key(ALERTS_INGESTED, bus_namespace))) == 1


class CrashingFeed(Feed):
    name = "crashy"
    kind = FeedKind.CAP_URL
    interval_s = 30.0

    def poll(self) -> PollResult:
        raise RuntimeError("parser bug")


class SlowDownFeed(Feed):
    name = "slow-down"
    kind = FeedKind.NWS
    interval_s = 60.0

    def poll(self) -> PollResult:
        return PollResult(errors=["HTTP 429"], retry_after_s=300.0)


def test_feed_failures_are_contained(sync_redis_client, bus_namespace, stream_reader) -> None:
    publisher = AlertPublisher(
        SyncBus(sync_redis_client, bus_namespace),
        SeenAlerts(sync_redis_client, bus_namespace),
        "pollers/test",
    )
    crashed = FeedLoop(CrashingFeed(), publisher).run_cycle()
    assert not crashed.ok and crashed.errors == 1 and crashed.next_poll_s == 30.0
    slowed = FeedLoop(SlowDownFeed(), publisher).run_cycle()
    assert slowed.next_poll_s == 300.0  # Retry-After beyond the interval is honoured
    statuses = stream_reader(stream_key(POLLER_STATUS, bus_namespace))
    assert [s["data"]["feed"] for s in statuses] == ["crashy", "slow-down"]
