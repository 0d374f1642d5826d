"""The station's own required tests, originated on schedule (47 CFR 11.61).

Each period (an ISO week for the RWT, a month for the RMT) gets one minute drawn inside the
configured window, the same on every replica and after every restart (a hash of the station
and the period, not a random call). At that minute one replica claims the period (a row keyed
by it) and originates the test to air; a window that passed without it (the service was down,
the area was not configured) is recorded as missed, with why, once.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audio_control.rules import precedence_of
from audio_control.services.messages import MessageService, Origination
from audio_control.services.playout import PlayoutService
from audio_control.services.station import StationView
from audio_control.services.station_log import LogKind, StationLog, entry
from audio_control.tables import scheduled_tests
from eas_schemas.clock import utcnow
from eas_schemas.station_settings import StationSettings, WeeklyTestWindow
from servicekit.auth.tokens import Principal

log = logging.getLogger(__name__)

SCHEDULE = Principal(subject="test-schedule", role=None, permissions=frozenset())
RMT_SCRIPT = (
    "This is a test of the Emergency Alert System by {station}. This is only a test. "
    "Equipment that can quickly warn you during emergencies is being tested. *** If this had "
    "been an actual emergency, official messages would have followed the alert tone. This "
    "concludes this required monthly test of the Emergency Alert System."
)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def window_day(window: WeeklyTestWindow, period_start: date, week: int | None = None) -> date:
    """The day of the window in the period (week: that week; month: its ``week``th)."""
    wanted = _DAYS.index(window.day.value)
    if week is None:
        return period_start + timedelta(days=(wanted - period_start.weekday()) % 7)
    first = period_start + timedelta(days=(wanted - period_start.weekday()) % 7)
    return first + timedelta(weeks=week - 1)


def slot(window: WeeklyTestWindow, day: date, zone: ZoneInfo, seed: str) -> datetime:
    """The minute the test airs on ``day``: drawn in the window from ``seed`` (stable)."""
    start = datetime.combine(day, time.fromisoformat(window.start), zone)
    end = datetime.combine(day, time.fromisoformat(window.end), zone)
    minutes = max(1, int((end - start).total_seconds() // 60))
    pick = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % minutes
    return start + timedelta(minutes=pick)


def periods(settings: StationSettings, now: datetime) -> list[tuple[str, str, datetime, datetime]]:
    """(period, event, slot, window end) of each enabled test for the current period."""
    zone = ZoneInfo(settings.identity.timezone)
    local = now.astimezone(zone).date()
    out: list[tuple[str, str, datetime, datetime]] = []
    station = f"{settings.identity.callsign}|{settings.identity.name}"
    weekly = settings.tests.weekly
    if weekly.enabled:
        year, week, _ = local.isocalendar()
        monday = local - timedelta(days=local.weekday())
        day = window_day(weekly, monday)
        period = f"RWT {year}-W{week:02d}"
        end = datetime.combine(day, time.fromisoformat(weekly.end), zone)
        out.append((period, "RWT", slot(weekly, day, zone, f"{station}|{period}"), end))
    monthly = settings.tests.monthly
    if monthly.enabled:
        first = local.replace(day=1)
        day = window_day(monthly, first, monthly.week)
        period = f"RMT {local.year}-{local.month:02d}"
        end = datetime.combine(day, time.fromisoformat(monthly.end), zone)
        out.append((period, "RMT", slot(monthly, day, zone, f"{station}|{period}"), end))
    return out


class RequiredTestScheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        station: StationView,
        messages: MessageService,
        playout: PlayoutService,
        log: StationLog | None = None,
    ) -> None:
        self.engine = engine
        self.log = log
        self.station = station
        self.messages = messages
        self.playout = playout

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Originate what is due, record what was missed; what happened, per period."""
        now = now or utcnow()
        settings = self.station.settings
        done: list[str] = []
        for period, event, at, end in periods(settings, now):
            if now < at:
                continue
            async with self.engine.connect() as conn:
                seen = await conn.execute(
                    select(scheduled_tests.c.state).where(scheduled_tests.c.period == period)
                )
                if seen.first() is not None:
                    continue
            if now > end + timedelta(minutes=5):
                done.append(await self._record(period, event, at, "missed", "its window passed"))
                continue
            done.append(await self._originate(settings, period, event, at))
        return done

    async def _originate(
        self, settings: StationSettings, period: str, event: str, at: datetime
    ) -> str:
        area = [str(c) for c in settings.location.same_codes][:31]
        if not area:
            return await self._record(
                period, event, at, "missed", "the station's area (location.same_codes) is not set"
            )
        # Claim the period first: a second replica gives up here, before it composes anything.
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(scheduled_tests).values(
                        period=period,
                        event_code=event,
                        slot_at=at,
                        state="claimed",
                        reason="being originated",
                        at=utcnow(),
                    )
                )
        except IntegrityError:
            return f"{period}: claimed by another replica"
        originator = settings.identity.originator.value
        text = RMT_SCRIPT.format(station=settings.identity.name) if event == "RMT" else None
        try:
            message_id = await self.messages.originate(
                Origination(
                    event_code=event,
                    originator=originator,
                    locations=tuple(area),
                    duration="0015" if event == "RWT" else "0100",
                    text=text,
                ),
                SCHEDULE,
                None,
            )
            item = await self.playout.send_message(
                message_id, SCHEDULE, None, precedence_of(event, originator, area)
            )
        except Exception as exc:
            log.exception("scheduled %s not originated", period)
            return await self._update(period, "failed", f"{type(exc).__name__}: {exc}")
        return await self._update(
            period,
            "sent",
            f"originated and queued as item {item.item_id}",
            message_id,
            item.item_id,
        )

    async def _record(self, period: str, event: str, at: datetime, state: str, reason: str) -> str:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(scheduled_tests).values(
                        period=period,
                        event_code=event,
                        slot_at=at,
                        state=state,
                        reason=reason,
                        at=utcnow(),
                    )
                )
                await self._log(conn, period, event, state, reason, at)
        except IntegrityError:
            return f"{period}: recorded by another replica"
        log.warning("scheduled %s %s: %s", period, state, reason)
        return f"{period}: {state}: {reason}"

    async def _update(
        self,
        period: str,
        state: str,
        reason: str,
        message_id: int | None = None,
        item_id: int | None = None,
    ) -> str:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    scheduled_tests.update()
                    .where(scheduled_tests.c.period == period)
                    .values(
                        state=state,
                        reason=reason,
                        message_id=message_id,
                        item_id=item_id,
                        at=utcnow(),
                    )
                    .returning(scheduled_tests.c.event_code, scheduled_tests.c.slot_at)
                )
            ).one()
            await self._log(
                conn, period, row.event_code, state, reason, row.slot_at, message_id, item_id
            )
        return f"{period}: {state}: {reason}"

    async def _log(
        self,
        conn: AsyncConnection,
        period: str,
        event: str,
        state: str,
        reason: str,
        slot_at: datetime,
        message_id: int | None = None,
        item_id: int | None = None,
    ) -> None:
        """The test's outcome in the station log, in the transaction that records it."""
        if self.log is None:
            return
        settings = self.station.settings
        await self.log.write(
            conn,
            [
                entry(
                    LogKind.TEST,
                    f"Scheduled {period} {state}: {reason}",
                    originator=settings.identity.originator.value,
                    event_code=event,
                    locations=[str(c) for c in settings.location.same_codes][:31],
                    decision_state=state,
                    reasons=reason,
                    actor=SCHEDULE.subject,
                    message_id=message_id,
                    item_id=item_id,
                    detail={"period": period, "slot_at": slot_at},
                )
            ],
        )
