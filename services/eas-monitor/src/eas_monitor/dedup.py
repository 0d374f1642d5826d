"""One ``same.*`` event per transmission, however many inputs heard it (atomic, in Redis).

Every worker that decodes something calls :meth:`Aggregator.hear`. One Lua script, atomically:

- ``first``: SET NX with the duplicate window as TTL; its value is the Redis time of the first
  decode, so every hearer agrees on when the aggregation window ends;
- ``hearings``: a hash input id -> hearing (HSETNX: an input's first hearing is kept), expiring
  with ``first``;
- it answers the first-decode time, whether this call was the first, and whether the event was
  already published.

The first hearer publishes at first + aggregation window; every other hearer schedules the same
at first + aggregation window + grace, as a takeover in case the first one died. Publishing is
guarded by ``SET published NX``: exactly one of them publishes, with the hearings recorded by
then. A repeat of the same text within the duplicate window finds ``published`` set and is
dropped (its hearing still lands in the hash). Keys of one transmission share a hash tag so the
script also runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import Hearing
from eas_schemas.streams import SAME_EVENTS
from servicekit.bus import SyncBus

_HEAR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('GET', KEYS[1])
local is_first = 0
if not first then
  redis.call('SET', KEYS[1], now, 'PX', ARGV[1])
  first = now
  is_first = 1
end
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {tonumber(first), now, is_first, redis.call('EXISTS', KEYS[3])}
"""

Builder = Callable[[list[Hearing]], EventEnvelope[Any]]


@dataclass(slots=True)
class Pending:
    """A publication this worker will attempt when its deadline comes."""

    kind: str
    digest: str
    due: float  # time.monotonic() deadline
    build: Builder = field(repr=False)
    first: bool


class Aggregator:
    def __init__(
        self,
        client: redis.Redis,
        bus: SyncBus,
        *,
        aggregation_s: float,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.bus = bus
        self.aggregation_s = aggregation_s
        self.grace_s = grace_s
        self.clock = clock
        self._hear = client.register_script(_HEAR)
        self.pending: list[Pending] = []
        self.published = 0
        self.suppressed = 0

    def _keys(self, kind: str, digest: str) -> tuple[str, str, str]:
        base = self.bus.key(f"eas-monitor:dedup:{kind}:{{{digest}}}")
        return f"{base}:first", f"{base}:hearings", f"{base}:published"

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def hear(self, kind: str, text: str, hearing: Hearing, window_s: float, build: Builder) -> bool:
        """Record a hearing; schedule a publication unless this is a known duplicate.

        Returns False when the transmission was already published (a repeat, or a late input).
        """
        digest = self.digest(f"{kind}\n{text}")
        keys = self._keys(kind, digest)
        reply: Any = self._hear(
            keys=list(keys),
            args=[int(window_s * 1000), str(hearing.input_id), hearing.model_dump_json()],
        )
        first_ms, now_ms, is_first, published = (int(v) for v in reply)
        if published:
            self.suppressed += 1
            return False
        if any(p.kind == kind and p.digest == digest for p in self.pending):
            return True  # this worker already holds a publication for it
        delay = (first_ms - now_ms) / 1000 + self.aggregation_s
        if not is_first:
            delay += self.grace_s
        self.pending.append(
            Pending(kind, digest, self.clock() + max(0.0, delay), build, bool(is_first))
        )
        return True

    def due(self, *, everything: bool = False) -> list[Pending]:
        now = self.clock()
        ready = [p for p in self.pending if everything or p.due <= now]
        self.pending = [p for p in self.pending if p not in ready]
        return ready

    def publish(self, pending: Pending, window_s: float) -> str | None:
        """Publish with every hearing recorded so far, unless another worker already did."""
        _first_key, hearings_key, published_key = self._keys(pending.kind, pending.digest)
        raw: Any = self.client.hgetall(hearings_key)
        hearings = sorted(
            (Hearing.model_validate_json(v) for v in raw.values()),
            key=lambda h: (h.heard_at, h.input_id),
        )
        if not hearings:
            return None  # expired meanwhile: a later repeat starts anew
        envelope = pending.build(hearings)
        if not self.client.set(published_key, envelope.id, nx=True, px=int(window_s * 1000)):
            self.suppressed += 1
            return None
        self.bus.publish(SAME_EVENTS, envelope)
        self.published += 1
        return envelope.id
