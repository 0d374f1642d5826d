"""Relay decisions: one per alert or heard header, made once from the station's rules.

Inputs are ``alert.*`` (CAP, from alerts-api) and ``same.header`` (heard on air, from
eas-monitor). For each: convert (CAP, ECIG V1.0), evaluate every rule (``audio_control.rules``),
and in ONE transaction record the input (idempotency), merge with the same transmission from
the other source or store a new decision, apply an Update's or Cancel's effect on earlier
decisions, and write the ``relay.decision`` events to the outbox; then publish. A decision's
later changes (confirmed, rejected, expired, withdrawn, superseded, forwarded, its message
attached) are announced the same way, each with the decision's whole state and revision + 1.

Decision making is serialised per event code (an asyncio lock in the process, a PostgreSQL
advisory lock across replicas): the CAP copy and the on-air copy of one transmission, handled
at the same moment by two consumers, still meet and become one decision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audio_control import repository as repo
from audio_control.cap_to_eas import AudioResource, Conversion, convert
from audio_control.rules import Candidate, Evaluation, decision_event, evaluate, match_transmissions
from audio_control.services.playout import PlayoutService
from audio_control.services.station import StationView
from audio_control.services.station_log import (
    Entry,
    LogKind,
    StationLog,
    decision_entry,
    entry,
    playout_entries,
    playout_entry,
    received_entry,
)
from eas_schemas.cap import CapAlert, CapMsgType
from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import AlertEventType, AlertLifecycle, AlertState
from eas_schemas.monitor_events import SameHeaderEvent
from eas_schemas.playout_events import (
    PLAYOUT_FAILED_TYPE,
    PLAYOUT_FINISHED_TYPE,
    PLAYOUT_INTERRUPTED_TYPE,
    PLAYOUT_STARTED_TYPE,
    PlayoutEvent,
)
from eas_schemas.relay_events import (
    FORWARDABLE_STATES,
    OPEN_STATES,
    RELAY_DECISION_TYPE,
    DecisionState,
    ReceivedCopy,
    RelayAction,
    RelayDecisionEvent,
    RelaySource,
)
from eas_schemas.streams import AUDIT_RECORDS, RELAY_DECISIONS, StreamSpec
from servicekit.auth.audit import audit_envelope
from servicekit.auth.tokens import Principal
from servicekit.errors import Conflict, NotFound
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)

SERVICE = "audio-control"

# A Cancel (or an expired alert) still stops what has not aired, a manual forward included.
WITHDRAWABLE = OPEN_STATES | {DecisionState.FORWARDED}
# The same transmission from the other source joins any decision of it not yet aired.
MERGEABLE = OPEN_STATES | {
    DecisionState.IGNORED,
    DecisionState.EXPIRED,
    DecisionState.FORWARDED,
    DecisionState.AIRED,
}
# States whose message is composed (a pending one too: the operator previews it).
COMPOSED_STATES = frozenset(
    {
        DecisionState.PENDING_CONFIRMATION,
        DecisionState.SCHEDULED,
        DecisionState.CONFIRMED,
        DecisionState.FORWARDED,
    }
)


class UnusableInput(ValueError):
    """An input event that can never be decided on (the consumer dead-letters it)."""


def _states(states: Sequence[DecisionState] | frozenset[DecisionState]) -> list[str]:
    return sorted(s.value for s in states)


class RelayService:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        source: str,
        station: StationView,
        wake_composer: Callable[[], None] = lambda: None,
        playout: PlayoutService | None = None,
        log: StationLog | None = None,
    ) -> None:
        self.engine = engine
        self.log = log
        self.outbox = outbox
        self.source = source
        self.station = station
        self.wake_composer = wake_composer
        self.playout = playout
        self._gate = asyncio.Lock()
        self.counts: Counter[str] = Counter()

    # ---- inputs ------------------------------------------------------------------------

    async def handle_alert_event(self, envelope: EventEnvelope[dict[str, Any]]) -> str:
        """An ``alert.*`` event; returns what was done (for logs and tests)."""
        try:
            lifecycle = AlertLifecycle.model_validate(envelope.data)
        except ValueError as exc:
            raise UnusableInput(f"not an alert lifecycle payload: {exc}") from exc
        alert = lifecycle.alert
        if envelope.type == AlertEventType.CREATED:
            return await self._on_cap(envelope, lifecycle)
        if envelope.type == AlertEventType.UPDATED and alert.state == AlertState.UPDATED:
            by = f" {lifecycle.by_alert_id}" if lifecycle.by_alert_id else ""
            return await self._close_alert(
                envelope,
                alert.id,
                DecisionState.SUPERSEDED,
                OPEN_STATES,
                f"Replaced by the Update{by}: {lifecycle.reason}.",
            )
        if envelope.type == AlertEventType.CANCELLED:
            return await self._close_alert(
                envelope,
                alert.id,
                DecisionState.WITHDRAWN,
                WITHDRAWABLE,
                f"Withdrawn: the alert was {lifecycle.reason} (ECIG 3.8: a cancelled message "
                "is never delivered).",
            )
        if envelope.type == AlertEventType.EXPIRED:
            return await self._close_alert(
                envelope,
                alert.id,
                DecisionState.WITHDRAWN,
                WITHDRAWABLE,
                "Withdrawn: the alert expired before it aired.",
            )
        return await self._note(envelope, None, f"{envelope.type}: nothing to decide")

    async def handle_heard_header(self, envelope: EventEnvelope[dict[str, Any]]) -> str:
        """A ``same.header`` event (other ``same.*`` types change no decision)."""
        try:
            heard = SameHeaderEvent.model_validate(envelope.data)
        except ValueError as exc:
            raise UnusableInput(f"not a same.header payload: {exc}") from exc
        settings = self.station.settings
        candidate = Candidate.from_air(
            heard, callsign=settings.identity.callsign, heard_event_id=envelope.id
        )
        heard_at = min((h.heard_at for h in heard.inputs), default=envelope.time)
        candidate = dataclasses.replace(candidate, received_at=heard_at)
        compose: dict[str, Any] = {
            "kind": "air",
            "text": heard.description,
            "clip_id": next((h.clip_id for h in heard.inputs if h.clip_id), None),
        }
        return await self._decide(envelope, candidate, compose, supersedes=())

    async def _on_cap(self, envelope: EventEnvelope[dict[str, Any]], life: AlertLifecycle) -> str:
        cap = life.cap
        if cap is None:
            raise UnusableInput("alert.created carries no CAP document (alerts-api too old?)")
        if cap.msg_type in (CapMsgType.ACK, CapMsgType.ERROR):
            outcome = f"CAP {cap.msg_type.value}: not processed"
            return await self._note(envelope, None, outcome, [_received_note(life, outcome)])
        if cap.msg_type == CapMsgType.CANCEL:
            # The Cancel itself never airs; alerts-api announces alert.cancelled for what it
            # cancels, which withdraws those decisions.
            outcome = "CAP Cancel: never aired (ECIG 3.8); it withdraws what it cancels"
            return await self._note(envelope, None, outcome, [_received_note(life, outcome)])
        settings = self.station.settings
        now = utcnow()
        conversion = convert(
            cap,
            callsign=settings.identity.callsign,
            language=settings.relay.language,
            timezone=settings.identity.timezone,
            default_duration_minutes=settings.relay.default_duration_minutes,
            now=now,
        )
        candidate = Candidate.from_cap(cap, conversion, alert_id=life.alert.id)
        candidate = dataclasses.replace(
            candidate,
            received_at=envelope.time,
            feed_deviations=tuple(life.alert.deviations),
        )
        compose = _cap_compose(cap, conversion)
        supersedes = (
            [(r.sender, r.identifier, r.sent) for r in cap.references]
            if cap.msg_type == CapMsgType.UPDATE
            else []
        )
        return await self._decide(envelope, candidate, compose, supersedes=supersedes)

    # ---- deciding ----------------------------------------------------------------------

    async def _decide(
        self,
        envelope: EventEnvelope[dict[str, Any]],
        candidate: Candidate,
        compose: dict[str, Any],
        *,
        supersedes: Sequence[tuple[str, str, datetime]],
    ) -> str:
        settings = self.station.settings
        async with self._gate, self.engine.begin() as conn:
            await repo.lock_decisions(conn, candidate.event_code or "-")
            seen = await repo.input_outcome(conn, envelope.id)
            if seen is not None:
                return f"duplicate of an input already handled: {seen}"
            now = utcnow()
            evaluation = evaluate(candidate, settings.relay, settings.location, now)
            compose = {
                **compose,
                "header": _text(evaluation),
                "is_ean": candidate.event_code == "EAN",
                "hold_until": _iso(_hold(candidate, settings.relay.hold_until_onset)),
            }
            events: list[RelayDecisionEvent] = []
            left = _area_left(evaluation)
            if left is None:
                after, closable = DecisionState.SUPERSEDED, OPEN_STATES
                why = f"Replaced by the Update {candidate.alert_identifier}."
            else:
                # The Update moved the area away from the station: what the earlier message
                # decided no longer holds, and a manual forward not yet aired stops too.
                after, closable = DecisionState.WITHDRAWN, WITHDRAWABLE
                why = (
                    f"Withdrawn: the Update {candidate.alert_identifier} no longer includes "
                    f"the station's area: {left}"
                )
            for row in await repo.decisions_of_identities(conn, supersedes, _states(closable)):
                events.append(await self._change(conn, row, now, state=after, reason=why))
            log = [decision_entry(e) for e in events]
            merged = await self._merge(conn, candidate, evaluation, compose, now)
            if merged is not None:
                events.append(merged)
                log.append(
                    received_entry(merged, candidate.source.value, candidate.heard_header, True)
                )
                outcome = f"merged into decision {merged.decision_id}"
                decision_id = merged.decision_id
                self.counts["merged"] += 1
            else:
                decision_id = await repo.insert_decision(conn, _placeholder(candidate, now))
                event = decision_event(
                    candidate, evaluation, decision_id=decision_id, decided_at=now
                )
                await repo.update_decision(conn, decision_id, 0, _columns(event, compose))
                events.append(event)
                log.append(
                    received_entry(event, candidate.source.value, candidate.heard_header, False)
                )
                outcome = f"decision {decision_id}: {event.state.value}"
                self.counts[event.state.value] += 1
            await repo.record_input(conn, envelope.id, envelope.type, decision_id, outcome, now)
            pending = await self._announce(conn, events, log=log)
        await self.outbox.publish(pending)
        self.wake_composer()
        return outcome

    async def _merge(
        self,
        conn: AsyncConnection,
        candidate: Candidate,
        evaluation: Evaluation,
        compose: dict[str, Any],
        now: datetime,
    ) -> RelayDecisionEvent | None:
        """Join the same transmission received from the other source (ECIG 3.11), if any."""
        if candidate.event_code is None:
            return None
        window = self.station.settings.relay.dedup_window_s
        other = RelaySource.AIR if candidate.source is RelaySource.CAP else RelaySource.CAP
        rows = await repo.dedup_candidates(
            conn,
            candidate.event_code,
            candidate.issued - timedelta(seconds=window),
            candidate.issued + timedelta(seconds=window),
            other.value,
            _states(MERGEABLE),
        )
        for row in rows:
            existing = RelayDecisionEvent.model_validate_json(row.event)
            match = match_transmissions(candidate, existing, window)
            if not match.same:
                continue
            copy = _copy_of(candidate, now)
            also = [*existing.also_received, copy]
            # ECIG 3.11: of the CAP and on-air versions of one alert, neither aired, prefer
            # the CAP one — its audio and text are the originator's own.
            takes_cap = (
                candidate.source is RelaySource.CAP
                and evaluation.action is not RelayAction.IGNORE
                and DecisionState(row.state) not in (DecisionState.FORWARDED, DecisionState.AIRED)
            )
            if not takes_cap:
                return await self._change(
                    conn,
                    row,
                    now,
                    also_received=also,
                    reason=f"{existing.reason} Also received {copy.source.value}: {match.reason}.",
                )
            fresh = decision_event(candidate, evaluation, decision_id=int(row.id), decided_at=now)
            air_copy = ReceivedCopy(
                source=RelaySource.AIR,
                received_at=existing.decided_at,
                heard_event_id=existing.heard_event_id,
                header=existing.header,
                deviations=existing.deviations,
            )
            return await self._change(
                conn,
                row,
                now,
                replace_with=fresh,
                compose=compose,
                also_received=[*existing.also_received, air_copy],
                reason=f"{fresh.reason} The on-air copy heard earlier joins it: {match.reason} "
                "(ECIG 3.11 prefers the CAP version).",
            )
        return None

    async def _close_alert(
        self,
        envelope: EventEnvelope[dict[str, Any]],
        alert_id: int,
        state: DecisionState,
        states: frozenset[DecisionState],
        reason: str,
    ) -> str:
        async with self._gate, self.engine.begin() as conn:
            seen = await repo.input_outcome(conn, envelope.id)
            if seen is not None:
                return f"duplicate of an input already handled: {seen}"
            now = utcnow()
            events = [
                await self._change(conn, row, now, state=state, reason=reason)
                for row in await repo.decisions_of_alert(conn, alert_id, _states(states))
            ]
            outcome = (
                f"{state.value}: decisions {[e.decision_id for e in events]}"
                if events
                else f"{envelope.type}: no open decision for alert {alert_id}"
            )
            await repo.record_input(conn, envelope.id, envelope.type, None, outcome, now)
            pending = await self._announce(conn, events)
        await self.outbox.publish(pending)
        self.counts[state.value] += len(events)
        return outcome

    async def _note(
        self,
        envelope: EventEnvelope[dict[str, Any]],
        decision_id: int | None,
        outcome: str,
        log: Sequence[Entry] = (),
    ) -> str:
        async with self.engine.begin() as conn:
            if await repo.input_outcome(conn, envelope.id) is None:
                await repo.record_input(
                    conn, envelope.id, envelope.type, decision_id, outcome, utcnow()
                )
                if self.log is not None:
                    await self.log.write(conn, log)
        return outcome

    # ---- operators ---------------------------------------------------------------------

    async def confirm(
        self, decision_id: int, actor: Principal, client_addr: str | None
    ) -> RelayDecisionEvent:
        return await self._operator(
            decision_id,
            actor,
            client_addr,
            "relay.confirm",
            allowed=frozenset({DecisionState.PENDING_CONFIRMATION}),
            to=DecisionState.CONFIRMED,
            verb="confirmed",
        )

    async def reject(
        self, decision_id: int, actor: Principal, client_addr: str | None, note: str | None
    ) -> RelayDecisionEvent:
        return await self._operator(
            decision_id,
            actor,
            client_addr,
            "relay.reject",
            allowed=frozenset({DecisionState.PENDING_CONFIRMATION}),
            to=DecisionState.REJECTED,
            verb="rejected",
            note=note,
        )

    async def forward(
        self, decision_id: int, actor: Principal, client_addr: str | None, note: str | None
    ) -> RelayDecisionEvent:
        return await self._operator(
            decision_id,
            actor,
            client_addr,
            "relay.forward",
            allowed=FORWARDABLE_STATES,
            to=DecisionState.FORWARDED,
            verb="forwarded by hand",
            note=note,
        )

    async def _operator(
        self,
        decision_id: int,
        actor: Principal,
        client_addr: str | None,
        action: str,
        *,
        allowed: frozenset[DecisionState],
        to: DecisionState,
        verb: str,
        note: str | None = None,
    ) -> RelayDecisionEvent:
        async with self._gate, self.engine.begin() as conn:
            row = await repo.get_decision(conn, decision_id, lock=True)
            if row is None:
                raise NotFound(f"no relay decision with id {decision_id}")
            current = DecisionState(row.state)
            if current not in allowed:
                names = ", ".join(sorted(s.value for s in allowed))
                raise Conflict(
                    f"decision {decision_id} is {current.value}; only a decision that is "
                    f"{names} can be {verb}"
                )
            now = utcnow()
            updates: dict[str, Any] = {"state": to, "actor": actor.subject}
            if to is not DecisionState.REJECTED:
                if row.header is None:
                    raise Conflict(f"decision {decision_id} has no header that can air")
                if row.purge_at is not None and row.purge_at <= now:
                    raise Conflict(
                        f"decision {decision_id} expired at {row.purge_at.isoformat()}; "
                        "airing it now would air an expired message"
                    )
                updates["relay_at"] = self._relay_at(row, now)
                updates["confirm_by"] = None
            by = f" by {actor.subject}"
            said = f": {note}" if note else ""
            updates["reason"] = f"{verb.capitalize()}{by} at {now:%H:%M:%S} UTC{said}."
            event = await self._change(conn, row, now, **updates)
            audit = audit_envelope(
                SERVICE,
                action,
                actor,
                target=f"relay-decision/{decision_id}",
                client_addr=client_addr,
                detail={
                    "from": current.value,
                    "to": to.value,
                    "header": row.header,
                    "note": note,
                },
            )
            pending = await self._announce(
                conn,
                [event],
                [(AUDIT_RECORDS, audit)],
                log=[decision_entry(event, LogKind.OPERATOR, actor.subject)],
            )
        await self.outbox.publish(pending)
        self.wake_composer()
        self.counts[to.value] += 1
        return event

    def _relay_at(self, row: Any, now: datetime) -> datetime:
        compose = json.loads(row.compose) if row.compose else {}
        start = now
        hold = compose.get("hold_until")
        if hold:
            start = max(start, datetime.fromisoformat(hold))
        if row.event_code == "EAN":
            return start
        return start + timedelta(seconds=self.station.settings.relay.delay_s)

    async def sweep_confirmations(self, now: datetime | None = None, batch: int = 100) -> int:
        """Settle confirmations whose time ran out: ignored (expired), or relayed where the
        rules made it a timed relay. Safe on every replica at once (rows locked, skipped)."""
        settled = 0
        while True:
            async with self._gate, self.engine.begin() as conn:
                at = now or utcnow()
                rows = await repo.due_confirmations(conn, at, batch)
                events = []
                for row in rows:
                    event = RelayDecisionEvent.model_validate_json(row.event)
                    if event.on_timeout is not None and event.on_timeout.value == "relay":
                        events.append(
                            await self._change(
                                conn,
                                row,
                                at,
                                state=DecisionState.SCHEDULED,
                                relay_at=self._relay_at(row, at),
                                confirm_by=None,
                                reason="No operator answered in time: relayed as a timed "
                                "relay (confirmation_timeout_action = relay).",
                            )
                        )
                    else:
                        events.append(
                            await self._change(
                                conn,
                                row,
                                at,
                                state=DecisionState.EXPIRED,
                                confirm_by=None,
                                reason=f"No operator confirmed it by {row.confirm_by:%H:%M:%S} "
                                "UTC: not relayed (an operator may still forward it).",
                            )
                        )
                pending = await self._announce(conn, events)
            await self.outbox.publish(pending)
            settled += len(events)
            if len(rows) < batch:
                if settled:
                    self.wake_composer()
                return settled

    async def on_playout(self, envelope: EventEnvelope[dict[str, Any]]) -> str:
        """A worker's ``playout.*`` per output: logged (the station log's per-output result),
        and a ``playout.finished`` of a decision's item makes the decision ``aired`` (once).
        ``playout.queued`` and ``playout.cancelled`` are logged where they are written."""
        if envelope.type not in _PER_OUTPUT:
            return f"{envelope.type}: logged where it happened"
        try:
            event = PlayoutEvent.model_validate(envelope.data)
        except ValueError as exc:
            raise UnusableInput(f"not a playout event: {exc}") from exc
        async with self._gate, self.engine.begin() as conn:
            seen = await repo.input_outcome(conn, envelope.id)
            if seen is not None:
                return f"duplicate of an input already handled: {seen}"
            now = utcnow()
            events = []
            decision_id = event.decision_id
            if envelope.type == PLAYOUT_FINISHED_TYPE and decision_id is not None:
                row = await repo.get_decision(conn, decision_id, lock=True)
                if row is not None and DecisionState(row.state) is not DecisionState.AIRED:
                    events.append(
                        await self._change(
                            conn,
                            row,
                            now,
                            state=DecisionState.AIRED,
                            reason=f"Aired on {event.output} at {now:%H:%M:%S} UTC.",
                        )
                    )
            outcome = (
                f"aired: decision {decision_id}"
                if events
                else f"{envelope.type} of item {event.item_id} on {event.output}"
            )
            await repo.record_input(conn, envelope.id, envelope.type, decision_id, outcome, now)
            log = [playout_entry(event, envelope.type), *(decision_entry(e) for e in events)]
            pending = await self._announce(conn, events, log=log)
        await self.outbox.publish(pending)
        return outcome

    # ---- message attached --------------------------------------------------------------

    async def attach_message(
        self, conn: AsyncConnection, decision_id: int, message_id: int | None, failure: str | None
    ) -> RelayDecisionEvent | None:
        row = await repo.get_decision(conn, decision_id, lock=True)
        if row is None:
            return None
        now = utcnow()
        if message_id is None:
            await repo.set_message_status(conn, decision_id, "failed")
            event = RelayDecisionEvent.model_validate_json(row.event)
            return await self._change(
                conn, row, now, reason=f"{event.reason} Its message could not be made: {failure}"
            )
        return await self._change(conn, row, now, message_id=message_id, message_status="ready")

    # ---- the one way a decision changes -------------------------------------------------

    async def _change(
        self,
        conn: AsyncConnection,
        row: Any,
        now: datetime,
        *,
        replace_with: RelayDecisionEvent | None = None,
        compose: dict[str, Any] | None = None,
        message_status: str | None = None,
        **updates: Any,
    ) -> RelayDecisionEvent:
        current = RelayDecisionEvent.model_validate_json(row.event)
        base = replace_with if replace_with is not None else current
        fields = {"revision": current.revision + 1, "decided_at": now, **updates}
        if replace_with is not None:
            fields.setdefault("message_id", current.message_id)
        event = base.model_copy(update=fields)
        event = RelayDecisionEvent.model_validate(event.model_dump())  # re-checks the whole
        values = _columns(event, compose)
        if message_status is not None:
            values["message_status"] = message_status
        elif replace_with is not None:
            values["message_status"] = "pending" if event.state in COMPOSED_STATES else "none"
        elif event.state in COMPOSED_STATES and row.message_status == "none":
            values["message_status"] = "pending"
        if not await repo.update_decision(conn, int(row.id), int(row.revision), values):
            raise Conflict(f"decision {row.id} changed meanwhile; try again")
        return event

    async def _announce(
        self,
        conn: AsyncConnection,
        events: Sequence[RelayDecisionEvent],
        extra: Sequence[tuple[StreamSpec, EventEnvelope[Any]]] = (),
        log: Sequence[Entry] | None = None,
    ) -> Any:
        """The decisions' events, what they mean for the playout queue, and ``extra``, all
        into the outbox of the transaction that changed them; then their station log
        entries (``log``, else one per decision event), last, so the chain's head is the
        last lock the transaction takes."""
        items: list[tuple[StreamSpec, EventEnvelope[Any]]] = []
        for event in events:
            items.append((RELAY_DECISIONS, self._envelope(event)))
            if self.playout is not None:
                items += await self.playout.effects(conn, event)
        pending = await self.outbox.add(conn, [*items, *extra])
        if self.log is not None:
            entries = list(log) if log is not None else [decision_entry(e) for e in events]
            await self.log.write(conn, [*entries, *playout_entries(items)])
        return pending

    def _envelope(self, event: RelayDecisionEvent) -> EventEnvelope[RelayDecisionEvent]:
        return EventEnvelope[RelayDecisionEvent](
            type=RELAY_DECISION_TYPE,
            source=self.source,
            subject=f"relay-decision/{event.decision_id}",
            time=event.decided_at,
            data=event,
        )

    # ---- reads -------------------------------------------------------------------------

    async def get(self, decision_id: int) -> RelayDecisionEvent:
        async with self.engine.connect() as conn:
            row = await repo.get_decision(conn, decision_id)
        if row is None:
            raise NotFound(f"no relay decision with id {decision_id}")
        return RelayDecisionEvent.model_validate_json(row.event)

    async def page(
        self, f: repo.DecisionFilter, before_id: int | None, limit: int
    ) -> tuple[list[RelayDecisionEvent], str | None]:
        async with self.engine.connect() as conn:
            rows = await repo.list_decisions(conn, f, before_id, limit + 1)
        more, rows = len(rows) > limit, list(rows[:limit])
        items = [RelayDecisionEvent.model_validate_json(r.event) for r in rows]
        return items, repo.encode_cursor(int(rows[-1].id)) if more else None

    async def pending(self, limit: int = 200) -> list[RelayDecisionEvent]:
        async with self.engine.connect() as conn:
            rows = await repo.pending_confirmations(conn, limit)
        return [RelayDecisionEvent.model_validate_json(r.event) for r in rows]


_PER_OUTPUT = frozenset(
    {PLAYOUT_STARTED_TYPE, PLAYOUT_FINISHED_TYPE, PLAYOUT_INTERRUPTED_TYPE, PLAYOUT_FAILED_TYPE}
)


def _received_note(life: AlertLifecycle, outcome: str) -> Entry:
    """A CAP message that makes no decision of its own (Cancel, Ack, Error): still logged."""
    cap = life.cap
    alert = life.alert
    return entry(
        LogKind.RECEIVED_CAP,
        f"Received by CAP: {cap.msg_type.value if cap else '?'} {alert.identifier}: {outcome}",
        alert_id=alert.id,
        reasons=outcome,
        detail={
            "sender": cap.sender if cap else None,
            "identifier": alert.identifier,
            "references": [r.identifier for r in cap.references] if cap else [],
        },
    )


# ---- row values ----------------------------------------------------------------------------


def _area_left(evaluation: Evaluation) -> str | None:
    """Why an alert is not for the station's area (its location check), None if it is."""
    for check in evaluation.checks:
        if (
            check.rule == "location"
            and not check.passed
            and check.consequence is RelayAction.IGNORE
        ):
            return check.detail
    return None


