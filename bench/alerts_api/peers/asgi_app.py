"""Bare-ASGI peer: one async callable, no framework, an asyncpg pool per uvicorn worker.

    PEER_DATABASE_URL=postgresql://... PEER_PUBLIC_KEY_FILE=... \
      uvicorn --app-dir bench/alerts_api --workers 2 peers.asgi_app:app

asyncpg prepares (and caches) every statement it runs, so the hot reads are prepared
statements; a pool connection outside a transaction is autocommit (one round trip a read).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

import asyncpg

from peers.common import (
    BY_SINCE_SQL,
    BY_SQL,
    COUNT_SINCE_SQL,
    COUNT_SQL,
    COUNT_STATE_SQL,
    DETAIL_SQL,
    HISTORY_SQL,
    LATER_SQL,
    LIST_SQL,
    REFS_SQL,
    STAT_COLUMNS,
    STATES,
    TokenCheck,
    detail_body,
    list_body,
    stats_windows,
)

_state: dict[str, Any] = {}
_JSON = [(b"content-type", b"application/json")]


async def _send(send: Any, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                url = os.environ["PEER_DATABASE_URL"].replace(
                    "postgresql+psycopg://", "postgresql://"
                )
                _state["pool"] = await asyncpg.create_pool(url, min_size=4, max_size=16)
                _state["tokens"] = TokenCheck()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    if path == "/healthz":
        await _send(send, 200, b'{"status":"ok"}')
        return
    if scope["method"] != "GET" or not path.startswith("/api/alerts"):
        await _send(send, 404, _error("not found"))
        return
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
    status, reason = _state["tokens"].check(authorization)
    if status:
        await _send(send, status, _error(reason))
        return
    pool: asyncpg.Pool = _state["pool"]
    if path == "/api/alerts":
        args = parse_qs(scope["query_string"].decode("latin-1"))
        states_name = args.get("status", ["all"])[-1]
        if states_name not in STATES:
            await _send(send, 422, _error("status: not a state"))
            return
        try:
            limit = int(args.get("limit", ["50"])[-1])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            await _send(send, 422, _error("limit: 1-500"))
            return
        states = STATES[states_name]
        async with pool.acquire() as conn:
            rows = await conn.fetch(LIST_SQL, list(states) if states else None, limit + 1)
        await _send(send, 200, list_body(rows, limit))
        return
    if path == "/api/alerts/stats":
        day, week = stats_windows()
        async with pool.acquire() as conn:
            out: dict[str, Any] = {
                "total": await conn.fetchval(COUNT_SQL),
                "active": await conn.fetchval(COUNT_STATE_SQL, "active"),
                "last_24h": await conn.fetchval(COUNT_SINCE_SQL, day),
                "last_7d": await conn.fetchval(COUNT_SINCE_SQL, week),
            }
            for col in STAT_COLUMNS:
                rows = await conn.fetch(BY_SQL.format(col=col))
                out[f"by_{col}"] = {str(k): int(v) for k, v in rows}
            for col in STAT_COLUMNS[:3]:
                rows = await conn.fetch(BY_SINCE_SQL.format(col=col), week)
                out[f"by_{col}_7d"] = {str(k): int(v) for k, v in rows}
        await _send(send, 200, json.dumps(out).encode())
        return
    try:
        alert_id = int(path.rsplit("/", 1)[1])
    except ValueError:
        await _send(send, 404, _error("not found"))
        return
    async with pool.acquire() as conn:
        row = await conn.fetchrow(DETAIL_SQL, alert_id)
        if row is None:
            await _send(send, 404, _error(f"no alert with id {alert_id}"))
            return
        refs = await conn.fetch(REFS_SQL, alert_id)
        later = await conn.fetch(LATER_SQL, alert_id)
        hist = await conn.fetch(HISTORY_SQL, alert_id)
    await _send(send, 200, detail_body(row, refs, later, hist))
