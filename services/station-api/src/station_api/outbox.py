"""Events are written to the outbox in the transaction of the change they announce, and
published after the commit; if Redis is away they stay there and the flusher sends them later.
So a committed change is never unannounced and an announced change is always committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.envelope import EventEnvelope
from eas_schemas.streams import ALL_STREAMS, StreamSpec
from servicekit.bus import AsyncBus
from station_api import repository as repo

log = logging.getLogger(__name__)

FLUSH_GRACE_S = 5.0
_STREAMS: dict[str, StreamSpec] = {s.name: s for s in ALL_STREAMS}


class Outbox:
    def __init__(self, engine: AsyncEngine, bus: AsyncBus | None) -> None:
        self.engine = engine
        self.bus = bus
        self.published = 0
        self.failures = 0

    async def add(
        self, conn: AsyncConnection, spec: StreamSpec, envelope: EventEnvelope[Any]
    ) -> tuple[int, StreamSpec, EventEnvelope[Any]]:
        row_id = await repo.outbox_add(
            conn, spec.name, envelope.model_dump_json(), datetime.now(UTC)
        )
        return row_id, spec, envelope

    async def publish(self, items: Sequence[tuple[int, StreamSpec, EventEnvelope[Any]]]) -> None:
        """Publish committed items now; whatever fails waits for `flush`."""
        if self.bus is None or not items:
            return
        try:
            await self.bus.publish_many([(spec, env) for _, spec, env in items])
        except Exception as exc:
            self.failures += 1
            log.warning("publish after commit failed, left in the outbox: %s", exc)
            return
        self.published += len(items)
        async with self.engine.begin() as conn:
            await repo.outbox_delete(conn, [row_id for row_id, _, _ in items])

    async def flush(self, grace_s: float = FLUSH_GRACE_S) -> int:
        """Publish what the requests could not. Rows are locked while being sent (skipping
        rows another replica holds), so two flushers never send the same event."""
        if self.bus is None:
            return 0
        # Rows younger than the grace period are still being published by their request;
        # taking them too would announce the change twice.
        cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
        async with self.engine.begin() as conn:
            rows = await repo.outbox_claim(conn, cutoff)
            items = [
                (_STREAMS[r.stream], EventEnvelope[dict[str, Any]].model_validate_json(r.envelope))
                for r in rows
                if r.stream in _STREAMS
            ]
            if not items:
                return 0
            try:
                await self.bus.publish_many(items)
            except Exception as exc:
                self.failures += 1
                log.warning("outbox flush failed, will retry: %s", exc)
                return 0
            await repo.outbox_delete(conn, [int(r.id) for r in rows])
        self.published += len(items)
        return len(items)
