"""Group-less stream readers for fan-out: every reader sees every entry.

A tail that restarts must not silently start at ``$`` and miss what was published while it
was away; it resumes from the last id it processed, which the caller keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from servicekit.bus import fields_to_str


class StreamTail:
    def __init__(self, client: aioredis.Redis, last_ids: dict[str, str]) -> None:
        """``last_ids`` maps stream key to the last entry id seen (``$`` = only new ones)."""
        self.client = client
        self.last_ids = dict(last_ids)

    async def read(
        self, count: int = 500, block_ms: int = 1000
    ) -> list[tuple[str, str, dict[str, str]]]:
        """Next entries as (stream key, entry id, fields), in order per stream."""
        if self.last_ids and any(v == "$" for v in self.last_ids.values()):
            await self._pin_dollar()
        streams: Any = self.last_ids
        reply: Any = await self.client.xread(streams, count=count, block=block_ms)
        out: list[tuple[str, str, dict[str, str]]] = []
        for stream, entries in reply or []:
            key = stream.decode() if isinstance(stream, bytes) else str(stream)
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                out.append((key, eid, fields_to_str(fields)))
                self.last_ids[key] = eid
        return out

    async def _pin_dollar(self) -> None:
        # Replace "$" with the concrete last id once, so a reconnect after an error resumes
        # from there instead of skipping whatever arrived in between.
        for key, value in list(self.last_ids.items()):
            if value == "$":
                info: Any = (
                    await self.client.xinfo_stream(key) if await self.client.exists(key) else None
                )
                self.last_ids[key] = str(info["last-generated-id"]) if info else "0-0"


async def read_all(
    client: aioredis.Redis, key: str, start: str = "-", end: str = "+"
) -> list[tuple[str, dict[str, str]]]:
    """Every entry of one stream in a range (tests, replay)."""
    rows: Any = await client.xrange(key, min=start, max=end)
    return [(str(eid), fields_to_str(f)) for eid, f in rows]


def envelope_types(entries: Iterable[tuple[str, dict[str, str]]]) -> list[str]:
    return [fields.get("type", "") for _, fields in entries]