def _text(evaluation: Evaluation) -> str | None:
    return evaluation.header.text if evaluation.header is not None else None


def _placeholder(candidate: Candidate, now: datetime) -> dict[str, Any]:
    """The row before its id is known (the event names the id): revision 0, replaced at once."""
    return {
        "source": candidate.source.value,
        "state": "new",
        "action": "ignore",
        "revision": 0,
        "issued": candidate.issued,
        "precedence": 99,
        "message_status": "none",
        "decided_at": now,
        "created_at": now,
        "event": "{}",
    }


def _columns(event: RelayDecisionEvent, compose: dict[str, Any] | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "source": event.source.value,
        "state": event.state.value,
        "action": event.action.value,
        "revision": event.revision,
        "alert_id": event.alert_id,
        "alert_sender": event.alert_sender,
        "alert_identifier": event.alert_identifier,
        "heard_event_id": event.heard_event_id,
        "event_code": event.event_code,
        "originator": event.originator,
        "header": event.header,
        "issued": event.issued,
        "purge_at": event.purge_at,
        "precedence": event.precedence,
        "relay_at": event.relay_at,
        "confirm_by": event.confirm_by,
        "message_id": event.message_id,
        "decided_at": event.decided_at,
        "event": event.model_dump_json(),
    }
    if compose is not None:
        values["compose"] = json.dumps(compose, default=str)
        if event.source is RelaySource.CAP and compose.get("sent"):
            values["alert_sent"] = datetime.fromisoformat(compose["sent"])
        values["message_status"] = "pending" if event.state in COMPOSED_STATES else "none"
    return values


def _cap_compose(cap: CapAlert, conversion: Conversion) -> dict[str, Any]:
    return {
        "kind": "cap",
        "text": conversion.alert_text,
        "audio": _resource(conversion.audio_resource),
        "sent": cap.sent.isoformat(),
    }


def _hold(candidate: Candidate, until_onset: bool) -> datetime | None:
    """Not aired before it is in effect (the same times the rules hold it to)."""
    times = [candidate.effective, candidate.onset if until_onset else None]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _resource(resource: AudioResource | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    return {
        "mime_type": resource.mime_type,
        "kind": resource.kind.value,
        "uri": resource.uri,
        "deref_uri": resource.deref_uri,
        "size": resource.size,
        "digest": resource.digest,
    }


def _copy_of(candidate: Candidate, now: datetime) -> ReceivedCopy:
    return ReceivedCopy(
        source=candidate.source,
        received_at=candidate.received_at or now,
        alert_id=candidate.alert_id,
        alert_identifier=candidate.alert_identifier,
        heard_event_id=candidate.heard_event_id,
        header=candidate.heard_header
        or (candidate.header.text if candidate.header is not None else None),
        confidence=candidate.confidence,
        deviations=list(candidate.deviations),
    )
