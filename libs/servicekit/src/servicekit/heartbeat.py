"""Every service instance announces itself on ``service.heartbeat`` every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import HEARTBEAT_TYPE, ServiceHeartbeat
from eas_schemas.streams import SERVICE_HEARTBEAT
from servicekit.bus import AsyncBus, SyncBus

log = logging.getLogger(__name__)

Figures = Callable[[], Awaitable[dict[str, float]]]
# The dependency checks /readyz makes: name -> "ok" or an error word (servicekit.web.check).
Checks = Callable[[], Awaitable[dict[str, str]]]


def heartbeat_envelope(
    service: str,
    instance: str,
    version: str,
    started: datetime,
    ready: bool,
    interval_s: float,
    figures: dict[str, float],
    checks: Mapping[str, str] | None = None,
) -> EventEnvelope[ServiceHeartbeat]:
    now = datetime.now(UTC)
    beat = ServiceHeartbeat(
        service=service,
        instance=instance,
        version=version,
        started_at=started,
        uptime_s=(now - started).total_seconds(),
        ready=ready,
        interval_s=interval_s,
        figures=figures,
        checks=dict(checks or {}),
    )
    return EventEnvelope[ServiceHeartbeat](
        type=HEARTBEAT_TYPE, source=f"{service}/{instance}", subject=service, time=now, data=beat
    )


async def run_heartbeat(
    bus: AsyncBus,
    service: str,
    instance: str,
    version: str,
    interval_s: float,
    stop: asyncio.Event,
    figures: Figures | None = None,
    ready: Callable[[], Awaitable[bool]] | None = None,
    checks: Checks | None = None,
) -> None:
    """Beat every ``interval_s``. With ``checks`` each beat carries their results and is not
    ready while one fails: the dashboard and the fleet view learn that the database is down
    (and which service cannot reach it) from the bus, which stays up, without polling."""
    started = datetime.now(UTC)
    while not stop.is_set():
        try:
            values = await figures() if figures else {}
            results = await checks() if checks else {}
            is_ready = (await ready() if ready else True) and all(
                v == "ok" for v in results.values()
            )
            await bus.publish(
                SERVICE_HEARTBEAT,
                heartbeat_envelope(
                    service, instance, version, started, is_ready, interval_s, values, results
                ),
            )
        except Exception as exc:
            log.warning("heartbeat not sent: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


class SyncHeartbeat:
    """For sync workers: call ``maybe_beat`` from the work loop; it sends at most every interval."""

    def __init__(self, bus: SyncBus, service: str, instance: str, version: str, interval_s: float):
        self.bus, self.service, self.instance, self.version = bus, service, instance, version
        self.interval_s = interval_s
        self.started = datetime.now(UTC)
        self._next = 0.0

    def maybe_beat(
        self, figures: dict[str, float], ready: bool = True, checks: Mapping[str, str] | None = None
    ) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        try:
            self.bus.publish(
                SERVICE_HEARTBEAT,
                heartbeat_envelope(
                    self.service,
                    self.instance,
                    self.version,
                    self.started,
                    ready and all(v == "ok" for v in (checks or {}).values()),
                    self.interval_s,
                    figures,
                    checks,
                ),
            )
        except Exception as exc:
            log.warning("heartbeat not sent: %s", exc)
