"""The IPAWS-OPEN feed against a fake server: the window cursor, its persistence, the PIN."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from pollers.feeds.ipaws import IpawsFeed, format_ipaws_time
from pollers.http_fetch import RetryPolicy
from pollers.state_keys import ipaws_cursor_key

pytestmark = pytest.mark.integration

PIN = "s3cr3t-PIN-0042"
T0 = datetime(2026, 4, 20, 21, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def batch(cap_fixtures: Path) -> bytes:
    return (cap_fixtures / "batch" / "ipaws-recent.xml").read_bytes()


def _feed(base: str, client: redis.Redis, ns: str, clock: Clock, sleeper) -> IpawsFeed:
    return IpawsFeed(
        base_url=base + "/rest/eas",
        redis_client=client,
        namespace=ns,
        pin=PIN,
        overlap_s=30,
        initial_lookback_s=3600,
        policy=RetryPolicy(max_attempts=2, base_s=0.5, cap_s=1.0),
        sleep=sleeper,
        rng=random.Random(1),
        clock=clock,
        allow_private_hosts=("127.0.0.1",),
        pin_origins=(base,),
    )


def test_cursor_advances_after_success_and_survives_a_new_instance(
    fake_server, sleeper, batch, sync_redis_client, bus_namespace
) -> None:
    fake_server.responder = lambda seen: (200, {"Content-Type": "application/xml"}, batch)
    clock = Clock(T0)
    feed = _feed(fake_server.url, sync_redis_client, bus_namespace, clock, sleeper)
    result = feed.poll()
    first = fake_server.requests[0]
    assert first.path == "/rest/eas/recent/2026-04-20T20:15:00Z"  # initial lookback, 1 h
    assert first.query == {"pin": [PIN]}
    assert [p.alert.identifier for p in result.alerts] == [
        "urn:oid:2.49.0.1.840.0.ipaws-batch-ffw-lake.001.1",
        "SUMMIT-EVI-2026-0420",
    ]
    assert result.rejections == ["alert #2 (BAD-IPAWS-MISSING-SENT): missing <sent>"]
    key = ipaws_cursor_key(bus_namespace)
    assert key == f"{bus_namespace}:pollers:ipaws:cursor"
    assert sync_redis_client.get(key) is None  # nothing saved before the commit
    assert result.commit is not None
    result.commit()
    assert sync_redis_client.get(key) == "2026-04-20T21:14:30Z"  # fetch start - 30 s overlap

    clock.now = T0 + timedelta(minutes=1)
    restarted = _feed(fake_server.url, sync_redis_client, bus_namespace, clock, sleeper)
    restarted.poll()
    assert fake_server.requests[1].path == "/rest/eas/recent/2026-04-20T21:14:30Z"


def test_cursor_does_not_advance_after_a_failure(
    fake_server, sleeper, batch, sync_redis_client, bus_namespace
) -> None:
    key = ipaws_cursor_key(bus_namespace)
    sync_redis_client.set(key, "2026-04-20T21:00:00Z")
    clock = Clock(T0)
    feed = _feed(fake_server.url, sync_redis_client, bus_namespace, clock, sleeper)

    fake_server.responder = lambda seen: (500, {}, b"internal error")
    failed = feed.poll()
    assert failed.errors and failed.commit is None and failed.alerts == []
    assert len(fake_server.requests) == 2 and len(sleeper.waits) == 1  # retried once

    fake_server.responder = lambda seen: (200, {}, b"<html><body>Service maintenance")
    garbled = feed.poll()
    assert garbled.errors and "malformed XML" in garbled.errors[0] and garbled.commit is None
    assert sync_redis_client.get(key) == "2026-04-20T21:00:00Z"

    clock.now = T0 + timedelta(minutes=2)
    fake_server.responder = lambda seen: (200, {}, batch)
    ok = feed.poll()
    assert fake_server.requests[-1].path.endswith("/recent/2026-04-20T21:00:00Z")
    assert ok.commit is not None
    ok.commit()
    assert sync_redis_client.get(key) == format_ipaws_time(clock.now - timedelta(seconds=30))


def test_pin_never_appears_in_errors_or_logs(
    fake_server, sleeper, sync_redis_client, bus_namespace, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_server.responder = lambda seen: (503, {}, b"")
    feed = _feed(fake_server.url, sync_redis_client, bus_namespace, Clock(T0), sleeper)
    result = feed.poll()
    assert result.errors
    refused = _feed("http://127.0.0.1:1", sync_redis_client, bus_namespace, Clock(T0), sleeper)
    refused_result = refused.poll()
    assert refused_result.errors
    everything = " ".join([*result.errors, *refused_result.errors, caplog.text])
    assert fake_server.requests and PIN not in everything
    assert feed.redact(f"GET /recent/x?pin={PIN}") == "GET /recent/x?pin=***"


def test_empty_window_is_a_success(
    fake_server, sleeper, cap_fixtures, sync_redis_client, bus_namespace
) -> None:
    empty = (cap_fixtures / "batch" / "ipaws-empty.xml").read_bytes()
    fake_server.responder = lambda seen: (200, {}, empty)
    result = _feed(fake_server.url, sync_redis_client, bus_namespace, Clock(T0), sleeper).poll()
    assert result.errors == [] and result.rejections == [] and result.alerts == []
    assert result.commit is not None


def test_redis_down_before_any_cursor_is_an_error(fake_server, sleeper, dead_redis) -> None:
    result = _feed(fake_server.url, dead_redis, "ns", Clock(T0), sleeper).poll()
    assert result.errors and "cursor unavailable" in result.errors[0]
    assert fake_server.requests == []
