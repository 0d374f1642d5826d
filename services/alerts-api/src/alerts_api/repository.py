"""All SQL of the alert store. Functions take a connection inside the caller's transaction."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts_api.tables import (
    alert_changes,
    alert_codes,
    alert_history,
    alert_references,
    alerts,
)


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def lock_identities(conn: AsyncConnection, keys: Sequence[int]) -> None:
    """Transaction-scoped advisory locks, taken in sorted order so batches never deadlock.

    SQLite needs none: it runs one writing transaction at a time.
    """
    if keys and conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS t(k)"),
            {"keys": sorted(keys)},
        )


Identity = tuple[str, str, datetime]


async def insert_alerts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[Identity, int]:
    """Insert every row whose (sender, identifier, sent) is new; identity -> new id."""
    if not rows:
        return {}
    stmt = (
        _insert(conn, alerts)
        .on_conflict_do_nothing(index_elements=["sender", "identifier", "sent"])
        .returning(alerts.c.id, alerts.c.sender, alerts.c.identifier, alerts.c.sent)
    )
    result = await conn.execute(stmt, rows)
    return {(r.sender, r.identifier, r.sent): r.id for r in result.all()}


async def find_alert_ids(
    conn: AsyncConnection, identities: Iterable[Identity]
) -> dict[Identity, int]:
    wanted = list(identities)
    if not wanted:
        return {}
    stmt = select(alerts.c.id, alerts.c.sender, alerts.c.identifier, alerts.c.sent).where(
        tuple_(alerts.c.sender, alerts.c.identifier, alerts.c.sent).in_(wanted)
    )
    return {(r.sender, r.identifier, r.sent): r.id for r in (await conn.execute(stmt)).all()}


async def insert_codes_many(conn: AsyncConnection, rows: list[tuple[int, str, str]]) -> None:
    unique = list(dict.fromkeys(rows))
    if unique:
        await conn.execute(
            alert_codes.insert(), [{"alert_id": a, "kind": k, "code": c} for a, k, c in unique]
        )


async def insert_references_many(
    conn: AsyncConnection, rows: list[tuple[int, str, str, datetime, int | None]]
) -> None:
    unique = list({(a, s, i, t): r for a, s, i, t, r in rows}.items())
    if unique:
        await conn.execute(
            alert_references.insert(),
            [
                {
                    "alert_id": a,
                    "ref_sender": s,
                    "ref_identifier": i,
                    "ref_sent": t,
                    "ref_alert_id": r,
                }
                for (a, s, i, t), r in unique
            ],
        )


async def set_rendered_many(conn: AsyncConnection, rows: list[tuple[int, str]]) -> None:
    if rows:
        stmt = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"))
            .values(item_json=bindparam("b_item"))
        )
        await conn.execute(stmt, [{"b_id": a, "b_item": j} for a, j in rows])


async def add_history_many(
    conn: AsyncConnection,
    rows: list[tuple[int, datetime, str | None, str, str, int | None]],
) -> None:
    if rows:
        await conn.execute(
            alert_history.insert(),
            [
                {
                    "alert_id": a,
                    "at": at,
                    "from_state": f,
                    "to_state": t,
                    "reason": why,
                    "by_alert_id": by,
                }
                for a, at, f, t, why, by in rows
            ],
        )


async def dangling_references(conn: AsyncConnection, limit: int) -> list[Any]:
    """References still unlinked although their target is stored."""
    target = alerts.alias("target")
    referrer = alerts.alias("referrer")
    stmt = (
        select(
            alert_references.c.alert_id,
            alert_references.c.ref_sender,
            alert_references.c.ref_identifier,
            alert_references.c.ref_sent,
            target.c.id.label("target_id"),
            referrer.c.msg_type,
            referrer.c.identifier,
        )
        .join(
            target,
            and_(
                target.c.sender == alert_references.c.ref_sender,
                target.c.identifier == alert_references.c.ref_identifier,
                target.c.sent == alert_references.c.ref_sent,
            ),
        )
        .join(referrer, referrer.c.id == alert_references.c.alert_id)
        .where(alert_references.c.ref_alert_id.is_(None))
        .order_by(referrer.c.sent, referrer.c.id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def unresolved_referrers(
    conn: AsyncConnection, sender: str, identifier: str, sent: datetime
) -> list[Any]:
    """Alerts stored earlier that reference this identity before it arrived (out of order)."""
    stmt = (
        select(alert_references.c.alert_id, alerts.c.msg_type, alerts.c.identifier)
        .join(alerts, alerts.c.id == alert_references.c.alert_id)
        .where(
            alert_references.c.ref_sender == sender,
            alert_references.c.ref_identifier == identifier,
            alert_references.c.ref_sent == sent,
            alert_references.c.ref_alert_id.is_(None),
        )
        .order_by(alerts.c.sent, alerts.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def resolve_reference(
    conn: AsyncConnection,
    referrer_id: int,
    sender: str,
    identifier: str,
    sent: datetime,
    target: int,
) -> None:
    await conn.execute(
        update(alert_references)
        .where(
            alert_references.c.alert_id == referrer_id,
            alert_references.c.ref_sender == sender,
            alert_references.c.ref_identifier == identifier,
            alert_references.c.ref_sent == sent,
        )
        .values(ref_alert_id=target)
    )


async def lock_alerts(conn: AsyncConnection, ids: Sequence[int]) -> list[Any]:
    stmt = select(alerts.c.id, alerts.c.state, alerts.c.item_json).where(alerts.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        # FOR NO KEY UPDATE: the referencing rows inserted earlier in this transaction hold
        # FOR KEY SHARE on the target (foreign key); a plain FOR UPDATE would conflict with a
        # concurrent Update/Cancel's key-share lock and deadlock. State changes touch no key.
        stmt = stmt.with_for_update(key_share=True)
    return list((await conn.execute(stmt.order_by(alerts.c.id))).all())


async def change_state(
    conn: AsyncConnection,
    alert_id: int,
    from_state: str,
    to_state: str,
    item_json: str,
    now: datetime,
) -> bool:
    """Compare-and-set, so two instances never both announce the same change."""
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.state == from_state)
        .values(state=to_state, item_json=item_json, updated_at=now)
    )
    return bool(result.rowcount)


async def lock_active_for_relevance(conn: AsyncConnection, after_id: int, limit: int) -> list[Any]:
    """The next active alerts by id with what relevance needs, locked for the recompute."""
    stmt = (
        select(
            alerts.c.id,
            alerts.c.cap,
            alerts.c.item_json,
            alerts.c.relevant,
            alerts.c.relevance_reason,
        )
        .where(alerts.c.state == "active", alerts.c.id > after_id)
        .order_by(alerts.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # Same lock strength as state changes (see lock_alerts): excludes a concurrent
        # recompute, expiry or cancel of the row, never conflicts with key-share locks.
        stmt = stmt.with_for_update(key_share=True)
    return list((await conn.execute(stmt)).all())


async def set_relevance(
    conn: AsyncConnection,
    alert_id: int,
    was: tuple[bool, str],
    now_is: tuple[bool, str],
    item_json: str,
    now: datetime,
) -> bool:
    """Compare-and-set on (state, relevance), so two instances never both announce it."""
    result = await conn.execute(
        update(alerts)
        .where(
            alerts.c.id == alert_id,
            alerts.c.state == "active",
            alerts.c.relevant.is_(was[0]),
            alerts.c.relevance_reason == was[1],
        )
        .values(relevant=now_is[0], relevance_reason=now_is[1], item_json=item_json, updated_at=now)
    )
    return bool(result.rowcount)


async def add_history(
    conn: AsyncConnection,
    alert_id: int,
    at: datetime,
    from_state: str | None,
    to_state: str,
    reason: str,
    by_alert_id: int | None = None,
) -> None:
    await conn.execute(
        alert_history.insert().values(
            alert_id=alert_id,
            at=at,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            by_alert_id=by_alert_id,
        )
    )


async def expiring(
    conn: AsyncConnection, now: datetime, limit: int, missing_expires: timedelta
) -> list[Any]:
    """Active alerts past their expires, or, without one, ``missing_expires`` past the time
    they took effect (effective, else sent)."""
    lapsed = or_(
        and_(alerts.c.expires.is_not(None), alerts.c.expires <= now),
        and_(
            alerts.c.expires.is_(None),
            func.coalesce(alerts.c.effective, alerts.c.sent) <= now - missing_expires,
        ),
    )
    stmt = (
        select(alerts.c.id, alerts.c.item_json, alerts.c.expires)
        .where(alerts.c.state == "active", lapsed)
        .order_by(alerts.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await conn.execute(stmt)).all())


# ---- serialising operator actions -------------------------------------------------------

# Advisory lock keys are one bigint space per database; these are alerts-api's "cancel alert
# <id>" locks (ids are < 2**62, so the namespace bit keeps them apart from any other use).
_CANCEL_LOCK_NS = 1 << 62


async def lock_for_cancel(conn: AsyncConnection, alert_id: int) -> bool:
    """Hold a transaction-scoped lock on "cancelling alert ``alert_id``" (PostgreSQL only).

    Returns False where there are no advisory locks (SQLite: one process, lock in memory).
    """
    if conn.dialect.name != "postgresql":
        return False
    await conn.execute(select(func.pg_advisory_xact_lock(_CANCEL_LOCK_NS + alert_id)))
    return True


# ---- reads -------------------------------------------------------------------------------


async def watermark(conn: AsyncConnection) -> int:
    """A number that changes exactly when a write to the alert store commits.

    Maintained by triggers (migration 0002) in the writing transaction itself, so it is
    visible at the same instant as the write, and only this database's alert writes move it
    (PostgreSQL's snapshot would also move with every other database's writes on a shared
    server: measured, it changed on every poll while other tests ran).
    """
    return int((await conn.execute(select(func.sum(alert_changes.c.n)))).scalar_one() or 0)


@dataclass(frozen=True)
class AlertFilters:
    states: tuple[str, ...] | None = None
    event: str | None = None
    same_event: str | None = None
    severity: str | None = None
    urgency: str | None = None
    certainty: str | None = None
    cap_status: str | None = None
    same_code: str | None = None
    ugc_code: str | None = None
    source: str | None = None
    relevant: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


_MAX_ID = 2**63 - 1
_MAX_CURSOR = 200


def encode_cursor(sent: datetime, alert_id: int) -> str:
    raw = json.dumps([sent.astimezone(UTC).isoformat(), alert_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ValueError for anything that is not a cursor this service issued.

    Every value that could reach the database is checked here, so a forged cursor answers
    400 instead of failing inside the driver (an id beyond BIGINT, a time beyond year 1..9999).
    """
    try:
        if len(cursor) > _MAX_CURSOR:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValueError("not a pair")
        sent_text, alert_id = decoded
        if not isinstance(sent_text, str) or type(alert_id) is not int:
            raise ValueError("wrong types")
        if not 1 <= alert_id <= _MAX_ID:
            raise ValueError("id out of range")
        sent = datetime.fromisoformat(sent_text)
        if sent.tzinfo is None:
            raise ValueError("naive time")
        return sent.astimezone(UTC), alert_id
    except Exception as exc:
        raise ValueError("invalid cursor") from exc


