"""The health panel's pruning (``static/health.js``) in headless Chromium: which instances a
restart replaced and which went silent long ago. The end-to-end browser test restarts the
station once; the orderings that matter (a "down" alarm published after the replacement
started) are pinned here, where they can be forced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_dashboard_live_js import module_page

pytestmark = pytest.mark.integration

T0 = "2026-12-03T10:00:00Z"


def at(seconds: float) -> str:
    from datetime import datetime, timedelta

    base = datetime.fromisoformat(T0.replace("Z", "+00:00"))
    return (base + timedelta(seconds=seconds)).isoformat()


def ms(seconds: float) -> float:
    from datetime import datetime, timedelta

    base = datetime.fromisoformat(T0.replace("Z", "+00:00"))
    return (base + timedelta(seconds=seconds)).timestamp() * 1000


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with module_page("health.js", "health") as page:
        yield page


def stale(page: Any, entries: dict[str, Any], now_s: float) -> list[str]:
    result: list[str] = page.evaluate(
        "([entries, now]) => window.health.staleHealthKeys(new Map(Object.entries(entries)), now)",
        [entries, ms(now_s)],
    )
    return sorted(result)


def beat(service: str, instance: str, started_s: float, seen_s: float) -> dict[str, Any]:
    return {
        "hb": {
            "service": service,
            "instance": instance,
            "started_at": at(started_s),
            "interval_s": 5,
            "ready": True,
        },
        "time": at(seen_s),
    }


def down(service: str, instance: str, last_beat_s: float, published_s: float) -> dict[str, Any]:
    return {
        "alarm": {
            "state": "down",
            "service": service,
            "instance": instance,
            "last_heartbeat": at(last_beat_s),
            "reason": "missed heartbeats",
        },
        "alarmTime": at(published_s),
    }


def test_a_down_alarm_published_after_the_restart_does_not_keep_the_old_instance(
    page: Any,
) -> None:
    # The old worker beat last at 10 s; its replacement started at 20 s; the fleet noticed the
    # silence and published "down" at 30 s. Only the old instance goes, with or without its
    # heartbeat in the replay.
    entries = {
        "playout/old": down("playout", "old", last_beat_s=10, published_s=30),
        "playout/new": beat("playout", "new", started_s=20, seen_s=40),
    }
    assert stale(page, entries, now_s=45) == ["playout/old"]
    with_beat = {
        **entries,
        "playout/old": {**beat("playout", "old", 0, 10), **entries["playout/old"]},
    }
    assert stale(page, with_beat, now_s=45) == ["playout/old"]


def test_a_down_instance_nobody_replaced_stays_until_long_silent(page: Any) -> None:
    entries = {
        "monitor/a": {**beat("monitor", "a", 0, 10), **down("monitor", "a", 10, 30)},
        "api/b": beat("api", "b", 0, 40),
    }
    assert stale(page, entries, now_s=60) == []
    assert stale(page, entries, now_s=40 + 15 * 60 + 1) == ["api/b", "monitor/a"]
    assert stale(page, entries, now_s=40 + 15 * 60 - 1) == ["monitor/a"]


def test_two_live_replicas_of_one_service_both_stay(page: Any) -> None:
    # A second replica started after the first's *start* but before its last beat: not a restart.
    entries = {
        "api/one": beat("api", "one", started_s=0, seen_s=50),
        "api/two": beat("api", "two", started_s=20, seen_s=50),
    }
    assert stale(page, entries, now_s=55) == []
