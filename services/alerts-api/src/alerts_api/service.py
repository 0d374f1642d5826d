"""Alert store logic: idempotent ingest, Update/Cancel chains, expiry, lifecycle events.

Every change commits its rows and its lifecycle events (to the outbox table) in one
transaction, then publishes. If publishing fails the events stay in the outbox and the
outbox flusher sends them later, so an acknowledged ingest is never an unannounced one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts_api import repository as repo
from alerts_api.render import AlertItem, build_item, geometry_json, summary_of
from alerts_api.schemas import (
    AlertStats,
    CreatedAlert,
    HistoryEntry,
    ReferenceOut,
    RelatedAlert,
)
from alerts_api.tables import alert_outbox
from eas_schemas.cap import CapAlert, CapMsgType, CapReference
from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import AlertEventType, AlertIngested, AlertLifecycle, AlertState, FeedKind
from eas_schemas.relevance import RelevanceDecision, RelevanceMatch, decide_relevance
from eas_schemas.streams import ALERT_EVENTS
from servicekit.bus import AsyncBus
from servicekit.errors import Conflict, NotFound
from servicekit.outbox import Outbox, Pending

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    alert_id: int | None
    duplicate: bool


@dataclass
class _Tx:
    """Events produced inside one transaction, written to the outbox before commit."""

    envelopes: list[EventEnvelope[AlertLifecycle]] = field(default_factory=list)


class AlertService:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: AsyncBus | None,
        source: str,
        station_same: list[str],
        station_ugc: list[str],
        station_sender: str = "eas-station@localhost",
        missing_expires: timedelta = timedelta(hours=24),
    ) -> None:
        self.engine = engine
        self.outbox = Outbox(engine, bus, alert_outbox)
        self._cancel_gate = asyncio.Lock()
        # Reads run in autocommit: a single SELECT needs no BEGIN/ROLLBACK round trips.
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.source = source
        self.station_same = list(station_same)
        self.station_ugc = list(station_ugc)
        # Bumped on every change of the codes: an ingest that began under older codes
        # re-checks what it stored (a recompute may already have passed those rows).
        self.codes_generation = 0
        self.station_sender = station_sender
        self.missing_expires = missing_expires
        self.relevance_changes = 0
        self.stored = 0
        self.duplicates = 0

    def relevance(self, cap: CapAlert) -> RelevanceDecision:
        return decide_relevance(cap, self.station_same, self.station_ugc)

    # ---- ingest ----------------------------------------------------------------------

    async def ingest(self, ingested: AlertIngested) -> IngestResult:
        return (await self.ingest_batch([ingested]))[0]

    async def ingest_batch(
        self,
        batch: list[AlertIngested],
        announce: bool = True,
        notes: list[str | None] | None = None,
    ) -> list[IngestResult]:
        """Store a batch of fetched alerts in ONE transaction, then announce them.

        A handful of statements per batch instead of per alert: this is what lets one
        consumer keep up with hundreds of alerts per second. Within the batch, alerts are
        handled in the order given (stream order), so an Update after its Alert works.
        ``announce=False`` is for history brought in from another station: it is stored
        by the same rules but no lifecycle event is sent, so nothing downstream (relay,
        dashboards) acts on alerts that station already handled; ``notes`` (one per alert,
        or None) go into each newly stored alert's history in the same transaction, e.g.
        what that station decided about it.
        """
        now = utcnow()
        tx = _Tx()
        generation = self.codes_generation
        async with self.engine.begin() as conn:
            await repo.lock_identities(conn, _identity_keys(batch))
            results = await self._store(conn, tx, batch, now)
            for result, note in zip(results, notes or [], strict=False):
                if note and not result.duplicate and result.alert_id is not None:
                    for row in await repo.lock_alerts(conn, [result.alert_id]):
                        await repo.add_history(
                            conn, result.alert_id, now, row.state, row.state, note
                        )
            if not announce:
                tx.envelopes.clear()
            pending = await self._to_outbox(conn, tx)
        await self.outbox.publish(pending)
        new = sum(1 for r in results if not r.duplicate)
        self.stored += new
        self.duplicates += len(results) - new
        if generation != self.codes_generation and new:
            await self.recompute_relevance()
        return results

    async def _store(
        self, conn: AsyncConnection, tx: _Tx, batch: list[AlertIngested], now: datetime
    ) -> list[IngestResult]:
        decisions = [self.relevance(ingested.alert) for ingested in batch]
        rows = [
            self._row(ingested, decision, now)
            for ingested, decision in zip(batch, decisions, strict=True)
        ]
        inserted = await repo.insert_alerts(conn, rows)
        decided: dict[int, RelevanceDecision] = {}
        new: list[tuple[int, AlertIngested, dict[str, Any]]] = []
        claimed: set[int] = set()
        results: list[IngestResult] = []
        for ingested, row, decision in zip(batch, rows, decisions, strict=True):
            alert_id = inserted.get(_identity(ingested.alert))
            if alert_id is None or alert_id in claimed:
                results.append(IngestResult(alert_id=None, duplicate=True))
                continue
            claimed.add(alert_id)
            decided[alert_id] = decision
            new.append((alert_id, ingested, row))
            results.append(IngestResult(alert_id, False))
        if not new:
            return results
        await repo.insert_codes_many(
            conn,
            [(aid, "SAME", c) for aid, ing, _ in new for c in ing.alert.same_codes()]
            + [(aid, "UGC", c) for aid, ing, _ in new for c in ing.alert.ugc_codes()],
        )
        # References resolve against everything visible: earlier batches and this one.
        wanted = {
            (r.sender, r.identifier, r.sent) for _, ing, _ in new for r in ing.alert.references
        }
        targets = await repo.find_alert_ids(conn, wanted)
        await repo.insert_references_many(
            conn,
            [
                (aid, r.sender, r.identifier, r.sent, targets.get((r.sender, r.identifier, r.sent)))
                for aid, ing, _ in new
                for r in ing.alert.references
            ],
        )
        items: dict[int, AlertItem] = {}
        for aid, ing, row in new:
            refs = [
                t
                for r in ing.alert.references
                if (t := targets.get((r.sender, r.identifier, r.sent))) is not None
            ]
            items[aid] = build_item(
                aid,
                ing.alert,
                state=AlertState(row["state"]),
                source=ing.feed_kind,
                feed=ing.feed,
                relevance=decided[aid],
                received_at=ing.received_at,
                updated_at=now,
                references=refs,
                deviations=ing.deviations,
            )
        await repo.set_rendered_many(
            conn, [(aid, item.model_dump_json()) for aid, item in items.items()]
        )
        await repo.add_history_many(
            conn,
            [(aid, now, None, row["state"], _received_note(ing), None) for aid, ing, row in new],
        )
        for aid, ing, _row in new:
            self._event(tx, AlertEventType.CREATED, items[aid], "received", None, cap=ing.alert)
        # Effects, in stream order: this batch's Updates/Cancels on their targets, then
        # Updates/Cancels stored earlier whose target only arrives now (out of order).
        for aid, ing, _ in new:
            cap = ing.alert
            if cap.msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL):
                for r in cap.references:
                    target = targets.get((r.sender, r.identifier, r.sent))
                    if target is not None:
                        await self._apply(conn, tx, cap.msg_type, aid, cap.identifier, target, now)
        for aid, ing, _ in new:
            await self._resolve_referrers(conn, tx, aid, ing.alert, now)
        return results

    async def _resolve_referrers(
        self, conn: AsyncConnection, tx: _Tx, alert_id: int, cap: CapAlert, now: datetime
    ) -> None:
        for ref_row in await repo.unresolved_referrers(conn, cap.sender, cap.identifier, cap.sent):
            await repo.resolve_reference(
                conn, ref_row.alert_id, cap.sender, cap.identifier, cap.sent, alert_id
            )
            msg_type = CapMsgType(ref_row.msg_type)
            if msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL):
                await self._apply(
                    conn, tx, msg_type, ref_row.alert_id, ref_row.identifier, alert_id, now
                )

    def _row(
        self, ingested: AlertIngested, relevance: RelevanceDecision, now: datetime
    ) -> dict[str, Any]:
        cap = ingested.alert
        info = cap.primary_info()
        expires = cap.expires()
        lapses = expires or _start(cap) + self.missing_expires
        if cap.msg_type == CapMsgType.CANCEL:
            state = AlertState.CANCELLED  # a Cancel message is never itself an active alert
        elif lapses <= now:
            state = AlertState.EXPIRED
        else:
            state = AlertState.ACTIVE
        return {
            "sender": cap.sender,
            "identifier": cap.identifier,
            "sent": cap.sent,
            "status": cap.status.value,
            "msg_type": cap.msg_type.value,
            "scope": cap.scope.value,
            "source": ingested.feed_kind.value,
            "feed": ingested.feed[:255],
            "state": state.value,
            "event": (info.event if info else "(no info)")[:255],
            "same_event": info.same_event_code() if info else None,
            "severity": info.severity.value if info else "Unknown",
            "urgency": info.urgency.value if info else "Unknown",
            "certainty": info.certainty.value if info else "Unknown",
            "headline": info.headline if info else None,
            "area_desc": "; ".join(a.area_desc for a in info.areas) if info else "",
            "onset": info.onset if info else None,
            "effective": info.effective if info else None,
            "expires": expires,
            "relevant": relevance.relevant,
            "relevance_reason": relevance.reason,
            "received_at": ingested.received_at,
            "updated_at": now,
            "cap": cap.model_dump_json(),
            "item_json": "{}",
            "geometry_json": geometry_json(cap),
        }

    async def resolve_dangling(self, batch: int = 200) -> int:
        """Safety net: link references whose target is stored but was not linked.

        Ingest takes advisory locks so a referrer and its target never miss each other; this
        sweep makes sure that a missed link (e.g. from an older version or a manual fix in
        the database) still cancels or updates its target.
        """
        now = utcnow()
        tx = _Tx()
        async with self.engine.begin() as conn:
            rows = await repo.dangling_references(conn, batch)
            for row in rows:
                await repo.resolve_reference(
                    conn,
                    row.alert_id,
                    row.ref_sender,
                    row.ref_identifier,
                    row.ref_sent,
                    row.target_id,
                )
                msg_type = CapMsgType(row.msg_type)
                if msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL):
                    await self._apply(
                        conn, tx, msg_type, row.alert_id, row.identifier, row.target_id, now
                    )
            pending = await self._to_outbox(conn, tx)
        await self.outbox.publish(pending)
        return len(rows)

    async def _apply(
        self,
        conn: AsyncConnection,
        tx: _Tx,
        msg_type: CapMsgType,
        by_id: int,
        by_identifier: str,
        target_id: int,
        now: datetime,
    ) -> None:
        if msg_type == CapMsgType.UPDATE:
            allowed, to_state, etype = {"active"}, AlertState.UPDATED, AlertEventType.UPDATED
            reason = f"superseded by update {by_identifier}"
        else:
            allowed, to_state, etype = (
                {"active", "updated"},
                AlertState.CANCELLED,
                AlertEventType.CANCELLED,
            )
            reason = f"cancelled by {by_identifier}"
        for row in await repo.lock_alerts(conn, [target_id]):
            if row.state not in allowed:
                await repo.add_history(
                    conn,
                    target_id,
                    now,
                    row.state,
                    row.state,
                    f"{reason} (no change: already {row.state})",
                    by_id,
                )
                continue
            item = _restate(row.item_json, to_state, now)
            if await repo.change_state(
                conn, target_id, row.state, to_state.value, item.model_dump_json(), now
            ):
                await repo.add_history(
                    conn, target_id, now, row.state, to_state.value, reason, by_id
                )
                self._event(tx, etype, item, reason, AlertState(row.state), by_alert_id=by_id)

    def _event(
        self,
        tx: _Tx,
        etype: AlertEventType,
        item: AlertItem,
        reason: str,
        previous: AlertState | None,
        *,
        cap: CapAlert | None = None,
        by_alert_id: int | None = None,
    ) -> None:
        tx.envelopes.append(
            EventEnvelope[AlertLifecycle](
                type=etype.value,
                source=self.source,
                subject=f"{item.sender}/{item.identifier}/{item.sent.isoformat()}",
                data=AlertLifecycle(
                    alert=summary_of(item),
                    reason=reason,
                    previous_state=previous,
                    by_alert_id=by_alert_id,
                    cap=cap,
                ),
            )
        )

    async def _to_outbox(self, conn: AsyncConnection, tx: _Tx) -> Pending:
        return await self.outbox.add(conn, [(ALERT_EVENTS, e) for e in tx.envelopes])

    # ---- station codes ---------------------------------------------------------------

    def set_station_codes(self, same: list[str], ugc: list[str]) -> bool:
        """Use new station codes from now on; True when they differ from the current ones."""
        if list(same) == self.station_same and list(ugc) == self.station_ugc:
            return False
        self.station_same, self.station_ugc = list(same), list(ugc)
        self.codes_generation += 1
        return True

    def codes_text(self) -> str:
        same = ", ".join(self.station_same) or "none"
        ugc = ", ".join(self.station_ugc) or "none"
        return f"SAME {same}; UGC {ugc}"

    async def recompute_relevance(self, batch: int = 200) -> int:
        """Decide relevance again for every ACTIVE alert under the current station codes.

        One transaction per batch; a row whose decision (relevant or reason) changed is
        rewritten with its list item and announced as ``alert.updated``, which is what a relay
        acts on. Running it again with the same codes changes nothing and announces nothing.
        Expired, cancelled and superseded alerts keep the decision they had.
        """
        changed = 0
        after_id = 0
        codes = self.codes_text()
        while True:
            now = utcnow()
            tx = _Tx()
            async with self.engine.begin() as conn:
                rows = await repo.lock_active_for_relevance(conn, after_id, batch)
                for row in rows:
                    after_id = row.id
                    decision = self.relevance(CapAlert.model_validate_json(row.cap))
                    was = (bool(row.relevant), str(row.relevance_reason))
                    if (decision.relevant, decision.reason) == was and list(
                        decision.matches
                    ) == _stored_matches(row.item_json):
                        continue
                    item = _rerelevance(row.item_json, decision, now)
                    if not await repo.set_relevance(
                        conn,
                        row.id,
                        was,
                        (decision.relevant, decision.reason),
                        item.model_dump_json(),
                        now,
                    ):
                        continue
                    reason = (
                        f"relevance changed: station codes now {codes}: "
                        f"{'relevant' if decision.relevant else 'not relevant'} "
                        f"({decision.reason})"
                    )
                    await repo.add_history(conn, row.id, now, "active", "active", reason)
                    self._event(tx, AlertEventType.UPDATED, item, reason, AlertState.ACTIVE)
                pending = await self._to_outbox(conn, tx)
            await self.outbox.publish(pending)
            changed += len(tx.envelopes)
            if len(rows) < batch:
                break
        self.relevance_changes += changed
        if changed:
            log.info("relevance recomputed: %d active alert(s) changed (%s)", changed, codes)
        return changed

    # ---- background work -------------------------------------------------------------

    async def expire_due(self, now: datetime | None = None, batch: int = 200) -> int:
        """Mark every active alert past its expiry as expired and announce it."""
        now = now or utcnow()
        total = 0
        while True:
            tx = _Tx()
            async with self.engine.begin() as conn:
                rows = await repo.expiring(conn, now, batch, self.missing_expires)
                for row in rows:
                    item = _restate(row.item_json, AlertState.EXPIRED, now)
                    why = (
                        "expires time passed"
                        if row.expires is not None
                        else f"no expires given: {_hours(self.missing_expires)} since it took "
                        "effect passed"
                    )
                    if await repo.change_state(
                        conn, row.id, "active", "expired", item.model_dump_json(), now
                    ):
                        await repo.add_history(conn, row.id, now, "active", "expired", why)
                        self._event(tx, AlertEventType.EXPIRED, item, why, AlertState.ACTIVE)
                pending = await self._to_outbox(conn, tx)
            await self.outbox.publish(pending)
            total += len(tx.envelopes)
            if len(rows) < batch:
                return total

    # ---- operator actions ------------------------------------------------------------

    async def create_manual(self, cap: CapAlert, actor: str) -> int:
        result = await self.ingest(
            AlertIngested(
                feed=f"manual:{actor}", feed_kind=FeedKind.MANUAL, received_at=utcnow(), alert=cap
            )
        )
        if result.alert_id is None:
            raise Conflict("an alert with this sender, identifier and sent time already exists")
        return result.alert_id

    async def cancel_by_operator(self, alert_id: int, actor: str, note: str | None) -> int:
        """Issue a CAP Cancel referencing an active or updated alert; the Cancel's id.

        Two operators pressing Cancel at once must give one Cancel and one Conflict, not two
        Cancels (or a deadlock between their transactions): check and cancel under one lock,
        within this process one asyncio.Lock (operator actions are rare, and one lock means a
        waiting cancel never holds a pooled connection), across instances a PostgreSQL
        advisory lock on the alert, held by its own transaction.
        """
        async with self._cancel_gate, contextlib.AsyncExitStack() as stack:
            if self.engine.dialect.name == "postgresql":
                lock_conn = await stack.enter_async_context(self.engine.begin())
                await repo.lock_for_cancel(lock_conn, alert_id)
            async with self.engine.connect() as conn:
                row = await repo.get_alert(conn, alert_id)
            if row is None:
                raise NotFound(f"no alert with id {alert_id}")
            current = AlertItem.model_validate_json(row.item_json)
            if current.msg_type == CapMsgType.CANCEL:
                raise Conflict(
                    f"alert {alert_id} is a Cancel message, which cannot itself be cancelled"
                )
            if current.state not in (AlertState.ACTIVE, AlertState.UPDATED):
                raise Conflict(
                    f"alert {alert_id} is already {current.state}; only an active or updated "
                    "alert can be cancelled"
                )
            target = CapAlert.model_validate_json(row.cap)
            cancel = CapAlert(
                identifier=f"eas-station-cancel-{uuid.uuid4().hex}",
                sender=self.station_sender,
                sent=utcnow().replace(microsecond=0),
                status=target.status,
                msg_type=CapMsgType.CANCEL,
                scope=target.scope,
                note=note or f"cancelled by operator {actor}",
                references=[
                    CapReference(
                        sender=target.sender, identifier=target.identifier, sent=target.sent
                    )
                ],
                infos=target.infos[:1],
            )
            return await self.create_manual(cancel, actor)

    # ---- reads -----------------------------------------------------------------------

    async def watermark(self) -> int:
        async with self.read_engine.connect() as conn:
            return await repo.watermark(conn)

    async def list_page(
        self, filters: repo.AlertFilters, after: Any, limit: int, with_geometry: bool
    ) -> tuple[list[Any], str | None]:
        """One page of rendered rows and the cursor of the next page (None on the last)."""
        async with self.read_engine.connect() as conn:
            rows = await repo.list_page(
                conn, filters, after, limit + 1, with_geometry=with_geometry
            )
        return repo.split_page(rows, limit)

    async def detail(self, alert_id: int) -> bytes:
        """The AlertDetail document as JSON bytes (see ``detail_body``).

        One statement in autocommit (no BEGIN/ROLLBACK round trips): every part is committed
        state, and a state change racing the read shows in the next one. The read cache's
        fast path (alerts_api.fast_reads) answers the same route from the same statement.
        """
        async with self.read_engine.connect() as conn:
            found = await repo.detail_rows(conn, alert_id)
        if found is None:
            raise detail_not_found(alert_id)
        return detail_body(found)

    async def created(self, alert_id: int) -> CreatedAlert:
        async with self.engine.connect() as conn:
            row = await repo.get_alert(conn, alert_id)
        if row is None:
            raise NotFound(f"no alert with id {alert_id}")
        return CreatedAlert(id=alert_id, alert=AlertItem.model_validate_json(row.item_json))

    async def stats(self) -> AlertStats:
        now = utcnow()
        day, week = now - timedelta(days=1), now - timedelta(days=7)
        # One statement instead of eleven: every count comes from one scan of the table.
        async with self.read_engine.connect() as conn:
            counts = await repo.stats_counts(conn, day, week)
        by: dict[str, dict[str, int]] = {k: {} for k in repo.STAT_COLUMNS}
        by_7d: dict[str, dict[str, int]] = {k: {} for k in repo.STAT_COLUMNS}
        last_24h = last_7d = 0
        for kind, value, n, n_24h, n_7d in counts:
            by[kind][value] = n
            if n_7d:
                by_7d[kind][value] = n_7d
            if kind == "state":
                last_24h, last_7d = last_24h + n_24h, last_7d + n_7d
        return AlertStats(
            total=sum(by["state"].values()),
            active=by["state"].get("active", 0),
            last_24h=last_24h,
            last_7d=last_7d,
            by_event=by["event"],
            by_severity=by["severity"],
            by_source=by["source"],
            by_state=by["state"],
            by_event_7d=by_7d["event"],
            by_severity_7d=by_7d["severity"],
            by_source_7d=by_7d["source"],
        )


class _Related(BaseModel):
    """The tail of AlertDetail, after the stored documents (same field order)."""

    references: list[ReferenceOut]
    referenced_by: list[RelatedAlert]
    history: list[HistoryEntry]


# The record columns of repository.DETAIL_SQL, by the model field each one fills.
_RELATED_PARTS: tuple[tuple[type[BaseModel], tuple[str, ...]], ...] = (
    (ReferenceOut, ("sender", "identifier", "sent", "alert_id")),
    (RelatedAlert, ("id", "identifier", "msg_type", "sent")),
    (HistoryEntry, ("at", "from_state", "to_state", "reason", "by_alert_id")),
)


def detail_not_found(alert_id: int) -> NotFound:
    """The 404 of an unknown id: one text for the route and its fast path."""
    return NotFound(f"no alert with id {alert_id}")


def detail_body(found: repo.DetailRow) -> bytes:
    """The AlertDetail JSON of one ``repository.detail_rows`` answer.

    ``item_json`` and ``cap`` were rendered by their models when stored, so they are spliced
    in as they are: parsing the CAP document into a model and dumping it again on every read
    was most of this route's cost and gave back the same text. Only the small tail
    (references, referrers, history) goes through its models.
    """
    item, cap, geometry, *parts = found
    refs, later, hist = (
        [model(**dict(zip(names, record, strict=True))) for record in rows]
        for (model, names), rows in zip(_RELATED_PARTS, parts, strict=True)
    )
    related = _Related(references=refs, referenced_by=later, history=hist)
    return (
        b'{"alert":'
        + item.encode()
        + b',"cap":'
        + cap.encode()
        + b',"geometry":'
        + (geometry or "null").encode()
        + b","
        + related.model_dump_json().encode()[1:]
    )


def _identity(cap: CapAlert) -> tuple[str, str, datetime]:
    return (cap.sender, cap.identifier, cap.sent)


def _identity_keys(batch: list[AlertIngested]) -> list[int]:
    """Advisory-lock keys of every identity a batch stores or references.

    A referrer and its target lock the same key, so whichever transaction commits second
    sees the first one's rows and links them: without it, an Update and its Alert handled
    at the same moment would each miss the other and the Update would never apply.
    """
    keys: set[int] = set()
    for ingested in batch:
        cap = ingested.alert
        keys.add(_lock_key(_identity(cap)))
        keys.update(_lock_key((r.sender, r.identifier, r.sent)) for r in cap.references)
    return sorted(keys)


def _lock_key(identity: tuple[str, str, datetime]) -> int:
    sender, identifier, sent = identity
    digest = hashlib.blake2b(
        f"{sender}\x00{identifier}\x00{sent.isoformat()}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _start(cap: CapAlert) -> datetime:
    """When the alert takes effect: its primary info's effective, else its sent time."""
    info = cap.primary_info()
    return info.effective if info is not None and info.effective is not None else cap.sent


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h"


def _received_note(ingested: AlertIngested) -> str:
    if not ingested.deviations:
        return f"received from {ingested.feed}"
    return f"received from {ingested.feed} (deviations: {', '.join(ingested.deviations)})"


def _stored_matches(item_json: str) -> list[RelevanceMatch]:
    """The matches a stored item lists (none for items rendered before matches existed)."""
    doc = json.loads(item_json)
    return [RelevanceMatch.model_validate(m) for m in doc.get("relevance_matches", [])]


def _rerelevance(item_json: str, decision: RelevanceDecision, now: datetime) -> AlertItem:
    doc = json.loads(item_json)
    doc["relevant"] = decision.relevant
    doc["relevance_reason"] = decision.reason
    doc["relevance_matches"] = [m.model_dump(mode="json") for m in decision.matches]
    doc["updated_at"] = now.isoformat()
    return AlertItem.model_validate(doc)


def _restate(item_json: str, state: AlertState, now: datetime) -> AlertItem:
    doc = json.loads(item_json)
    doc["state"] = state.value
    doc["updated_at"] = now.isoformat()
    return AlertItem.model_validate(doc)