def _where(f: AlertFilters) -> list[Any]:
    c = alerts.c
    conds: list[Any] = []
    if f.states:
        conds.append(c.state.in_(f.states))
    for column, value in (
        (c.event, f.event),
        (c.same_event, f.same_event),
        (c.severity, f.severity),
        (c.urgency, f.urgency),
        (c.certainty, f.certainty),
        (c.status, f.cap_status),
        (c.source, f.source),
    ):
        if value is not None:
            conds.append(
                func.lower(column) == value.lower() if column is c.event else column == value
            )
    if f.relevant is not None:
        conds.append(c.relevant.is_(f.relevant))
    if f.since is not None:
        conds.append(c.sent >= f.since)
    if f.until is not None:
        conds.append(c.sent < f.until)
    for kind, code in (("SAME", f.same_code), ("UGC", f.ugc_code)):
        if code is None:
            continue
        if kind == "UGC" and code.endswith("ALL"):
            # OHZALL: every zone of the state (OHCALL: every county), like station config.
            match = alert_codes.c.code.startswith(code[:3], autoescape=True)
        else:
            match = alert_codes.c.code == code
        conds.append(
            exists().where(alert_codes.c.alert_id == c.id, alert_codes.c.kind == kind, match)
        )
    return conds


async def list_page(
    conn: AsyncConnection,
    f: AlertFilters,
    cursor: tuple[datetime, int] | None,
    limit: int,
    *,
    with_geometry: bool = True,
) -> list[Any]:
    c = alerts.c
    conds = _where(f)
    if cursor is not None:
        sent, alert_id = cursor
        conds.append(or_(c.sent < sent, and_(c.sent == sent, c.id < alert_id)))
    stmt = (
        select(c.id, c.sent, c.item_json, *([c.geometry_json] if with_geometry else []))
        .where(*conds)
        .order_by(c.sent.desc(), c.id.desc())
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


def split_page(rows: Sequence[Any], limit: int) -> tuple[list[Any], str | None]:
    """A page fetched with one row more than ``limit`` (rows of ``list_page`` or
    ``fetch_list_page``, both (id, sent, ...)): the page and the cursor of the next one, None
    on the last (the extra row tells, so an exactly full last page hands out no cursor to an
    empty one)."""
    more, page = len(rows) > limit, list(rows[:limit])
    return page, encode_cursor(page[-1][1], page[-1][0]) if more else None


# The plain list page (a status filter, a cursor, a limit: what the dashboard and the console
# ask) as text for asyncpg, which prepares and caches each of the four per connection; the
# read cache's fast path (alerts_api.fast_reads) runs them. The same rows, in the same order,
# as ``list_page`` with those filters: (sent, id) descending, the cursor the last row's.
_LIST_SELECT = "SELECT id, sent, item_json FROM alerts"
_LIST_ORDER = " ORDER BY sent DESC, id DESC LIMIT $1"
LIST_SQL = {
    # (with states, with cursor): the statement
    (False, False): _LIST_SELECT + _LIST_ORDER,
    (True, False): _LIST_SELECT + " WHERE state = ANY($2::text[])" + _LIST_ORDER,
    (False, True): _LIST_SELECT + " WHERE (sent < $2 OR (sent = $2 AND id < $3))" + _LIST_ORDER,
    (True, True): _LIST_SELECT
    + " WHERE state = ANY($2::text[]) AND (sent < $3 OR (sent = $3 AND id < $4))"
    + _LIST_ORDER,
}


async def fetch_list_page(
    raw: Any, states: Sequence[str] | None, cursor: tuple[datetime, int] | None, limit: int
) -> list[Any]:
    """``LIST_SQL`` on an asyncpg connection: rows of (id, sent, item_json)."""
    sql = LIST_SQL[(states is not None, cursor is not None)]
    args: list[Any] = [limit]
    if states is not None:
        args.append(list(states))
    if cursor is not None:
        args.extend(cursor)
    return list(await raw.fetch(sql, *args))


# The whole detail in one statement on PostgreSQL: the alert's stored documents and, as
# arrays of anonymous records, its references, referrers and history (asyncpg decodes
# ``record[]`` into tuples). One round trip instead of four; sent straight to asyncpg, which
# prepares and caches it per connection (SQLAlchemy's statement handling was most of this
# route's CPU). The FastAPI route and the pure-ASGI fast path (alerts_api.fast_reads) both
# run exactly this text, so they read the same rows.
DETAIL_SQL = (
    "SELECT a.item_json, a.cap, a.geometry_json, "
    "ARRAY(SELECT ROW(r.ref_sender, r.ref_identifier, r.ref_sent, r.ref_alert_id) "
    "FROM alert_references r WHERE r.alert_id = a.id "
    "ORDER BY r.ref_sent, r.ref_identifier), "
    "ARRAY(SELECT ROW(b.id, b.identifier, b.msg_type, b.sent) "
    "FROM alerts b JOIN alert_references r ON r.alert_id = b.id WHERE r.ref_alert_id = a.id "
    "ORDER BY b.sent, b.id), "
    "ARRAY(SELECT ROW(h.at, h.from_state, h.to_state, h.reason, h.by_alert_id) "
    "FROM alert_history h WHERE h.alert_id = a.id ORDER BY h.id) "
    "FROM alerts a WHERE a.id = $1"
)

# (item_json, cap, geometry_json, references, referrers, history): each of the last three a
# sequence of tuples in the column order of DETAIL_SQL's records.
DetailRow = tuple[
    str, str, str | None, Sequence[Sequence[Any]], Sequence[Sequence[Any]], Sequence[Sequence[Any]]
]


async def fetch_detail(raw: Any, alert_id: int) -> DetailRow | None:
    """DETAIL_SQL on an asyncpg connection (a pooled one of the engine, or the fast path's)."""
    row = await raw.fetchrow(DETAIL_SQL, alert_id)
    return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])


