"""Follow the station's settings document without a restart (async and threaded flavours).

station-api saves a change, publishes ``settings.changed`` and then writes the secret-free
current document to the Redis string ``<ns>:settings.current`` as ``{version, settings}``.
A follower:

1. pins the stream's last id, then reads ``settings.current`` (pin first: an event announced
   after the pin is read from the stream, one announced before it is covered by the read, and
   the last event at or before the pin tells which version the read should have found);
2. tails ``settings.changed`` without a consumer group (every instance sees every change) and
   on each event reads ``settings.current`` again;
3. calls the service's callback only with a version newer than the one applied, so repeats,
   replays and out-of-order deliveries change nothing;
4. survives Redis errors: it backs off, then resumes after the last entry it read (or from the
   stream's head if Redis came back without its data) and reads the document again. A periodic
   re-read catches anything the stream could not tell (a document written late, a lost event).

Precedence (documented in ``docs/settings-propagation.md``): a service's environment settings
are the defaults. Version 0 (station-api running, nothing saved yet) and a missing document
count as "no document". Once a document is present, each part of it that differs from the
built-in default (`configured`) wins over the environment, including a feed switched off
there; a part still at its default leaves the environment's value in force. Secrets are never
in the Redis document, so they always come from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError

from eas_schemas.envelope import decode_entry
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings
from eas_schemas.streams import SETTINGS_CHANGED
from servicekit.bus import fields_to_str, parse_entry_id, stream_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SettingsVersion:
    """One saved version of the station's settings (without secrets)."""

    version: int
    settings: StationSettings


AsyncCallback = Callable[[SettingsVersion], Awaitable[None]]
SyncCallback = Callable[[SettingsVersion], None]


def configured(part: BaseModel) -> bool:
    """Whether a part of the document was set by someone (differs from its built-in default)."""
    return part != type(part)()


def parse_current(raw: str | bytes | None) -> SettingsVersion | None:
    """The ``settings.current`` value, or None when absent; raises ValueError when malformed."""
    if raw is None:
        return None
    doc = json.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise ValueError("settings.current is not {version, settings}")
    return SettingsVersion(
        version=doc["version"], settings=StationSettings.model_validate(doc.get("settings", {}))
    )


