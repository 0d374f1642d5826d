"""One same.* event per transmission across inputs and repeats (real Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis

from eas_monitor.dedup import Aggregator
from eas_monitor.payloads import header_event
from eas_same import parse_header
from eas_schemas.envelope import decode_entry
from eas_schemas.monitor_events import Hearing
from eas_schemas.streams import SAME_EVENTS
from servicekit.bus import SyncBus, sync_redis

from .conftest import RWT


@pytest.fixture
def client(redis_url: str):
    c = sync_redis(redis_url)
    yield c
    c.close()


def hearing(input_id: int, confidence: float = 1.0) -> Hearing:
    now = datetime.now(UTC)
    return Hearing(
        input_id=input_id,
        input_name=f"in-{input_id}",
        heard_at=now,
        confidence=confidence,
        bursts=3,
        agreed=3,
        start_s=1.0,
        end_s=5.0,
        started_at=now,
        ended_at=now,
        clip_id=f"{input_id:032x}",
    )


def aggregator(client: redis.Redis, ns: str, clock, agg: float = 1.0, grace: float = 1.0):
    return Aggregator(client, SyncBus(client, ns), aggregation_s=agg, grace_s=grace, clock=clock)


def events(client: redis.Redis, ns: str) -> list[dict]:
    out = []
    for _id, fields in client.xrange(f"{ns}:{SAME_EVENTS.name}"):
        env = decode_entry(fields)
        out.append(env.data)
    return out


def build(hs):
    return header_event(parse_header(RWT), hs, "test")


def test_two_inputs_one_event_listing_both(client, bus_namespace):
    now = [100.0]
    a = aggregator(client, bus_namespace, lambda: now[0])
    b = aggregator(client, bus_namespace, lambda: now[0])
    assert a.hear("header", RWT, hearing(1, 0.9), 180, build)
    assert b.hear("header", RWT, hearing(2, 1.0), 180, build)
    assert a.pending[0].first and not b.pending[0].first
    assert b.pending[0].due > a.pending[0].due  # the second hearer only takes over
    now[0] += 1.05
    for p in a.due():
        assert a.publish(p, 180)
    now[0] += 1.1
    for p in b.due():
        assert b.publish(p, 180) is None  # already published by a
    (event,) = events(client, bus_namespace)
    assert [h["input_id"] for h in event["inputs"]] == [1, 2]
    assert event["confidence"] == 1.0 and event["clip_id"] == f"{2:032x}"
    assert event["header"]["locations"][0]["name"] == "Adams County, PA"


def test_repeat_within_the_window_is_dropped(client, bus_namespace):
    now = [0.0]
    a = aggregator(client, bus_namespace, lambda: now[0])
    a.hear("header", RWT, hearing(1), 180, build)
    now[0] += 2
    for p in a.due():
        a.publish(p, 180)
    assert not a.hear("header", RWT, hearing(1), 180, build)  # the station repeats it
    assert not a.hear("header", RWT, hearing(3), 180, build)  # a late, slow input
    assert a.pending == [] and a.suppressed == 2
    assert len(events(client, bus_namespace)) == 1


def test_takeover_when_the_first_hearer_never_publishes(client, bus_namespace):
    now = [0.0]
    dead = aggregator(client, bus_namespace, lambda: now[0])
    alive = aggregator(client, bus_namespace, lambda: now[0])
    dead.hear("header", RWT, hearing(1), 180, build)
    alive.hear("header", RWT, hearing(2), 180, build)
    now[0] += 2.5  # dead's worker crashed before its deadline; alive's grace ran out
    for p in alive.due():
        assert alive.publish(p, 180)
    (event,) = events(client, bus_namespace)
    assert [h["input_id"] for h in event["inputs"]] == [1, 2]


def test_different_text_is_a_different_transmission_and_window_expiry_allows_repeat(
    client, bus_namespace
):
    now = [0.0]
    a = aggregator(client, bus_namespace, lambda: now[0], agg=0.0)
    other = RWT.replace("3040858", "3040901")
    a.hear("header", RWT, hearing(1), 0.5, build)
    a.hear("header", other, hearing(1), 0.5, lambda hs: header_event(parse_header(other), hs, "t"))
    for p in a.due():
        a.publish(p, 0.5)
    assert len(events(client, bus_namespace)) == 2
    # The duplicate window is a Redis TTL: once Redis has dropped every dedup key of it (not
    # after a guessed sleep), the same text is a new transmission.
    pattern = f"{bus_namespace}:eas-monitor:dedup:*"
    deadline = time.monotonic() + 30
    while list(client.scan_iter(match=pattern)):
        assert time.monotonic() < deadline, "the duplicate window never closed"
        time.sleep(0.02)
    assert a.hear("header", RWT, hearing(1), 0.5, build)
    for p in a.due():
        a.publish(p, 0.5)
    assert len(events(client, bus_namespace)) == 3
