"""The playout worker's SQL: sync (SQLAlchemy Core on psycopg or sqlite3), same tables as the
service. Every event the worker announces is written to the outbox in the transaction of the
change it reports, then published; what fails to publish is sent by the service's flusher."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, insert, select, update

from audio_control.tables import (
    message_audio,
    outbox,
    playout_airings,
    playout_items,
    playout_outputs,
)
from eas_schemas.envelope import EventEnvelope, encode_entry
from eas_schemas.playout_events import ItemState, PlayoutEvent
from eas_schemas.relay_events import PrecedenceClass
from eas_schemas.streams import PLAYOUT_EVENTS, SYSTEM_ALARMS, StreamSpec
from eas_schemas.system_events import OUTPUT_ALARM_TYPE, OutputAlarm
from servicekit.bus import SyncBus
from servicekit.db import sync_database_url

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secret: str | None
    keying: dict[str, Any]


def make_sync_engine(url: str) -> Engine:
    sync_url = sync_database_url(url)
    if sync_url.startswith("postgresql"):
        return create_engine(sync_url, pool_size=2, max_overflow=2, pool_pre_ping=True)
    return create_engine(sync_url, connect_args={"timeout": 5.0})


class PlayoutStore:
    def __init__(self, engine: Engine, bus: SyncBus, source: str) -> None:
        self.engine = engine
        self.bus = bus
        self.source = source

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ---- outputs -----------------------------------------------------------------------

    def outputs(self) -> list[OutputSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(playout_outputs)
                .where(playout_outputs.c.enabled.is_(True))
                .order_by(playout_outputs.c.id)
            ).all()
        return [
            OutputSpec(
                id=int(r.id),
                name=r.name,
                kind=r.kind,
                config=json.loads(r.config),
                secret=r.secret,
                keying=json.loads(r.keying),
            )
            for r in rows
        ]

    # ---- the queue ---------------------------------------------------------------------

    def claim_next(self, now: datetime) -> Any:
        """The next item due, in air order, marked playing (skipping rows another worker
        has locked)."""
        with self.begin() as conn:
            stmt = (
                select(playout_items)
                .where(
                    playout_items.c.state == ItemState.QUEUED.value,
                    playout_items.c.air_at <= now,
                )
                .order_by(playout_items.c.precedence, playout_items.c.air_at, playout_items.c.id)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            row = conn.execute(stmt).one_or_none()
            if row is None:
                return None
            conn.execute(
                update(playout_items)
                .where(playout_items.c.id == row.id)
                .values(state=ItemState.PLAYING.value, started_at=now)
            )
        return row

    def preempting(self, now: datetime, precedence: int) -> Any:
        """A queued EAN due now while something of lower precedence plays, if any."""
        if precedence == 0:
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                select(playout_items.c.id, playout_items.c.header)
                .where(
                    playout_items.c.state == ItemState.QUEUED.value,
                    playout_items.c.precedence == 0,
                    playout_items.c.air_at <= now,
                )
                .limit(1)
            ).one_or_none()

    def playing(self) -> Sequence[Any]:
        with self.engine.connect() as conn:
            return conn.execute(
                select(playout_items).where(playout_items.c.state == ItemState.PLAYING.value)
            ).all()

    def playing_on(self, output_id: int) -> Sequence[Any]:
        """Items whose airing on ``output_id`` began and never ended."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(playout_items)
                .join(playout_airings, playout_airings.c.item_id == playout_items.c.id)
                .where(
                    playout_airings.c.output_id == output_id,
                    playout_airings.c.state == ItemState.PLAYING.value,
                )
                .order_by(playout_items.c.id)
            ).all()

    def unclaim(self, item_id: int) -> None:
        """A claimed item that never went on air, back in the queue (its unfinished airing
        records go: none of them played a sample)."""
        with self.begin() as conn:
            conn.execute(
                delete(playout_airings).where(
                    playout_airings.c.item_id == item_id,
                    playout_airings.c.state == ItemState.PLAYING.value,
                )
            )
            conn.execute(
                update(playout_items)
                .where(
                    playout_items.c.id == item_id,
                    playout_items.c.state == ItemState.PLAYING.value,
                )
                .values(state=ItemState.QUEUED.value, started_at=None)
            )

    def audio(self, message_id: int) -> bytes:
        with self.engine.connect() as conn:
            wav = conn.execute(
                select(message_audio.c.wav).where(message_audio.c.message_id == message_id)
            ).scalar_one_or_none()
        if wav is None:
            raise LookupError(f"message {message_id} has no audio")
        return bytes(wav)

    def airings(self, item_id: int) -> dict[int, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(playout_airings.c.output_id, playout_airings.c.state).where(
                    playout_airings.c.item_id == item_id
                )
            ).all()
        return {int(r.output_id): str(r.state) for r in rows}

    def start_airing(
        self, item: Any, output: OutputSpec, now: datetime, event: PlayoutEvent
    ) -> bool:
        """Record that ``output`` starts ``item``; False if it already did (never twice)."""
        with self.begin() as conn:
            exists = conn.execute(
                select(playout_airings.c.state).where(
                    playout_airings.c.item_id == item.id,
                    playout_airings.c.output_id == output.id,
                )
            ).first()
            if exists is not None:
                return False
            conn.execute(
                insert(playout_airings).values(
                    item_id=item.id,
                    output_id=output.id,
                    state=ItemState.PLAYING.value,
                    started_at=now,
                    result="{}",
                )
            )
            pending = self._outbox(conn, [event])
        self._publish(pending)
        return True

    def finish_airing(
        self,
        item_id: int,
        output_id: int,
        state: ItemState,
        now: datetime,
        result: dict[str, Any],
        event: PlayoutEvent,
        alarm: OutputAlarm | None = None,
    ) -> None:
        also: list[tuple[StreamSpec, EventEnvelope[Any]]] = []
        if alarm is not None:
            also.append(
                (
                    SYSTEM_ALARMS,
                    EventEnvelope[OutputAlarm](
                        type=OUTPUT_ALARM_TYPE,
                        source=self.source,
                        subject=f"playout-output/{alarm.output}",
                        time=alarm.at,
                        data=alarm,
                    ),
                )
            )
        with self.begin() as conn:
            conn.execute(
                update(playout_airings)
                .where(
                    playout_airings.c.item_id == item_id, playout_airings.c.output_id == output_id
                )
                .values(state=state.value, finished_at=now, result=json.dumps(result, default=str))
            )
            pending = self._outbox(conn, [event], also=also)
        self._publish(pending)

    def finish_item(
        self, item_id: int, state: ItemState, now: datetime, reason: str, actor: str | None
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                update(playout_items)
                .where(playout_items.c.id == item_id)
                .values(state=state.value, finished_at=now, reason=reason, actor=actor)
            )

    def requeue(self, item: Any, now: datetime, reason: str) -> int:
        """The interrupted item again, to air after what interrupted it."""
        with self.begin() as conn:
            new_id = conn.execute(
                insert(playout_items)
                .values(
                    message_id=item.message_id,
                    decision_id=item.decision_id,
                    header=item.header,
                    event_code=item.event_code,
                    precedence=item.precedence,
                    precedence_class=item.precedence_class,
                    air_at=now,
                    state=ItemState.QUEUED.value,
                    queued_at=now,
                    reason=reason,
                    requeue_of=item.id,
                )
                .returning(playout_items.c.id)
            ).scalar_one()
            event = item_event(item, new_id, ItemState.QUEUED, now, reason)
            pending = self._outbox(conn, [event], etype="playout.queued")
        self._publish(pending)
        return int(new_id)

    # ---- announcing --------------------------------------------------------------------

    def _outbox(
        self,
        conn: Connection,
        events: Sequence[PlayoutEvent],
        etype: str | None = None,
        also: Sequence[tuple[StreamSpec, EventEnvelope[Any]]] = (),
    ) -> list[tuple[int, StreamSpec, dict[str, str]]]:
        items: list[tuple[StreamSpec, EventEnvelope[Any]]] = [
            (
                PLAYOUT_EVENTS,
                EventEnvelope[PlayoutEvent](
                    type=etype or f"playout.{_type_of(event)}",
                    source=self.source,
                    subject=f"playout-item/{event.item_id}",
                    time=event.at,
                    data=event,
                ),
            )
            for event in events
        ]
        rows: list[tuple[int, StreamSpec, dict[str, str]]] = []
        for stream, envelope in [*items, *also]:
            fields = encode_entry(envelope)
            row_id = conn.execute(
                insert(outbox)
                .values(stream=stream.name, envelope=fields["envelope"], created_at=envelope.time)
                .returning(outbox.c.id)
            ).scalar_one()
            rows.append((int(row_id), stream, fields))
        return rows

    def _publish(self, pending: list[tuple[int, StreamSpec, dict[str, str]]]) -> None:
        """Publish committed events; what fails stays for the service's outbox flusher."""
        sent: list[int] = []
        try:
            for row_id, stream, fields in pending:
                self.bus.client.xadd(
                    self.bus.key(stream),
                    dict(fields),  # type: ignore[arg-type]
                    maxlen=stream.maxlen,
                    approximate=True,
                )
                sent.append(row_id)
        except Exception as exc:
            log.warning("playout event not published now (left in the outbox): %s", exc)
        if sent:
            with self.begin() as conn:
                conn.execute(delete(outbox).where(outbox.c.id.in_(sent)))


def _type_of(event: PlayoutEvent) -> str:
    return {
        ItemState.PLAYING: "started",
        ItemState.AIRED: "finished",
        ItemState.INTERRUPTED: "interrupted",
        ItemState.FAILED: "failed",
        ItemState.QUEUED: "queued",
        ItemState.CANCELLED: "cancelled",
    }[event.state]


def item_event(
    item: Any,
    item_id: int,
    state: ItemState,
    at: datetime,
    reason: str,
    *,
    output: OutputSpec | None = None,
    duration_s: float | None = None,
    actor: str | None = None,
    detail: dict[str, str | int | float | bool | None] | None = None,
) -> PlayoutEvent:
    return PlayoutEvent(
        item_id=item_id,
        message_id=item.message_id,
        decision_id=item.decision_id,
        header=item.header,
        event_code=item.event_code,
        precedence=item.precedence,
        precedence_class=PrecedenceClass(item.precedence_class),
        state=state,
        output=output.name if output else None,
        output_kind=output.kind if output else None,
        air_at=item.air_at,
        at=at,
        duration_s=duration_s,
        reason=reason,
        actor=actor,
        detail=detail or {},
    )