def _announced_version(fields: Any) -> int | None:
    try:
        version = decode_entry(fields_to_str(fields)).data.get("version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class FollowerStats:
    applied: int = 0
    events: int = 0
    redis_errors: int = 0
    callback_failures: int = 0
    invalid_documents: int = 0
    last_applied_at: float | None = field(default=None)


class _Core:
    """State and decisions shared by both flavours; the subclasses only do the I/O."""

    def __init__(
        self,
        namespace: str,
        *,
        name: str,
        block_ms: int,
        refresh_s: float,
        retry_min_s: float,
        retry_max_s: float,
    ) -> None:
        self.stream = stream_key(SETTINGS_CHANGED, namespace)
        self.doc_key = stream_key(CURRENT_SETTINGS_KEY, namespace)
        self.name = name
        self.block_ms = block_ms
        self.refresh_s = refresh_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.applied_version = 0
        self.current: SettingsVersion | None = None
        self.last_id: str | None = None  # None: (re)pin before reading the stream
        self.stats = FollowerStats()
        self._expected = 0  # highest version announced; the document should catch up
        self._retry_s = retry_min_s
        self._doc_retry_s = retry_min_s
        self._next_refresh = 0.0
        self._pinned = False

    def _head(self, info: Any) -> str:
        return _text(info["last-generated-id"]) if info else "0-0"

    def _repin(self, head: str) -> None:
        # Resume after the last entry read, unless the stream now ends below it: Redis came
        # back without its data and ids started over, so reading after the old id would skip
        # every new change.
        if self.last_id is None or parse_entry_id(head) < parse_entry_id(self.last_id):
            self.last_id = head

    def _note_entries(self, reply: Any, delivered: bool = True) -> bool:
        got = False
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                got = True
                self.last_id = _text(entry_id)
                self.stats.events += int(delivered)
                version = _announced_version(fields)
                if version is not None:
                    self._expected = max(self._expected, version)
        return got

    def _candidate(self, raw: Any) -> SettingsVersion | None:
        """The document to apply, or None (absent, not newer, malformed)."""
        try:
            doc = parse_current(raw)
        except (ValueError, ValidationError) as exc:
            self.stats.invalid_documents += 1
            log.warning(
                "%s: settings.current unreadable, keeping version %d: %s",
                self.name,
                self.applied_version,
                type(exc).__name__,
            )
            return None
        if doc is None or doc.version <= self.applied_version:
            return None
        return doc

    def _applied(self, doc: SettingsVersion) -> None:
        self.applied_version = doc.version
        self.current = doc
        self.stats.applied += 1
        self.stats.last_applied_at = time.time()
        self._retry_s = self.retry_min_s
        log.info("%s: station settings version %d applied", self.name, doc.version)

    def _failed(self, doc: SettingsVersion, exc: BaseException) -> None:
        self.stats.callback_failures += 1
        log.warning(
            "%s: applying settings version %d failed (%s: %s); will retry",
            self.name,
            doc.version,
            type(exc).__name__,
            exc,
        )
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._next_refresh = time.monotonic() + self._retry_s
        self._retry_s = min(self.retry_max_s, self._retry_s * 2)

    def _after_read(self) -> None:
        if self.applied_version < self._expected:
            # Announced but not (yet) readable: station-api writes the document a database
            # round trip after the event, or its write failed and comes with a later save.
            # Look again soon, backing off gently (a GET is cheap; latency is the point).
            self._next_refresh = time.monotonic() + self._doc_retry_s
            self._doc_retry_s = min(self.retry_max_s, self._doc_retry_s * 1.25)
        else:
            self._retry_s = self._doc_retry_s = self.retry_min_s
            self._next_refresh = time.monotonic() + self.refresh_s

    def _block_ms(self) -> int:
        until_refresh = self._next_refresh - time.monotonic()
        return max(1, min(self.block_ms, int(until_refresh * 1000)))

    def _refresh_due(self) -> bool:
        return time.monotonic() >= self._next_refresh


class SettingsFollower(_Core):
    """For asyncio services: ``await run(stop)`` as a background task."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        on_change: AsyncCallback,
        *,
        name: str = "settings",
        block_ms: int = 1000,
        refresh_s: float = 30.0,
        retry_min_s: float = 0.02,
        retry_max_s: float = 10.0,
    ) -> None:
        super().__init__(
            namespace,
            name=name,
            block_ms=block_ms,
            refresh_s=refresh_s,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )
        self.client = client
        self.on_change = on_change

    async def sync(self) -> bool:
        """Pin the stream and apply the current document; False if Redis did not answer."""
        try:
            await self._pin()
            await self._refresh()
            return True
        except (redis.RedisError, OSError) as exc:
            self.stats.redis_errors += 1
            self._pinned = False
            log.warning("%s: settings not read (%s); will retry", self.name, exc)
            return False

    async def _pin(self) -> None:
        info: Any = (
            await self.client.xinfo_stream(self.stream)
            if await self.client.exists(self.stream)
            else None
        )
        head = self._head(info)
        fresh = self.last_id is None
        self._repin(head)
        if fresh and head != "0-0":
            last: Any = await self.client.xrevrange(self.stream, max=head, min="-", count=1)
            # Read for its version only: the document read next must be at least that new.
            self._note_entries([(self.stream, last)], delivered=False)
        self._pinned = True

    async def _refresh(self) -> None:
        doc = self._candidate(await self.client.get(self.doc_key))
        if doc is not None:
            try:
                await self.on_change(doc)
            except Exception as exc:
                self._failed(doc, exc)
                return
            self._applied(doc)
        self._after_read()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not self._pinned:
                    await self._pin()
                    await self._refresh()
                streams: Any = {self.stream: self.last_id}
                reply: Any = await self.client.xread(streams, count=100, block=self._block_ms())
                if self._note_entries(reply) or self._refresh_due():
                    await self._refresh()
            except (redis.RedisError, OSError) as exc:
                self.stats.redis_errors += 1
                self._pinned = False
                delay = self._retry_s
                self._retry_s = min(self.retry_max_s, self._retry_s * 2)
                log.warning(
                    "%s: settings stream unavailable (%s); retry in %.1f s", self.name, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)


class SyncSettingsFollower(_Core):
    """For threaded sync workers: ``start(stop)`` runs the follower in a daemon thread.

    The callback runs in the follower's thread; hand the document to the worker's own loop
    (as the pollers do) rather than reconfigure shared state from here.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        on_change: SyncCallback,
        *,
        name: str = "settings",
        block_ms: int = 1000,
        refresh_s: float = 30.0,
        retry_min_s: float = 0.02,
        retry_max_s: float = 10.0,
    ) -> None:
        super().__init__(
            namespace,
            name=name,
            block_ms=block_ms,
            refresh_s=refresh_s,
            retry_min_s=retry_min_s,
            retry_max_s=retry_max_s,
        )
        self.client = client
        self.on_change = on_change
        self.thread: threading.Thread | None = None

    def sync(self) -> bool:
        """Pin the stream and apply the current document; False if Redis did not answer."""
        try:
            self._pin()
            self._refresh()
            return True
        except (redis.RedisError, OSError) as exc:
            self.stats.redis_errors += 1
            self._pinned = False
            log.warning("%s: settings not read (%s); will retry", self.name, exc)
            return False

    def _pin(self) -> None:
        info: Any = (
            self.client.xinfo_stream(self.stream) if self.client.exists(self.stream) else None
        )
        head = self._head(info)
        fresh = self.last_id is None
        self._repin(head)
        if fresh and head != "0-0":
            last: Any = self.client.xrevrange(self.stream, max=head, min="-", count=1)
            self._note_entries([(self.stream, last)], delivered=False)
        self._pinned = True

    def _refresh(self) -> None:
        doc = self._candidate(self.client.get(self.doc_key))
        if doc is not None:
            try:
                self.on_change(doc)
            except Exception as exc:
                self._failed(doc, exc)
                return
            self._applied(doc)
        self._after_read()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not self._pinned:
                    self._pin()
                    self._refresh()
                streams: Any = {self.stream: self.last_id}
                reply: Any = self.client.xread(streams, count=100, block=self._block_ms())
                if self._note_entries(reply) or self._refresh_due():
                    self._refresh()
            except (redis.RedisError, OSError) as exc:
                self.stats.redis_errors += 1
                self._pinned = False
                delay = self._retry_s
                self._retry_s = min(self.retry_max_s, self._retry_s * 2)
                log.warning(
                    "%s: settings stream unavailable (%s); retry in %.1f s", self.name, exc, delay
                )
                stop.wait(delay)

    def start(self, stop: threading.Event) -> threading.Thread:
        self.thread = threading.Thread(
            target=self.run, args=(stop,), name=f"{self.name}-settings", daemon=True
        )
        self.thread.start()
        return self.thread
