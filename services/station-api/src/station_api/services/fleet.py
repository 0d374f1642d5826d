"""Fleet view: every service instance, from its `service.heartbeat` events.

The stream is read without a group (every station-api replica sees every heartbeat). State is
kept in memory and rebuilt at start by replaying the stream's recent history, so it needs no
table. An instance silent for more than ``down_after_intervals`` of its own heartbeat interval
is down; the change to down, and back to up, is announced once as `system.alarm`. Replicas
deduplicate the announcement with a Redis key per transition (SET NX).

Instances found already silent when the replay ends are shown as down but not announced:
their outage began while no station-api was watching, and a restart of the whole station
would otherwise announce every instance of its previous run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope, decode_entry
from eas_schemas.events import HEARTBEAT_TYPE, ServiceHeartbeat
from eas_schemas.streams import SERVICE_HEARTBEAT, SYSTEM_ALARMS
from eas_schemas.system_events import SYSTEM_ALARM_TYPE, InstanceState, SystemAlarm
from servicekit.bus import AsyncBus
from servicekit.tail import StreamTail

log = logging.getLogger(__name__)

ALARM_DEDUPE_TTL_S = 86_400


@dataclass
class Instance:
    beat: ServiceHeartbeat
    last_heartbeat: datetime
    last_entry_id: str
    down: bool = False
    down_since: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.beat.service}/{self.beat.instance}"


@dataclass
class FleetStats:
    heartbeats: int = 0
    malformed: int = 0
    alarms_published: int = 0
    read_errors: int = 0
    transitions: list[tuple[str, InstanceState]] = field(default_factory=list)


class FleetMonitor:
    def __init__(
        self,
        client: aioredis.Redis,
        bus: AsyncBus,
        source: str,
        down_after_intervals: float = 3.0,
        check_interval_s: float = 1.0,
        rebuild_window_s: float = 3600.0,
        forget_after_s: float = 3600.0,
    ) -> None:
        self.client = client
        self.bus = bus
        self.source = source
        self.down_after_intervals = down_after_intervals
        self.check_interval_s = check_interval_s
        self.rebuild_window_s = rebuild_window_s
        self.forget_after_s = forget_after_s
        self.instances: dict[str, Instance] = {}
        self.stats = FleetStats()
        self.rebuilt = asyncio.Event()
        self._pending: list[tuple[Instance, InstanceState, float]] = []

    # ---- state ---------------------------------------------------------------------------

    def apply(self, entry_id: str, fields: dict[str, str]) -> None:
        if fields.get("type") != HEARTBEAT_TYPE:
            return
        try:
            envelope = decode_entry(fields)
            beat = ServiceHeartbeat.model_validate(envelope.data)
        except ValueError:
            self.stats.malformed += 1
            return
        self.stats.heartbeats += 1
        key = f"{beat.service}/{beat.instance}"
        known = self.instances.get(key)
        if known is not None and envelope.time < known.last_heartbeat:
            return  # an older beat (replicas of a producer's clock) never rewinds the state
        if known is not None and known.down and self.rebuilt.is_set():
            silent = (envelope.time - known.last_heartbeat).total_seconds()
            self._pending.append((known, InstanceState.UP, silent))
        self.instances[key] = Instance(beat, envelope.time, entry_id)

    def _limit_s(self, inst: Instance) -> float:
        return self.down_after_intervals * inst.beat.interval_s

    def check(self, now: datetime | None = None) -> None:
        """Mark silent instances down (queueing their alarm) and forget long-dead ones."""
        now = now or utcnow()
        for key, inst in list(self.instances.items()):
            silent = (now - inst.last_heartbeat).total_seconds()
            if inst.down:
                if silent > self.forget_after_s:
                    del self.instances[key]
                continue
            if silent > self._limit_s(inst):
                inst.down = True
                inst.down_since = now
                if self.rebuilt.is_set():
                    self._pending.append((inst, InstanceState.DOWN, silent))

    def snapshot(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()
        out = []
        for inst in sorted(self.instances.values(), key=lambda i: i.key):
            beat = inst.beat
            silent = max(0.0, (now - inst.last_heartbeat).total_seconds())
            status = "down" if inst.down else ("up" if beat.ready else "not-ready")
            out.append(
                {
                    "service": beat.service,
                    "instance": beat.instance,
                    "version": beat.version,
                    "status": status,
                    "ready": beat.ready,
                    "started_at": beat.started_at,
                    "uptime_s": beat.uptime_s + (0.0 if inst.down else silent),
                    "last_heartbeat": inst.last_heartbeat,
                    "seconds_since_heartbeat": silent,
                    "interval_s": beat.interval_s,
                    "down_since": inst.down_since,
                    "figures": dict(beat.figures),
                }
            )
        return out

    # ---- loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        key = self.bus.key(SERVICE_HEARTBEAT)
        start_ms = int((time.time() - self.rebuild_window_s) * 1000)
        tail = StreamTail(self.client, {key: f"{max(start_ms, 0)}-0"})
        block_ms = max(1, int(self.check_interval_s * 1000))
        while not stop.is_set():
            try:
                entries = await tail.read(count=1000, block_ms=block_ms)
                for _, entry_id, fields in entries:
                    self.apply(entry_id, fields)
                if not self.rebuilt.is_set() and len(entries) < 1000:
                    # Caught up with the history: state is rebuilt, alarms from now on.
                    self.check()
                    self.rebuilt.set()
                    log.info("fleet view rebuilt: %d instances", len(self.instances))
                self.check()
                await self._publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.read_errors += 1
                log.warning("fleet tail: %s", exc)
                await asyncio.sleep(min(1.0, self.check_interval_s))

    async def _publish_pending(self) -> None:
        while self._pending:
            inst, state, silent = self._pending[0]
            beat = inst.beat
            dedupe = self.bus.key(f"fleet.alarm:{inst.key}:{state.value}:{inst.last_entry_id}")
            first = await self.client.set(dedupe, self.source, nx=True, ex=ALARM_DEDUPE_TTL_S)
            if first:
                alarm = SystemAlarm(
                    state=state,
                    service=beat.service,
                    instance=beat.instance,
                    version=beat.version,
                    last_heartbeat=inst.last_heartbeat,
                    interval_s=beat.interval_s,
                    silent_for_s=round(silent, 3),
                    reason=(
                        f"no heartbeat for {silent:.1f} s "
                        f"(> {self.down_after_intervals:g} x {beat.interval_s:g} s)"
                        if state == InstanceState.DOWN
                        else f"heartbeats again after {silent:.1f} s of silence"
                    ),
                )
                await self.bus.publish(
                    SYSTEM_ALARMS,
                    EventEnvelope[SystemAlarm](
                        type=SYSTEM_ALARM_TYPE, source=self.source, subject=inst.key, data=alarm
                    ),
                )
                self.stats.alarms_published += 1
                self.stats.transitions.append((inst.key, state))
            self._pending.pop(0)
