"""Scheduled required tests: one stable minute per period inside the window, originated once
(whatever the replicas and restarts), a missed window recorded once with why."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from audio_control.services.scheduled_tests import periods, slot, window_day
from audio_control.tables import playout_items, scheduled_tests
from eas_schemas.station_settings import StationSettings, WeeklyTestWindow

from .service_helpers import station

NY = ZoneInfo("America/New_York")


def test_the_window_day_of_a_week_and_of_a_month() -> None:
    tuesday = WeeklyTestWindow(day="tuesday")
    assert window_day(tuesday, date(2026, 11, 30)) == date(2026, 12, 1)  # that week's Tuesday
    assert window_day(tuesday, date(2026, 12, 1), week=1) == date(2026, 12, 1)
    assert window_day(tuesday, date(2026, 12, 1), week=3) == date(2026, 12, 15)
    assert window_day(WeeklyTestWindow(day="monday"), date(2026, 12, 1), week=1) == date(
        2026, 12, 7
    )


def test_the_slot_is_inside_the_window_stable_and_spread() -> None:
    window = WeeklyTestWindow(start="10:00", end="12:00")
    day = date(2026, 12, 1)
    start = datetime.combine(day, time(10), NY)
    slots = {slot(window, day, NY, f"WTST|{n}") for n in range(200)}
    assert all(start <= s < start + timedelta(hours=2) for s in slots)
    assert len(slots) > 60  # spread over the window, not one fixed minute
    assert slot(window, day, NY, "WTST|RWT 2026-W49") == slot(window, day, NY, "WTST|RWT 2026-W49")


def test_only_enabled_tests_have_periods() -> None:
    fresh = StationSettings()
    assert periods(fresh, datetime(2026, 12, 1, 15, tzinfo=UTC)) == []
    doc = StationSettings.model_validate(
        {
            "identity": {"timezone": "America/New_York"},
            "tests": {"weekly": {"enabled": True}, "monthly": {"enabled": True, "week": 2}},
        }
    )
    got = periods(doc, datetime(2026, 12, 1, 15, tzinfo=UTC))
    assert [(p, e) for p, e, _, _ in got] == [("RWT 2026-W49", "RWT"), ("RMT 2026-12", "RMT")]
    assert got[1][2].astimezone(NY).date() == date(2026, 12, 8)


async def test_a_due_rwt_is_originated_and_queued_once(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    doc = station().model_copy(deep=True)
    doc = StationSettings.model_validate(
        {**doc.model_dump(mode="json"), "tests": {"weekly": {"enabled": True, "day": "tuesday"}}}
    )
    app = service.app  # type: ignore[attr-defined]
    app.state.station.apply(2, doc)
    ((period, _, at, _),) = periods(doc, datetime(2026, 12, 1, 12, tzinfo=UTC))
    scheduler = app.state.test_scheduler
    assert await scheduler.tick(at - timedelta(minutes=1)) == []  # not yet
    (outcome,) = await scheduler.tick(at + timedelta(minutes=1))
    assert outcome.startswith(f"{period}: sent")
    assert await scheduler.tick(at + timedelta(minutes=2)) == []  # once per period
    engine = app.state.runtime.engine
    async with engine.connect() as conn:
        row = (await conn.execute(select(scheduled_tests))).one()
        items = (await conn.execute(select(playout_items))).all()
    assert row.state == "sent" and row.event_code == "RWT"
    assert [i.event_code for i in items] == ["RWT"] and items[0].precedence_class == "test"
    assert items[0].header.startswith("ZCZC-EAS-RWT-039035+0015-")
    # The station log: composed, sent to air, and the test's outcome, by the schedule.
    log = (await service.get("/api/audio/log", params={"actor": "test-schedule"})).json()
    kinds = [i["kind"] for i in reversed(log["items"])]
    assert kinds == ["originated", "originated", "test"]
    test_entry = log["items"][0]
    assert test_entry["decision_state"] == "sent" and test_entry["event_code"] == "RWT"
    assert test_entry["item_id"] == items[0].id and test_entry["detail"]["period"] == period


async def test_a_window_that_passed_is_recorded_as_missed(service: httpx.AsyncClient) -> None:
    doc = StationSettings.model_validate(
        {
            **station().model_dump(mode="json"),
            "tests": {"monthly": {"enabled": True, "week": 1, "day": "tuesday"}},
        }
    )
    app = service.app  # type: ignore[attr-defined]
    app.state.station.apply(2, doc)
    ((period, _, _at, end),) = periods(doc, datetime(2026, 12, 1, 12, tzinfo=UTC))
    (outcome,) = await app.state.test_scheduler.tick(end + timedelta(hours=3))
    assert outcome == f"{period}: missed: its window passed"
    assert await app.state.test_scheduler.tick(end + timedelta(hours=4)) == []
    log = (await service.get("/api/audio/log", params={"kind": "test"})).json()
    assert log["total"] == 1
    missed = log["items"][0]
    assert missed["decision_state"] == "missed" and missed["reasons"] == "its window passed"
    assert missed["event_code"] == "RMT" and missed["actor"] == "test-schedule"