async def detail_rows(conn: AsyncConnection, alert_id: int) -> DetailRow | None:
    """The detail's parts (see ``DetailRow``); None when no such alert."""
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        return await fetch_detail(raw, alert_id)
    found = await get_alert(conn, alert_id)
    if found is None:
        return None
    refs = [
        (r.ref_sender, r.ref_identifier, r.ref_sent, r.ref_alert_id)
        for r in await references_of(conn, alert_id)
    ]
    later = [(r.id, r.identifier, r.msg_type, r.sent) for r in await referenced_by(conn, alert_id)]
    hist = [
        (h.at, h.from_state, h.to_state, h.reason, h.by_alert_id)
        for h in await history(conn, alert_id)
    ]
    return found.item_json, found.cap, found.geometry_json, refs, later, hist


async def get_alert(conn: AsyncConnection, alert_id: int) -> Any:
    stmt = select(alerts.c.id, alerts.c.item_json, alerts.c.cap, alerts.c.geometry_json).where(
        alerts.c.id == alert_id
    )
    return (await conn.execute(stmt)).one_or_none()


async def history(conn: AsyncConnection, alert_id: int) -> list[Any]:
    stmt = (
        select(alert_history)
        .where(alert_history.c.alert_id == alert_id)
        .order_by(alert_history.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def referenced_by(conn: AsyncConnection, alert_id: int) -> list[Any]:
    """Later alerts (Updates, Cancels) that reference this one."""
    stmt = (
        select(alerts.c.id, alerts.c.identifier, alerts.c.msg_type, alerts.c.sent)
        .join(alert_references, alert_references.c.alert_id == alerts.c.id)
        .where(alert_references.c.ref_alert_id == alert_id)
        .order_by(alerts.c.sent, alerts.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def references_of(conn: AsyncConnection, alert_id: int) -> list[Any]:
    stmt = (
        select(alert_references)
        .where(alert_references.c.alert_id == alert_id)
        .order_by(alert_references.c.ref_sent, alert_references.c.ref_identifier)
    )
    return list((await conn.execute(stmt)).all())


async def counts_by(
    conn: AsyncConnection, column_name: str, since: datetime | None
) -> dict[str, int]:
    column = alerts.c[column_name]
    stmt = select(column, func.count()).group_by(column)
    if since is not None:
        stmt = stmt.where(alerts.c.sent >= since)
    return {str(k): int(v) for k, v in (await conn.execute(stmt)).all()}


STAT_COLUMNS = ("event", "severity", "source", "state")


async def stats_counts(
    conn: AsyncConnection, day: datetime, week: datetime
) -> list[tuple[str, str, int, int, int]]:
    """(column, value, count, count sent since ``day``, count sent since ``week``) for every
    value of every STAT_COLUMNS column, in one statement."""
    c = alerts.c
    since_day = func.sum(case((c.sent >= day, 1), else_=0))
    since_week = func.sum(case((c.sent >= week, 1), else_=0))
    parts = [
        select(
            literal(name).label("kind"),
            c[name].label("value"),
            func.count().label("n"),
            since_day.label("n_day"),
            since_week.label("n_week"),
        ).group_by(c[name])
        for name in STAT_COLUMNS
    ]
    rows = (await conn.execute(union_all(*parts))).all()
    return [(str(k), str(v), int(n), int(d or 0), int(w or 0)) for k, v, n, d, w in rows]


async def count(
    conn: AsyncConnection, since: datetime | None = None, state: str | None = None
) -> int:
    stmt = select(func.count()).select_from(alerts)
    if since is not None:
        stmt = stmt.where(alerts.c.sent >= since)
    if state is not None:
        stmt = stmt.where(alerts.c.state == state)
    return int((await conn.execute(stmt)).scalar_one())
