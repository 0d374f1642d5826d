"""The Redis Streams bus: stream keys, publishing (async and sync) and group-less tails.

One wire layout for every producer (`eas_schemas.envelope.encode_entry`); every stream is
capped with an approximate MAXLEN on each XADD so Redis memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

from eas_schemas.envelope import EventEnvelope, encode_entry
from eas_schemas.streams import StreamSpec


def stream_key(spec: StreamSpec | str, namespace: str = "") -> str:
    name = spec if isinstance(spec, str) else spec.name
    return f"{namespace}:{name}" if namespace else name


def _maxlen(spec: StreamSpec | str) -> int | None:
    return spec.maxlen if isinstance(spec, StreamSpec) else None


class AsyncBus:
    """Publisher for async services; shares the caller's Redis client."""

    def __init__(self, client: aioredis.Redis, namespace: str = "") -> None:
        self.client = client
        self.namespace = namespace

    def key(self, spec: StreamSpec | str) -> str:
        return stream_key(spec, self.namespace)

    async def publish(self, spec: StreamSpec, envelope: EventEnvelope[Any]) -> str:
        entry_id = await self.client.xadd(
            self.key(spec), _fields(envelope), maxlen=spec.maxlen, approximate=True
        )
        return _as_str(entry_id)

    async def publish_many(self, items: list[tuple[StreamSpec, EventEnvelope[Any]]]) -> list[str]:
        """Publish a batch in one round trip (pipelined, not transactional)."""
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for spec, envelope in items:
            pipe.xadd(self.key(spec), _fields(envelope), maxlen=spec.maxlen, approximate=True)
        return [_as_str(r) for r in await pipe.execute()]

    async def publish_entries(self, entries: list[tuple[StreamSpec, dict[str, str]]]) -> list[str]:
        """Publish entries already encoded with ``encode_entry`` in one round trip."""
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for spec, fields in entries:
            pipe.xadd(self.key(spec), _wire(fields), maxlen=spec.maxlen, approximate=True)
        return [_as_str(r) for r in await pipe.execute()]


class SyncBus:
    """Publisher for the sync pollers and audio workers (redis-py, blocking)."""

    def __init__(self, client: redis.Redis, namespace: str = "") -> None:
        self.client = client
        self.namespace = namespace

    def key(self, spec: StreamSpec | str) -> str:
        return stream_key(spec, self.namespace)

    def publish(self, spec: StreamSpec, envelope: EventEnvelope[Any]) -> str:
        entry_id = self.client.xadd(
            self.key(spec), _fields(envelope), maxlen=spec.maxlen, approximate=True
        )
        return _as_str(entry_id)


def _fields(envelope: EventEnvelope[Any]) -> dict[Any, Any]:
    return _wire(encode_entry(envelope))


def _wire(fields: Mapping[str, str]) -> dict[Any, Any]:
    # redis-py's stubs want a wider key/value union than dict[str, str].
    return dict(fields)


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a pair that orders like Redis orders ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def fields_to_str(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {_as_str(k): _as_str(v) for k, v in fields.items()}


def async_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=10)


def sync_redis(url: str, timeout_s: float | None = 10.0) -> redis.Redis:
    # A timeout keeps a hung Redis from freezing a sync worker's loop forever.
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
