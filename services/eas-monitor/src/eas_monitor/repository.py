"""All SQL of eas-monitor. Functions take a connection inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from eas_monitor.tables import monitor_clips, monitor_inputs, same_decode_inputs, same_decodes


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


# ---- inputs ------------------------------------------------------------------------------


async def insert_input(conn: AsyncConnection, values: dict[str, Any]) -> int:
    new_id: int = (
        await conn.execute(monitor_inputs.insert().values(**values).returning(monitor_inputs.c.id))
    ).scalar_one()
    return new_id


async def get_input(conn: AsyncConnection, input_id: int) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(monitor_inputs).where(monitor_inputs.c.id == input_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def list_inputs(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(monitor_inputs).order_by(monitor_inputs.c.id))).mappings()
    return [dict(r) for r in rows]


async def update_input(conn: AsyncConnection, input_id: int, values: dict[str, Any]) -> bool:
    result = await conn.execute(
        update(monitor_inputs).where(monitor_inputs.c.id == input_id).values(**values)
    )
    return bool(result.rowcount)


async def delete_input(conn: AsyncConnection, input_id: int) -> bool:
    result = await conn.execute(delete(monitor_inputs).where(monitor_inputs.c.id == input_id))
    return bool(result.rowcount)


# ---- decodes -----------------------------------------------------------------------------


async def insert_decode(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert unless the event id is stored already; the new id, or None for a redelivery."""
    stmt = (
        _insert(conn, same_decodes)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(same_decodes.c.id)
    )
    new_id: int | None = (await conn.execute(stmt)).scalar_one_or_none()
    return new_id


async def insert_decode_inputs(
    conn: AsyncConnection, decode_id: int, input_ids: Sequence[int]
) -> None:
    rows = [{"decode_id": decode_id, "input_id": i} for i in dict.fromkeys(input_ids)]
    if rows:
        await conn.execute(same_decode_inputs.insert(), rows)


@dataclass(frozen=True, slots=True)
class DecodeFilter:
    type: str | None = None
    event_code: str | None = None
    input_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_decodes(
    conn: AsyncConnection,
    flt: DecodeFilter,
    limit: int,
    after: tuple[datetime, int] | None,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paged on (heard_at, id)."""
    d = same_decodes.c
    stmt = select(same_decodes)
    if flt.type:
        stmt = stmt.where(d.type == flt.type)
    if flt.event_code:
        stmt = stmt.where(d.event_code == flt.event_code)
    if flt.since:
        stmt = stmt.where(d.heard_at >= flt.since)
    if flt.until:
        stmt = stmt.where(d.heard_at < flt.until)
    if flt.input_id is not None:
        heard = select(same_decode_inputs.c.decode_id).where(
            same_decode_inputs.c.input_id == flt.input_id
        )
        stmt = stmt.where(d.id.in_(heard))
    if after is not None:
        at, last_id = after
        stmt = stmt.where((d.heard_at < at) | ((d.heard_at == at) & (d.id < last_id)))
    stmt = stmt.order_by(d.heard_at.desc(), d.id.desc()).limit(limit)
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    if rows:
        links = await conn.execute(
            select(same_decode_inputs).where(
                same_decode_inputs.c.decode_id.in_([r["id"] for r in rows])
            )
        )
        by_decode: dict[int, list[int]] = {}
        for link in links.mappings():
            by_decode.setdefault(link["decode_id"], []).append(link["input_id"])
        for r in rows:
            r["input_ids"] = sorted(by_decode.get(r["id"], []))
    return rows


async def get_decode(conn: AsyncConnection, decode_id: int) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(same_decodes).where(same_decodes.c.id == decode_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    out = dict(row)
    links = await conn.execute(
        select(same_decode_inputs.c.input_id).where(same_decode_inputs.c.decode_id == decode_id)
    )
    out["input_ids"] = sorted(int(i) for i in links.scalars())
    return out


# ---- clips -------------------------------------------------------------------------------


async def insert_clip(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(
        _insert(conn, monitor_clips).values(**values).on_conflict_do_nothing(index_elements=["id"])
    )


async def get_clip(conn: AsyncConnection, clip_id: str) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(monitor_clips).where(monitor_clips.c.id == clip_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def expired_clips(
    conn: AsyncConnection, older_than: datetime, keep: int
) -> list[dict[str, Any]]:
    """Clips older than the retention time, plus the oldest ones beyond ``keep``."""
    c = monitor_clips.c
    old = (await conn.execute(select(c.id, c.file_name).where(c.created_at < older_than))).all()
    total: int = (await conn.execute(select(func.count()).select_from(monitor_clips))).scalar_one()
    extra: list[Any] = []
    if total - len(old) > keep:
        extra = list(
            (
                await conn.execute(
                    select(c.id, c.file_name)
                    .where(c.created_at >= older_than)
                    .order_by(c.created_at, c.id)
                    .limit(total - len(old) - keep)
                )
            ).all()
        )
    return [{"id": r.id, "file_name": r.file_name} for r in [*old, *extra]]


async def delete_clips(conn: AsyncConnection, clip_ids: Sequence[str]) -> None:
    if clip_ids:
        await conn.execute(delete(monitor_clips).where(monitor_clips.c.id.in_(list(clip_ids))))
        await conn.execute(
            update(same_decodes)
            .where(same_decodes.c.clip_id.in_(list(clip_ids)))
            .values(clip_id=None)
        )


async def clip_file_names(conn: AsyncConnection) -> set[str]:
    return set((await conn.execute(select(monitor_clips.c.file_name))).scalars())
