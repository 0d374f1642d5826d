"""The playout queue as the service sees it: items enter when a decision may air and its
message is ready (or an operator sends an origination, or resends an aired item), leave when
a Cancel, an Update or an operator withdraws them before they play; operators' commands go to
the playout worker, which answers after it acted.

The worker (``audio_control.playout.worker``, its own process) takes items in precedence order
and plays them; what it reports on ``playout.events`` comes back here through the consumer
group: an aired decision is marked ``aired`` (so a later copy of the same transmission never
airs again, ECIG 3.11).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audio_control.services.station_log import (
    Entry,
    LogKind,
    StationLog,
    entry,
    header_parts,
    playout_entries,
)
from audio_control.tables import messages, playout_items, playout_outputs
from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope
from eas_schemas.playout_events import (
    PLAYOUT_CANCELLED_TYPE,
    PLAYOUT_COMMAND_TYPE,
    PLAYOUT_QUEUED_TYPE,
    PLAYOUT_REPLY_KEY,
    PLAYOUT_WORKER_KEY,
    CommandKind,
    ItemState,
    PlayoutCommand,
    PlayoutEvent,
    PlayoutReply,
)
from eas_schemas.relay_events import DecisionState, PrecedenceClass, RelayDecisionEvent
from eas_schemas.streams import AUDIT_RECORDS, PLAYOUT_COMMANDS, PLAYOUT_EVENTS, StreamSpec
from servicekit.auth.audit import audit_envelope
from servicekit.auth.tokens import Principal
from servicekit.bus import AsyncBus
from servicekit.errors import Conflict, NotConfirmed, NotFound
from servicekit.outbox import Outbox, Pending

SERVICE = "audio-control"

# Decision states whose message goes on air, and those that take it off the queue.
AIRABLE = frozenset({DecisionState.SCHEDULED, DecisionState.CONFIRMED, DecisionState.FORWARDED})
CLOSED = frozenset(
    {
        DecisionState.WITHDRAWN,
        DecisionState.SUPERSEDED,
        DecisionState.REJECTED,
        DecisionState.EXPIRED,
    }
)
EAN_PRECEDENCE = 0
LIVE_ITEM_STATES = (ItemState.QUEUED.value, ItemState.PLAYING.value, ItemState.AIRED.value)

Item = tuple[StreamSpec, EventEnvelope[Any]]

log = logging.getLogger(__name__)


_REPLY_POLL_S = 1.0


class PlayoutService:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        bus: AsyncBus,
        source: str,
        *,
        command_timeout_s: float = 10.0,
        log: StationLog | None = None,
    ) -> None:
        self.engine = engine
        self.log = log
        self.outbox = outbox
        self.bus = bus
        self.source = source
        self.command_timeout_s = command_timeout_s

    # ---- decisions' effects (inside the decision's transaction) -------------------------

    async def effects(self, conn: AsyncConnection, event: RelayDecisionEvent) -> list[Item]:
        """What a decision's new state means for the queue: queue its message once it may
        air, or take it off the queue when the decision closed before it played."""
        if (
            event.state in AIRABLE
            and event.message_id is None
            and event.precedence == EAN_PRECEDENCE
            and (event.relay_at is None or event.relay_at <= utcnow())
        ):
            # Composing the EAN's message takes a moment (text-to-speech); what is on air
            # gives way now, and the EAN airs as soon as its message is ready.
            return [self._preempt(event)]
        if event.state in AIRABLE and event.message_id is not None and event.header:
            live = await conn.execute(
                select(playout_items.c.id).where(
                    playout_items.c.decision_id == event.decision_id,
                    playout_items.c.state.in_(LIVE_ITEM_STATES),
                )
            )
            if live.first() is not None:
                return []
            at = event.relay_at or utcnow()
            reason = f"Queued: {event.reason}"
            item = await self._insert(
                conn,
                message_id=event.message_id,
                decision_id=event.decision_id,
                header=event.header,
                event_code=event.event_code or "???",
                precedence=event.precedence,
                precedence_class=event.precedence_class,
                air_at=at,
                reason=reason,
                actor=event.actor,
            )
            return [self._envelope(PLAYOUT_QUEUED_TYPE, item)]
        if event.state in CLOSED:
            return await self._cancel(
                conn,
                playout_items.c.decision_id == event.decision_id,
                f"Left the queue: {event.reason}",
                event.actor,
            )
        return []

    # ---- operators ---------------------------------------------------------------------

    async def send_message(
        self,
        message_id: int,
        actor: Principal,
        client_addr: str | None,
        precedence: tuple[int, PrecedenceClass],
    ) -> PlayoutEvent:
        """Queue an originated message for air now (audited)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(select(messages).where(messages.c.id == message_id))
            ).one_or_none()
            if row is None:
                raise NotFound(f"no EAS message with id {message_id}")
            if row.kind != "origination":
                raise Conflict(
                    f"message {message_id} belongs to relay decision {row.decision_id}; it airs "
                    "through the decision (confirm or forward it)"
                )
            item = await self._insert(
                conn,
                message_id=message_id,
                decision_id=None,
                header=row.header,
                event_code=row.event_code,
                precedence=precedence[0],
                precedence_class=precedence[1],
                air_at=utcnow(),
                reason=f"Originated by {actor.subject}: sent to air.",
                actor=actor.subject,
            )
            items = [self._envelope(PLAYOUT_QUEUED_TYPE, item)]
            audit = self._audit(
                actor, client_addr, "audio.send", f"eas-message/{message_id}", row.header
            )
            pending = await self.outbox.add(conn, [*items, audit])
            originator, _, locations = header_parts(row.header)
            sent = entry(
                LogKind.ORIGINATED,
                f"Message {message_id} sent to air by {actor.subject} (item {item.id}): "
                f"{row.header}",
                originator=originator,
                event_code=row.event_code,
                locations=locations,
                header=row.header,
                reasons=item.reason,
                actor=actor.subject,
                message_id=message_id,
                item_id=item.id,
                detail={"precedence_class": precedence[1].value, "client_addr": client_addr},
            )
            await self._log(conn, [sent])
        return await self._published(pending, items)

    async def resend(self, item_id: int, actor: Principal, client_addr: str | None) -> PlayoutEvent:
        async with self.engine.begin() as conn:
            row = await self._item(conn, item_id)
            if row.state not in (ItemState.AIRED.value, ItemState.INTERRUPTED.value):
                raise Conflict(
                    f"item {item_id} is {row.state}; only an aired or interrupted item can be "
                    "resent"
                )
            item = await self._insert(
                conn,
                message_id=row.message_id,
                decision_id=row.decision_id,
                header=row.header,
                event_code=row.event_code,
                precedence=row.precedence,
                precedence_class=PrecedenceClass(row.precedence_class),
                air_at=utcnow(),
                reason=f"Resent by {actor.subject} (item {item_id}).",
                actor=actor.subject,
                resend_of=item_id,
            )
            items = [self._envelope(PLAYOUT_QUEUED_TYPE, item)]
            audit = self._audit(
                actor, client_addr, "audio.resend", f"playout-item/{item_id}", row.header
            )
            pending = await self.outbox.add(conn, [*items, audit])
            await self._log(conn, playout_entries(items))
        return await self._published(pending, items)

    async def cancel(self, item_id: int, actor: Principal, client_addr: str | None) -> PlayoutEvent:
        async with self.engine.begin() as conn:
            row = await self._item(conn, item_id)
            if row.state != ItemState.QUEUED.value:
                raise Conflict(
                    f"item {item_id} is {row.state}; only a queued item can be taken off the "
                    "queue (stop it instead if it is on air)"
                )
            items = await self._cancel(
                conn,
                playout_items.c.id == item_id,
                f"Taken off the queue by {actor.subject}.",
                actor.subject,
            )
            audit = self._audit(
                actor, client_addr, "audio.cancel", f"playout-item/{item_id}", row.header
            )
            pending = await self.outbox.add(conn, [*items, audit])
            await self._log(conn, playout_entries(items))
        return await self._published(pending, items)

    async def _log(self, conn: AsyncConnection, entries: list[Entry]) -> None:
        if self.log is not None:
            await self.log.write(conn, entries)

    async def _published(self, pending: Pending, items: list[Item]) -> PlayoutEvent:
        """After the commit: publish what the transaction wrote; the first item's event."""
        await self.outbox.publish(pending)
        event: PlayoutEvent = items[0][1].data
        return event

    def _audit(
        self, actor: Principal, client_addr: str | None, action: str, target: str, what: str
    ) -> Item:
        return (
            AUDIT_RECORDS,
            audit_envelope(
                SERVICE,
                action,
                actor,
                target=target,
                client_addr=client_addr,
                detail={"what": what},
            ),
        )

    async def queue(self) -> list[PlayoutEvent]:
        """What is on air and what waits, in air order."""
        stmt = (
            select(playout_items)
            .where(playout_items.c.state.in_((ItemState.QUEUED.value, ItemState.PLAYING.value)))
            .order_by(playout_items.c.precedence, playout_items.c.air_at, playout_items.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [self._event(r, r.reason) for r in rows]

    async def command(
        self,
        kind: CommandKind,
        actor: str,
        *,
        output: str | None = None,
        seconds: float | None = None,
    ) -> PlayoutReply:
        """Send a command to the playout worker and wait for what it did."""
        if output is not None:
            await self._output_named(output)
        workers = await self.workers()
        if not workers:
            if kind is CommandKind.STATUS:
                return PlayoutReply(
                    command_id="",
                    ok=False,
                    detail="no playout worker is running: nothing can go on air",
                    state={"workers": 0},
                )
            raise Conflict(
                f"no playout worker is running, so nothing is on air and nothing can act on "
                f"the {kind.value} command: start one with `audio-control playout` "
                "(or AUDIO_CONTROL_RUN_PLAYOUT=true in the service)"
            )
        command = PlayoutCommand(
            command_id=uuid.uuid4().hex,
            kind=kind,
            output=output,
            seconds=seconds,
            actor=actor,
            at=utcnow(),
        )
        await self.bus.publish(
            PLAYOUT_COMMANDS,
            EventEnvelope[PlayoutCommand](
                type=PLAYOUT_COMMAND_TYPE, source=self.source, subject=kind.value, data=command
            ),
        )
        key = self.bus.key(f"{PLAYOUT_REPLY_KEY}:{command.command_id}")
        wait_s = self.command_timeout_s + (seconds or 0)
        deadline = time.monotonic() + wait_s
        got = None
        # Short waits: the client's read timeout (redis-py's default is 5 s) must stay longer
        # than any one BLPOP, or a worker that is merely slow reads as Redis being down.
        while got is None and (left := deadline - time.monotonic()) > 0:
            got = await self.bus.client.blpop([key], timeout=min(_REPLY_POLL_S, max(left, 0.1)))
        if got is None:
            raise NotConfirmed(
                f"no playout worker answered the {kind.value} command within {wait_s:.0f} s "
                "(is the worker running? see /api/audio/playout/status)"
            )
        return PlayoutReply.model_validate_json(got[1])

    async def workers(self) -> list[str]:
        """The playout workers alive now (each keeps its presence key fresh)."""
        prefix = self.bus.key(f"{PLAYOUT_WORKER_KEY}:")
        found = [key async for key in self.bus.client.scan_iter(match=f"{prefix}*", count=100)]
        return sorted(str(key).removeprefix(prefix) for key in found)

    async def _output_named(self, name: str) -> None:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(playout_outputs.c.id).where(playout_outputs.c.name == name)
            )
            if found.first() is None:
                raise NotFound(f"no output is named {name!r} (GET /api/audio/outputs lists them)")

    async def ensure_an_output(self, aired_dir: Path) -> None:
        """A fresh station plays into a folder of WAV files, so a newcomer hears what aired."""
        now = utcnow()
        # Absolute: the worker may run from another directory than the API.
        folder = str(Path.cwd() / aired_dir) if not aired_dir.is_absolute() else str(aired_dir)
        try:
            async with self.engine.begin() as conn:
                if (await conn.execute(select(playout_outputs.c.id).limit(1))).first():
                    return
                await conn.execute(
                    insert(playout_outputs).values(
                        name="wav-folder",
                        kind="wav_folder",
                        config=json.dumps({"kind": "wav_folder", "folder": folder}),
                        keying=json.dumps({"kind": "none"}),
                        enabled=True,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            # Another replica starting at the same moment made it (the name is unique): the
            # station has its output. This used to fail the start of the second replica.
            log.info("the first output was made by another replica starting at the same time")

    # ---- inside ------------------------------------------------------------------------

    async def _insert(self, conn: AsyncConnection, **values: Any) -> Any:
        now = utcnow()
        result = await conn.execute(
            insert(playout_items)
            .values(state=ItemState.QUEUED.value, queued_at=now, **values)
            .returning(playout_items)
        )
        return result.one()

    async def _item(self, conn: AsyncConnection, item_id: int) -> Any:
        row = (
            await conn.execute(select(playout_items).where(playout_items.c.id == item_id))
        ).one_or_none()
        if row is None:
            raise NotFound(f"no playout item with id {item_id}")
        return row

    async def _cancel(
        self, conn: AsyncConnection, which: Any, reason: str, actor: str | None
    ) -> list[Item]:
        now = utcnow()
        result = await conn.execute(
            update(playout_items)
            .where(which, playout_items.c.state == ItemState.QUEUED.value)
            .values(state=ItemState.CANCELLED.value, finished_at=now, reason=reason, actor=actor)
            .returning(playout_items)
        )
        return [self._envelope(PLAYOUT_CANCELLED_TYPE, r) for r in result.all()]

    def _event(self, row: Any, reason: str, at: datetime | None = None) -> PlayoutEvent:
        return PlayoutEvent(
            item_id=row.id,
            message_id=row.message_id,
            decision_id=row.decision_id,
            header=row.header,
            event_code=row.event_code,
            precedence=row.precedence,
            precedence_class=PrecedenceClass(row.precedence_class),
            state=ItemState(row.state),
            air_at=row.air_at,
            at=at or utcnow(),
            reason=reason,
            actor=row.actor,
        )

    def _preempt(self, event: RelayDecisionEvent) -> Item:
        command = PlayoutCommand(
            command_id=uuid.uuid4().hex,
            kind=CommandKind.PREEMPT,
            precedence=event.precedence,
            decision_id=event.decision_id,
            actor=self.source,
            at=utcnow(),
        )
        return (
            PLAYOUT_COMMANDS,
            EventEnvelope[PlayoutCommand](
                type=PLAYOUT_COMMAND_TYPE,
                source=self.source,
                subject=f"relay-decision/{event.decision_id}",
                data=command,
            ),
        )

    def _envelope(self, etype: str, row: Any) -> Item:
        event = self._event(row, row.reason)
        return (
            PLAYOUT_EVENTS,
            EventEnvelope[PlayoutEvent](
                type=etype, source=self.source, subject=f"playout-item/{row.id}", data=event
            ),
        )
