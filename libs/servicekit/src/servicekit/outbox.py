"""Publish after commit: the transactional outbox every service with a database uses.

A change writes its events into the service's outbox table in the transaction of the change
itself, commits, then publishes them and deletes the rows. If Redis is away after the commit
the rows stay, and the flusher sends them later (rows older than a grace period, locked with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL so replicas never send the same row twice). So a
committed change is never unannounced and an announced change is always committed.

A process killed between publishing and deleting leaves rows whose events are already on the
bus: the flush looks for their envelope ids on their streams (from a little before the row was
written) and deletes those rows without sending them again, so a kill -9 does not announce a
change twice. Delivery stays at least once where that look cannot tell (the stream was trimmed
past the entry, or more than ``SCAN_LIMIT`` entries were added since); subscribers drop
envelope ids they have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.envelope import EventEnvelope, encode_entry
from eas_schemas.streams import StreamSpec, stream_by_name
from servicekit.bus import AsyncBus
from servicekit.sqltypes import Id, UTCDateTime

log = logging.getLogger(__name__)

FLUSH_GRACE_S = 5.0
# Stream entry ids are the Redis server's clock, the rows' created_at the service's: look
# back this much further for an entry published right after its row was written.
CLOCK_SKEW_S = 60.0
SCAN_LIMIT = 20_000


def outbox_table(metadata: MetaData, name: str) -> Table:
    """The outbox table of one service. Each service names its own (``alert_outbox``,
    ``station_outbox``...): in one-machine mode the services share one database."""
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("stream", String(128), nullable=False),
        Column("envelope", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
    )


@dataclass(frozen=True, slots=True)
class Pending:
    """Events written to the outbox in a transaction that has not been published yet."""

    row_ids: tuple[int, ...]
    entries: tuple[tuple[StreamSpec, dict[str, str]], ...]

    def __len__(self) -> int:
        return len(self.entries)


NOTHING = Pending((), ())


class Outbox:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: AsyncBus | None,
        table: Table,
        *,
        grace_s: float = FLUSH_GRACE_S,
        batch: int = 500,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.table = table
        self.grace_s = grace_s
        self.batch = batch
        self.published = 0
        self.failures = 0

    async def add(
        self, conn: AsyncConnection, items: Sequence[tuple[StreamSpec, EventEnvelope[Any]]]
    ) -> Pending:
        """Write ``items`` in the caller's transaction; publish the result after its commit."""
        if not items:
            return NOTHING
        now = datetime.now(UTC)
        entries = tuple((spec, encode_entry(envelope)) for spec, envelope in items)
        result = await conn.execute(
            self.table.insert().returning(self.table.c.id),
            [
                {"stream": spec.name, "envelope": fields["envelope"], "created_at": now}
                for spec, fields in entries
            ],
        )
        return Pending(tuple(int(r[0]) for r in result.all()), entries)

    async def publish(self, pending: Pending) -> None:
        """Publish committed events now; whatever fails waits in the table for ``flush``."""
        if self.bus is None or not pending.entries:
            return
        try:
            await self.bus.publish_entries(list(pending.entries))
        except Exception as exc:
            self.failures += 1
            log.warning("publishing %d events failed, left in the outbox: %s", len(pending), exc)
            return
        self.published += len(pending)
        async with self.engine.begin() as conn:
            await self._delete(conn, pending.row_ids)

    async def flush(self, grace_s: float | None = None) -> int:
        """Publish what the requests could not (Redis away, or the process died)."""
        if self.bus is None:
            return 0
        # Rows younger than the grace period are still being published by their request;
        # taking them too would announce the change twice.
        grace = self.grace_s if grace_s is None else grace_s
        cutoff = datetime.now(UTC) - timedelta(seconds=grace)
        table = self.table
        stmt = (
            select(table.c.id, table.c.stream, table.c.envelope, table.c.created_at)
            .where(table.c.created_at < cutoff)
            .order_by(table.c.id)
            .limit(self.batch)
        )
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await conn.execute(stmt)).all()
            entries: list[tuple[StreamSpec, dict[str, str]]] = []
            for row in rows:
                spec = stream_by_name(row.stream)
                if spec is None:
                    log.error("outbox row %s names unknown stream %r; dropped", row.id, row.stream)
                    continue
                try:
                    envelope = EventEnvelope[dict[str, Any]].model_validate_json(row.envelope)
                except ValueError as exc:
                    # Unpublishable forever; kept, it would block every later row.
                    log.error("outbox row %s is not an envelope (%s); dropped", row.id, exc)
                    continue
                entries.append((spec, encode_entry(envelope, json_text=row.envelope)))
            if not rows:
                return 0
            try:
                done = await self._already_published(entries, min(r.created_at for r in rows))
                fresh = [(spec, fields) for spec, fields in entries if fields["id"] not in done]
                if fresh:
                    await self.bus.publish_entries(fresh)
            except Exception as exc:
                self.failures += 1
                log.warning("outbox flush failed, will retry: %s", exc)
                return 0
            if done:
                log.info(
                    "outbox: %d events were published before the process stopped; not sent again",
                    len(done),
                )
            await self._delete(conn, [int(r.id) for r in rows])
        self.published += len(fresh)
        return len(fresh)

    async def _already_published(
        self, entries: Sequence[tuple[StreamSpec, dict[str, str]]], since: datetime
    ) -> set[str]:
        """The envelope ids among ``entries`` already on their streams."""
        assert self.bus is not None
        wanted: dict[str, set[str]] = {}
        for spec, fields in entries:
            wanted.setdefault(self.bus.key(spec), set()).add(fields["id"])
        start = max(0, int((since.timestamp() - CLOCK_SKEW_S) * 1000))
        found: set[str] = set()
        for key, ids in wanted.items():
            cursor, seen = f"{start}-0", 0
            while ids - found and seen < SCAN_LIMIT:
                got = await self.bus.client.xrange(key, min=cursor, max="+", count=1000)
                page: list[Any] = list(got or [])
                if cursor != f"{start}-0":
                    page = page[1:]  # the cursor entry itself was on the previous page
                if not page:
                    break
                for _entry_id, fields in page:
                    value: Any = {_text(k): v for k, v in (fields or {}).items()}.get("id")
                    if value is not None and _text(value) in ids:
                        found.add(_text(value))
                seen += len(page)
                last = page[-1][0]
                cursor = _text(last)
        return found

    async def _delete(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        if ids:
            await conn.execute(delete(self.table).where(self.table.c.id.in_(list(ids))))


def _text(value: Any) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
