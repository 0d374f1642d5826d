"""What the scaled-topology tests and the fault benchmark share: CAP files for the pollers'
folder, a browser-like ``/ws`` client that resumes after every drop, and readers of the bus
that count what happened (stored, decided, aired, dead-lettered) from the streams themselves."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from eas_schemas.envelope import decode_entry
from eas_schemas.streams import StreamSpec
from servicekit.bus import stream_key

FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "cap" / "good"
TEMPLATE = FIXTURE / "nws-tor-cuyahoga.xml"
_TEMPLATE_ID = "urn:oid:2.49.0.1.840.0.7a1c2e0f4b9d4b1e8f3a6c5d2e1f0a9b8c7d6e5f.001.1"
_TEMPLATE_DAY = "2026-05-01T"


def write_cap_files(
    folder: Path, count: int, prefix: str = "scaled", area: tuple[str, str] | None = None
) -> list[str]:
    """``count`` distinct Tornado Warnings for Cuyahoga County (or ``area``: a SAME and a UGC
    code instead), sent now and expiring in an hour, one file each (written under a temporary
    name, then renamed, so the pollers never read half a file). Returns their identifiers."""
    text = TEMPLATE.read_text()
    if area is not None:
        text = text.replace(">039035<", f">{area[0]}<").replace(">OHC035<", f">{area[1]}<")
    now = datetime.now(UTC)
    identifiers = []
    for _ in range(count):
        identifier = f"urn:oid:2.49.0.1.840.0.{prefix}.{uuid.uuid4().hex}"
        # Times in the template are 14:32 to 15:15 local (-04:00): keep the day's offsets,
        # move them to today so the alert is active.
        body = text.replace(_TEMPLATE_ID, identifier)
        sent = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        expires = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        for old in ("14:32:00-04:00",):
            body = body.replace(_TEMPLATE_DAY + old, sent)
        for old in ("15:15:00-04:00",):
            body = body.replace(_TEMPLATE_DAY + old, expires)
        name = identifier.rsplit(".", 1)[-1]
        partial = folder / f".{name}.tmp"
        partial.write_text(body)
        partial.rename(folder / f"{name}.xml")
        identifiers.append(identifier)
    return identifiers


async def stream_envelopes(client: aioredis.Redis, spec: StreamSpec, namespace: str) -> list[Any]:
    """Every envelope still on a stream (ids in order)."""
    key = stream_key(spec, namespace)
    out: list[Any] = []
    last = "-"
    while True:
        rows: list[Any] = list(await client.xrange(key, min=last, count=2000) or [])
        if last != "-":
            rows = rows[1:]
        if not rows:
            return out
        for _entry_id, fields in rows:
            out.append(decode_entry(fields))
        last = str(rows[-1][0])


def once_each(values: list[str]) -> dict[str, int]:
    """The values seen more than once, with their counts (empty: each once)."""
    return {value: n for value, n in Counter(values).items() if n != 1}


@dataclass
class AlertWatcher:
    """A browser's ``/ws`` client on the ``alerts`` topic: it reconnects after any drop and
    resubscribes from the last entry id it saw, as the dashboard does. ``created`` lists the
    subject of every ``alert.created`` in the order received (duplicates would show)."""

    url: str
    token: str
    name: str = "ws"
    created: list[str] = field(default_factory=list)
    last_id: str = "0-0"
    connects: int = 0
    drops: int = 0
    servers: set[str] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"watch-{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                self.drops += 1
            if not self._stop.is_set():
                await asyncio.sleep(0.3)

    async def _session(self) -> None:
        async with connect(f"{self.url}?token={self.token}", open_timeout=10) as ws:
            self.connects += 1
            subscribe = {
                "type": "subscribe",
                "topics": [{"topic": "alerts", "last_id": self.last_id}],
            }
            await ws.send(orjson.dumps(subscribe).decode())
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "ping":
                    await ws.send(orjson.dumps({"type": "pong", "t": msg.get("t")}).decode())
                elif kind == "welcome":
                    self.servers.add(str(msg.get("server")))
                elif kind == "event" and msg.get("topic") == "alerts":
                    self.last_id = msg["id"]
                    envelope = msg["envelope"]
                    if envelope.get("type") == "alert.created":
                        self.created.append(str(envelope.get("subject")))
                elif kind == "resync_required":
                    raise AssertionError(f"{self.name}: the broadcaster could not replay: {msg}")
            with contextlib.suppress(ConnectionClosed):
                await ws.close()
