"""Consumer groups: work that must happen once, acknowledged only after its effect commits.

The delivery rules (DESIGN.md, "The bus"):
- an entry is acknowledged only after the handler returned, i.e. after its commit;
- an entry left pending by a consumer that died is reclaimed with XAUTOCLAIM once it has been
  idle for ``min_idle_ms``; a failed entry stays pending and is retried the same way;
- after ``max_deliveries`` deliveries, or at once for a ``PermanentError`` (an entry that can
  never succeed, such as one that is not an envelope), it is copied to the dead-letter stream
  with the reason and acknowledged, so it never blocks the entries after it;
- a Redis restart or flush loses groups (NOGROUP): the group is recreated and reading goes on;
- a database outage is not a failure of the entry: its handler is retried in place (with
  backoff, the entry re-claimed JUSTID so its idle time restarts and its delivery count does
  not grow) until the database answers, so an outage dead-letters nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.events import DEAD_LETTER_TYPE, DeadLetter
from eas_schemas.streams import DEAD_LETTER
from servicekit.bus import fields_to_str, stream_key
from servicekit.db import database_unreachable

log = logging.getLogger(__name__)

Handler = Callable[[str, EventEnvelope[dict[str, Any]]], Awaitable[None]]
# A batch handler commits a whole batch at once and returns {entry id: reason} for the
# entries it rejected as permanently invalid (they are dead-lettered, the rest acknowledged).
BatchHandler = Callable[
    [list[tuple[str, EventEnvelope[dict[str, Any]]]]], Awaitable[dict[str, str]]
]


class PermanentError(Exception):
    """The entry can never be processed; dead-letter it without retrying."""


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    group_recreated: int = 0
    redis_errors: int = 0
    outage_waits: int = 0  # handler tries that met an unreachable database (not counted)
    last_entry_id: str = ""
    by_reason: dict[str, int] = field(default_factory=dict)


class GroupConsumer:
    def __init__(
        self,
        client: aioredis.Redis,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        namespace: str = "",
        source: str = "",
        batch_size: int = 64,  # pragma: no mutate (a default)
        concurrency: int = 8,  # pragma: no mutate (a default)
        block_ms: int = 1000,  # pragma: no mutate (a default)
        min_idle_ms: int = 30_000,  # pragma: no mutate (a default)
        max_deliveries: int = 5,  # pragma: no mutate (a default)
        batch_handler: BatchHandler | None = None,
    ) -> None:
        self.client = client
        self.stream = stream_key(stream, namespace)
        self.stream_name = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.namespace = namespace
        self.source = source or f"{group}/{consumer}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.batch_handler = batch_handler
        self.stats = ConsumerStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._next_reclaim = 0.0
        self._stop = asyncio.Event()  # run()'s, once it runs

    async def ensure_group(self) -> None:
        try:
            # From "0": a group created after entries were written still processes them.
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        backoff = 0.1  # pragma: no mutate (backoff timing)
        while not stop.is_set():
            try:
                await self.ensure_group()
                while not stop.is_set():
                    await self.poll_once()
                    backoff = 0.1  # pragma: no mutate (backoff timing)
            except ResponseError as exc:
                # NOGROUP: the group is gone (restart without persistence, flush). UNBLOCKED: the
                # stream was deleted while we were blocked reading it. Either way: recreate.
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    raise
                self.stats.group_recreated += 1
                # The server is back: the next failure starts from a short wait again.
                backoff = 0.1  # pragma: no mutate (backoff timing)
                log.warning("consumer group %s on %s lost; recreating", self.group, self.stream)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.stats.redis_errors += 1
                log.warning(
                    "redis unavailable for %s (%s); retrying in %.1fs", self.stream, exc, backoff
                )
                # Every pooled connection died with the server: dropping them now keeps the
                # first XACKs after it is back from failing on a dead socket (bench/bus_consumers
                # measured two already-handled entries delivered again that way).
                with contextlib.suppress(Exception):
                    await self.client.connection_pool.disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)  # pragma: no mutate (backoff timing)

    async def poll_once(self) -> int:
        """Reclaim idle pending entries (at most every min_idle/2), then read new ones."""
        handled = 0
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_reclaim:
            self._next_reclaim = loop.time() + max(self.min_idle_ms / 2000, 0.05)
            handled += await self.reclaim_idle()
        reply: Any = await self.client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.batch_size,
            block=self.block_ms,
        )
        for _stream, entries in reply or []:
            await self._process([(eid, fields, 1) for eid, fields in entries])
            handled += len(entries)
        return handled

    async def reclaim_idle(self) -> int:
        start = "0-0"
        total = 0
        while True:
            reply: Any = await self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.min_idle_ms,
                start,
                count=self.batch_size,
            )
            start, entries = reply[0], reply[1]
            live = [(eid, fields) for eid, fields in entries if fields]
            if live:
                deliveries = await self._delivery_counts([eid for eid, _ in live])
                self.stats.reclaimed += len(live)
                await self._process([(eid, f, deliveries.get(eid, 1)) for eid, f in live])
                total += len(live)
            if start in ("0-0", b"0-0"):
                return total

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        # Only this consumer's entries: XAUTOCLAIM just made every one of ``ids`` ours, while
        # entries other replicas hold between them (not idle yet) would otherwise fill the
        # count, and an entry whose count is missed is taken for a first delivery: a poison
        # entry retried forever. The margin covers our own entries still pending in the range.
        rows = await self.client.xpending_range(
            self.stream,
            self.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 4 + 10,
            consumername=self.consumer,
        )
        return {str(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def _process(self, entries: list[tuple[str, Any, int]]) -> None:
        if self.batch_handler is not None and len(entries) > 1:
            await self._process_batch(entries)
            return
        await self._process_each(entries)

    async def _process_batch(self, entries: list[tuple[str, Any, int]]) -> None:
        """One commit for the batch; if the batch fails, fall back to one entry at a time so
        a single bad entry is isolated (retried, then dead-lettered) instead of blocking all."""
        assert self.batch_handler is not None
        good: list[tuple[str, EventEnvelope[dict[str, Any]]]] = []
        fields_by_id: dict[str, dict[str, str]] = {}
        deliveries_by_id: dict[str, int] = {}
        for entry_id, raw, deliveries in entries:
            fields = fields_to_str(raw)
            if deliveries > self.max_deliveries:
                await self._dead_letter(entry_id, fields, deliveries, "retries exhausted")
                continue
            try:
                good.append((entry_id, decode_entry(fields)))
            except ValueError as exc:
                await self._dead_letter(
                    entry_id, fields, deliveries, f"not an event envelope: {exc}"
                )
                continue
            fields_by_id[entry_id] = fields
            deliveries_by_id[entry_id] = deliveries
        if not good:
            return
        try:
            rejected = await self.batch_handler(good)
        except Exception as exc:
            log.warning(
                "batch of %d on %s failed (%s); handling one by one", len(good), self.stream, exc
            )
            await self._process_each(
                [(eid, fields_by_id[eid], deliveries_by_id[eid]) for eid, _ in good]
            )
            return
        for entry_id, reason in rejected.items():
            await self._dead_letter(
                entry_id, fields_by_id[entry_id], deliveries_by_id[entry_id], reason
            )
        accepted = [eid for eid, _ in good if eid not in rejected]
        if accepted:
            await self.client.xack(self.stream, self.group, *accepted)
            self.stats.handled += len(accepted)
            self.stats.last_entry_id = accepted[-1]

    async def _process_each(self, entries: list[tuple[str, Any, int]]) -> None:
        async def one(entry_id: str, fields: Any, deliveries: int) -> None:
            async with self._slots:
                await self._handle_entry(entry_id, fields_to_str(fields), deliveries)

        await asyncio.gather(*(one(e, f, d) for e, f, d in entries))

    async def _handle_entry(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        if deliveries > self.max_deliveries:
            await self._dead_letter(entry_id, fields, deliveries, "retries exhausted")
            return
        try:
            envelope = decode_entry(fields)
        except ValueError as exc:
            await self._dead_letter(entry_id, fields, deliveries, f"not an event envelope: {exc}")
            return
        try:
            await self._through_outages(entry_id, envelope)
        except PermanentError as exc:
            await self._dead_letter(entry_id, fields, deliveries, str(exc))
            return
        except Exception as exc:
            if self._stop.is_set() and database_unreachable(exc):
                # Stopping in the middle of a database outage: the outage is still not the
                # entry's fault: it stays pending, not counted as failed, for this replica's
                # next start or another's reclaim (counting it would dead-letter an entry that
                # was on its last delivery).
                log.warning(
                    "stopped during a database outage; %s %s stays pending", self.stream, entry_id
                )
                return
            self.stats.failed += 1
            log.exception(
                "handler failed on %s %s (delivery %d/%d): %s",
                self.stream,
                entry_id,
                deliveries,
                self.max_deliveries,
                exc,
            )
            if deliveries >= self.max_deliveries:
                await self._dead_letter(
                    entry_id, fields, deliveries, f"{type(exc).__name__}: {exc}"
                )
            return
        await self.client.xack(self.stream, self.group, entry_id)
        self.stats.handled += 1
        self.stats.last_entry_id = entry_id

    async def _through_outages(self, entry_id: str, envelope: EventEnvelope[Any]) -> None:
        """The handler, retried here while the database cannot be reached: an outage is not
        the entry's fault, so it must not use up the entry's deliveries and dead-letter it
        (a 30 s PostgreSQL restart would otherwise lose every alert in flight). Between tries
        the entry is claimed again with JUSTID: its idle time restarts and its delivery count
        stays, so no other replica reclaims it meanwhile."""
        wait = 0.25  # pragma: no mutate (backoff timing)
        while True:
            try:
                await self.handler(entry_id, envelope)
                return
            except Exception as exc:
                if self._stop.is_set() or not database_unreachable(exc):
                    raise
                self.stats.outage_waits += 1
                log.warning(
                    "database unavailable handling %s %s (%s); retrying in %.1fs",
                    self.stream,
                    entry_id,
                    type(exc).__name__,
                    wait,
                )
            # Claimed again well within min idle, for as long as the wait lasts.
            loop = asyncio.get_running_loop()
            until = loop.time() + wait
            while not self._stop.is_set():
                await self.client.xclaim(
                    self.stream, self.group, self.consumer, 0, [entry_id], justid=True
                )
                left = until - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), timeout=min(left, self.min_idle_ms / 3000)
                    )
            wait = min(wait * 2, 5.0)  # pragma: no mutate (backoff timing)

    async def _dead_letter(
        self, entry_id: str, fields: dict[str, str], deliveries: int, reason: str
    ) -> None:
        letter = DeadLetter(
            stream=self.stream_name,
            group=self.group,
            entry_id=entry_id,
            deliveries=deliveries,
            reason=reason[:2000],
            fields=fields,
            failed_at=datetime.now(UTC),
        )
        envelope = EventEnvelope[DeadLetter](
            type=DEAD_LETTER_TYPE, source=self.source, subject=entry_id, data=letter
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            stream_key(DEAD_LETTER, self.namespace),
            dict[Any, Any](encode_entry(envelope)),
            maxlen=DEAD_LETTER.maxlen,
            approximate=True,
        )
        pipe.xack(self.stream, self.group, entry_id)
        await pipe.execute()
        self.stats.dead_lettered += 1
        key = reason.split(":")[0][:60]
        self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1
        log.error(
            "dead-lettered %s %s after %d deliveries: %s", self.stream, entry_id, deliveries, reason
        )

    async def pending_count(self) -> int:
        try:
            info = await self.client.xpending(self.stream, self.group)
        except ResponseError:
            return 0
        return int(info["pending"])

    async def lag(self) -> int:
        """Entries in the stream not yet delivered to the group (Redis >= 7 reports it)."""
        try:
            groups = await self.client.xinfo_groups(self.stream)
        except ResponseError:
            return 0
        for g in groups:
            if g["name"] == self.group:
                return int(g.get("lag") or 0)
        return 0
