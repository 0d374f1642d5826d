"""Publish after commit: the transactional outbox every service with a database uses.

A change writes its events into the service's outbox table in the transaction of the change
itself, commits, then publishes them and deletes the rows. If Redis is away after the commit
the rows stay, and the flusher sends them later (rows older than a grace period, locked with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL so replicas never send the same row twice). So a
committed change is never unannounced and an announced change is always committed.

Delivery is at least once: a process killed between publishing and deleting sends the same
envelope (same id) again on the next flush; subscribers drop envelope ids they have seen.
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
            select(table.c.id, table.c.stream, table.c.envelope)
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
                await self.bus.publish_entries(entries)
            except Exception as exc:
                self.failures += 1
                log.warning("outbox flush failed, will retry: %s", exc)
                return 0
            await self._delete(conn, [int(r.id) for r in rows])
        self.published += len(entries)
        return len(entries)

    async def _delete(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        if ids:
            await conn.execute(delete(self.table).where(self.table.c.id.in_(list(ids))))
