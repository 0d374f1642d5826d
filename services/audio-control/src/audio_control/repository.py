"""audio-control's SQL (SQLAlchemy Core)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from audio_control.tables import (
    decision_inputs,
    message_audio,
    messages,
    playout_airings,
    playout_outputs,
    relay_decisions,
    station_log,
)

D = relay_decisions
OUT = playout_outputs
AIR = playout_airings


# ---- idempotency ---------------------------------------------------------------------------


async def input_outcome(conn: AsyncConnection, envelope_id: str) -> str | None:
    stmt = select(decision_inputs.c.outcome).where(decision_inputs.c.envelope_id == envelope_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def record_input(
    conn: AsyncConnection,
    envelope_id: str,
    event_type: str,
    decision_id: int | None,
    outcome: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(decision_inputs).values(
            envelope_id=envelope_id,
            event_type=event_type,
            decision_id=decision_id,
            handled_at=now,
            outcome=outcome[:2000],
        )
    )


async def lock_decisions(conn: AsyncConnection, key: str) -> None:
    """Serialise decision making for one event code across replicas (PostgreSQL), so the
    same transmission from two sources never becomes two decisions."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"audio-control:relay:{key}"},
        )


# ---- decisions -----------------------------------------------------------------------------


async def insert_decision(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(insert(D).values(**values).returning(D.c.id))
    return int(result.scalar_one())


async def update_decision(
    conn: AsyncConnection, decision_id: int, revision: int, values: dict[str, Any]
) -> bool:
    """Compare-and-set on the revision: a concurrent change (another replica, an operator)
    makes this one fail instead of silently overwriting it."""
    result = await conn.execute(
        update(D).where(D.c.id == decision_id, D.c.revision == revision).values(**values)
    )
    return int(result.rowcount) == 1


async def get_decision(conn: AsyncConnection, decision_id: int, *, lock: bool = False) -> Any:
    stmt = select(D).where(D.c.id == decision_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).one_or_none()


async def decisions_of_alert(
    conn: AsyncConnection, alert_id: int, states: Sequence[str]
) -> Sequence[Row[Any, Any]]:
    stmt = select(D).where(D.c.alert_id == alert_id, D.c.state.in_(list(states))).order_by(D.c.id)
    return (await conn.execute(stmt)).all()


async def decisions_of_identities(
    conn: AsyncConnection, identities: Sequence[tuple[str, str, datetime]], states: Sequence[str]
) -> Sequence[Row[Any, Any]]:
    if not identities:
        return []
    match = or_(
        *(
            and_(D.c.alert_sender == s, D.c.alert_identifier == i, D.c.alert_sent == t)
            for s, i, t in identities
        )
    )
    stmt = select(D).where(match, D.c.state.in_(list(states))).order_by(D.c.id)
    return (await conn.execute(stmt)).all()


async def dedup_candidates(
    conn: AsyncConnection,
    event_code: str,
    issued_from: datetime,
    issued_to: datetime,
    source: str,
    states: Sequence[str],
) -> Sequence[Row[Any, Any]]:
    """Decisions from ``source`` for the same event issued inside the window."""
    stmt = (
        select(D)
        .where(
            D.c.event_code == event_code,
            D.c.source == source,
            D.c.issued >= issued_from,
            D.c.issued <= issued_to,
            D.c.state.in_(list(states)),
        )
        .order_by(D.c.id)
    )
    return (await conn.execute(stmt)).all()


async def due_confirmations(conn: AsyncConnection, now: datetime, limit: int) -> Sequence[Any]:
    stmt = (
        select(D)
        .where(D.c.state == "pending_confirmation", D.c.confirm_by <= now)
        .order_by(D.c.confirm_by, D.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return (await conn.execute(stmt)).all()


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    states: Sequence[str] | None = None
    source: str | None = None
    event_code: str | None = None
    alert_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_decisions(
    conn: AsyncConnection, f: DecisionFilter, before_id: int | None, limit: int
) -> Sequence[Row[Any, Any]]:
    stmt = select(D.c.id, D.c.event).order_by(D.c.id.desc()).limit(limit)
    if f.states:
        stmt = stmt.where(D.c.state.in_(list(f.states)))
    if f.source:
        stmt = stmt.where(D.c.source == f.source)
    if f.event_code:
        stmt = stmt.where(D.c.event_code == f.event_code)
    if f.alert_id is not None:
        stmt = stmt.where(D.c.alert_id == f.alert_id)
    if f.since:
        stmt = stmt.where(D.c.created_at >= f.since)
    if f.until:
        stmt = stmt.where(D.c.created_at < f.until)
    if before_id is not None:
        stmt = stmt.where(D.c.id < before_id)
    return (await conn.execute(stmt)).all()


async def pending_confirmations(conn: AsyncConnection, limit: int) -> Sequence[Row[Any, Any]]:
    stmt = (
        select(D.c.id, D.c.event)
        .where(D.c.state == "pending_confirmation")
        .order_by(D.c.precedence, D.c.confirm_by, D.c.id)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()


# ---- message composition queue ---------------------------------------------------------------


async def claim_for_composing(
    conn: AsyncConnection, states: Sequence[str], now: datetime, stale_before: datetime
) -> Any:
    """One decision waiting for its message (or one whose composer died), marked composing."""
    waiting = or_(
        D.c.message_status == "pending",
        and_(D.c.message_status == "composing", D.c.composing_since < stale_before),
    )
    stmt = (
        select(D)
        .where(waiting, D.c.state.in_(list(states)))
        .order_by(D.c.precedence, D.c.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        return None
    await conn.execute(update(D).where(D.c.id == row.id).values(message_status="composing"))
    return row


async def release_composing(conn: AsyncConnection, decision_id: int) -> None:
    """A decision this composer claimed and could not finish, waiting again."""
    await conn.execute(
        update(D)
        .where(D.c.id == decision_id, D.c.message_status == "composing")
        .values(message_status="pending")
    )


async def set_message_status(conn: AsyncConnection, decision_id: int, status: str) -> None:
    await conn.execute(update(D).where(D.c.id == decision_id).values(message_status=status))


# ---- messages ------------------------------------------------------------------------------


async def insert_message(conn: AsyncConnection, values: dict[str, Any], wav: bytes) -> int:
    result = await conn.execute(insert(messages).values(**values).returning(messages.c.id))
    message_id = int(result.scalar_one())
    await conn.execute(insert(message_audio).values(message_id=message_id, wav=wav))
    return message_id


async def get_message(conn: AsyncConnection, message_id: int) -> Any:
    return (await conn.execute(select(messages).where(messages.c.id == message_id))).one_or_none()


async def get_message_audio(conn: AsyncConnection, message_id: int) -> bytes | None:
    stmt = select(message_audio.c.wav).where(message_audio.c.message_id == message_id)
    wav = (await conn.execute(stmt)).scalar_one_or_none()
    return bytes(wav) if wav is not None else None


async def list_messages(
    conn: AsyncConnection,
    kind: str | None,
    decision_id: int | None,
    before_id: int | None,
    limit: int,
) -> Sequence[Row[Any, Any]]:
    stmt = select(messages).order_by(messages.c.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(messages.c.kind == kind)
    if decision_id is not None:
        stmt = stmt.where(messages.c.decision_id == decision_id)
    if before_id is not None:
        stmt = stmt.where(messages.c.id < before_id)
    return (await conn.execute(stmt)).all()


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    stmt = select(D.c.state, func.count()).group_by(D.c.state)
    return {str(state): int(n) for state, n in (await conn.execute(stmt)).all()}


# ---- the station log -----------------------------------------------------------------------

L = station_log


@dataclass(frozen=True, slots=True)
class LogFilter:
    since: datetime | None = None
    until: datetime | None = None
    kinds: Sequence[str] | None = None
    event_code: str | None = None
    originator: str | None = None
    actor: str | None = None
    text: str | None = None


def _log_where(stmt: Any, f: LogFilter) -> Any:
    if f.since is not None:
        stmt = stmt.where(L.c.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(L.c.at < f.until)
    if f.kinds:
        stmt = stmt.where(L.c.kind.in_(list(f.kinds)))
    if f.event_code:
        stmt = stmt.where(L.c.event_code == f.event_code)
    if f.originator:
        stmt = stmt.where(L.c.originator == f.originator)
    if f.actor:
        stmt = stmt.where(L.c.actor == f.actor)
    if f.text:
        stmt = stmt.where(
            or_(
                L.c.summary.icontains(f.text, autoescape=True),
                L.c.header.icontains(f.text, autoescape=True),
                L.c.reasons.icontains(f.text, autoescape=True),
            )
        )
    return stmt


async def list_log(
    conn: AsyncConnection, f: LogFilter, before_seq: int | None, limit: int
) -> Sequence[Row[Any, Any]]:
    """Newest first; ``before_seq`` pages backwards (keyset on the chain order)."""
    stmt = _log_where(select(L), f).order_by(L.c.seq.desc()).limit(limit)
    if before_seq is not None:
        stmt = stmt.where(L.c.seq < before_seq)
    return (await conn.execute(stmt)).all()


async def count_log(conn: AsyncConnection, f: LogFilter) -> int:
    stmt = _log_where(select(func.count()).select_from(L), f)
    return int((await conn.execute(stmt)).scalar_one())


async def log_in_order(
    conn: AsyncConnection, f: LogFilter, after_seq: int | None, limit: int
) -> Sequence[Row[Any, Any]]:
    """Oldest first (exports and the printed log read in the order things happened)."""
    stmt = _log_where(select(L), f).order_by(L.c.seq).limit(limit)
    if after_seq is not None:
        stmt = stmt.where(L.c.seq > after_seq)
    return (await conn.execute(stmt)).all()


async def log_details_by_actor(conn: AsyncConnection, actor: str) -> list[str]:
    """The detail JSON of every entry one actor wrote (an importer finds what it logged)."""
    stmt = select(L.c.detail).where(L.c.actor == actor).order_by(L.c.seq)
    return [str(d) for d in (await conn.execute(stmt)).scalars()]


# ---- cursors -------------------------------------------------------------------------------


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything that is not a cursor this service issued."""
    if len(cursor) > 64:
        raise ValueError("too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    before = doc.get("before") if isinstance(doc, dict) else None
    if not isinstance(before, int) or isinstance(before, bool) or not 0 < before < 2**62:
        raise ValueError("not a cursor")
    return before


# ---- playout outputs -----------------------------------------------------------------------


async def list_outputs(conn: AsyncConnection) -> Sequence[Row[Any, Any]]:
    return (await conn.execute(select(OUT).order_by(OUT.c.id))).all()


async def output_named(conn: AsyncConnection, name: str, *, lock: bool = False) -> Any:
    stmt = select(OUT).where(OUT.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).one_or_none()


async def insert_output(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    return (await conn.execute(insert(OUT).values(**values).returning(OUT))).one()


async def update_output(conn: AsyncConnection, output_id: int, values: dict[str, Any]) -> Any:
    return (
        await conn.execute(update(OUT).where(OUT.c.id == output_id).values(**values).returning(OUT))
    ).one()


async def delete_output(conn: AsyncConnection, output_id: int) -> None:
    await conn.execute(delete(OUT).where(OUT.c.id == output_id))


async def output_playing(conn: AsyncConnection, output_id: int) -> int | None:
    """The item on air on the output now, if any."""
    playing = (AIR.c.output_id == output_id) & (AIR.c.state == "playing")
    stmt = select(AIR.c.item_id).where(playing).limit(1)
    found = (await conn.execute(stmt)).scalar_one_or_none()
    return int(found) if found is not None else None


async def last_airings(conn: AsyncConnection) -> dict[int, Any]:
    """Each output's latest airing (the last message it played or plays)."""
    ranked = select(
        AIR,
        func.row_number()
        .over(
            partition_by=AIR.c.output_id,
            order_by=(AIR.c.started_at.desc(), AIR.c.item_id.desc()),
        )
        .label("n"),
    ).subquery()
    rows = (await conn.execute(select(ranked).where(ranked.c.n == 1))).all()
    return {int(r.output_id): r for r in rows}
