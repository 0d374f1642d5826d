"""GET /api/alerts/{id} and the plain GET /api/alerts page answered inside the pure-ASGI read
cache, without FastAPI.

Why: a miss of the read cache through FastAPI paid for dependency solving (the list route has
sixteen query parameters), the SQLAlchemy pool (a pre-ping round trip per checkout, overflow
connections opened and closed under load) and SQLAlchemy's statement handling: about 3x the
CPU of a same-design Flask app for the detail, 1.9x for the list. The detail of a random id
is a miss nearly every time (a client walking the store, a dashboard opening alerts one by
one), and every list page is a miss right after each new alert, on every replica. Here a miss
costs the token check the cache already does, one prepared statement on a small asyncpg pool
of its own (``repository.DETAIL_SQL``, ``repository.LIST_SQL``) and the same body builders
the routes use (``service.detail_body``, ``render.page_body``).

The FastAPI routes stay: they document the contract (OpenAPI) and answer everything this path
does not take: a filter other than ``status``, a spelling other than the canonical one
(``STATUS=ALL``, ``limit=050``, ``status=Active``), a malformed cursor (its 400), GeoJSON, a
malformed or out-of-range id (its 422), an unauthorised caller (its 401/403: ``CachedReads``
only calls in for callers ``authorize`` accepts). What this path answers is byte-for-byte the
route's answer: the same body, the same 404 body, the same headers, and during a database
outage the same 503 (``servicekit.errors``'s handler, with Retry-After).
``tests/test_fast_reads.py`` compares the two on every case.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.exceptions import AdminShutdownError, ConnectionDoesNotExistError, CrashShutdownError
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.engine import URL
from starlette.types import Scope

from alerts_api import repository as repo
from alerts_api.render import page_body, wants_geojson
from alerts_api.schemas import LIST_LIMIT, MAX_LIST_LIMIT, STATES_OF, StatusFilter
from alerts_api.service import detail_body, detail_not_found
from servicekit.db import CONNECT_TIMEOUT_S, database_unreachable
from servicekit.errors import database_error_handler, service_error_handler
from servicekit.read_cache import Answer

log = logging.getLogger(__name__)

# Only the canonical spelling of an id in the route's range (1..2**62) is taken here; any
# other spelling ("007", "+7", " 7", "abc", "0") goes to FastAPI, which decides as always.
_DETAIL_PATH = re.compile(r"/api/alerts/([1-9][0-9]{0,18})")
_MAX_ID = 2**62

# The list page taken here: only ``status`` (its canonical lower-case value), ``limit``
# (canonical, 1..500) and ``cursor`` (unpadded URL-safe base64, what the service issues), each
# at most once, with nothing to percent-decode. Any other query goes to FastAPI.
_LIST_PATH = "/api/alerts"
_LIST_PARAM = re.compile(rb"(status|limit|cursor)=([A-Za-z0-9_-]+)")
_LIMIT = re.compile(rb"[1-9][0-9]{0,2}")
_STATUS = {s.value.encode(): STATES_OF[s] for s in StatusFilter}

# A pooled connection the server dropped (restart, failover, idle cut): tried once more on a
# fresh connection, as SQLAlchemy's pre-ping would; a connect that fails is not retried.
_LOST = (ConnectionDoesNotExistError, AdminShutdownError, CrashShutdownError, ConnectionResetError)


def detail_response(body: bytes) -> Response:
    """The 200 of the detail route (the route and this path both send this)."""
    return Response(body, media_type="application/json")


def list_response(body: bytes) -> Response:
    """The 200 of the list route as JSON (the route and this path both send this)."""
    return Response(body, media_type="application/json", headers={"Vary": "Accept"})


def _answer(response: Response) -> Answer:
    return Answer(response.status_code, list(response.raw_headers), bytes(response.body))


def asyncpg_dsn(url: URL) -> str:
    """The SQLAlchemy URL of the service's engine, as a DSN asyncpg itself accepts."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class FastReads:
    """``CachedReads.direct`` for the detail and list routes (see the module docstring).

    Inert until ``start``: with no pool (SQLite, the path switched off, before the lifespan)
    every request goes to the application.
    """

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        # The FastAPI routes this path stands in for: put in the scope so the edge
        # middleware's metrics count its answers under the route's own label.
        self.detail_route: Any = None
        self.list_route: Any = None
        self.answered = self.lists = self.retried = 0

    async def start(self, dsn: str) -> None:
        # min_size=0: no connection at start (the service starts during a database outage
        # like every other part of it); connections open on first use and stay open.
        self.pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=self.pool_size,
            timeout=CONNECT_TIMEOUT_S,
            max_inactive_connection_lifetime=300.0,
        )

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()

    async def __call__(self, scope: Scope) -> Answer | None:
        pool = self.pool
        if pool is None:
            return None
        path = scope["path"]
        if path == _LIST_PATH:
            return await self._list(pool, scope)
        match = _DETAIL_PATH.fullmatch(path)
        if match is None:
            return None
        alert_id = int(match.group(1))
        if alert_id > _MAX_ID:
            return None
        return await self._detail(pool, scope, alert_id)

    async def _detail(self, pool: asyncpg.Pool, scope: Scope, alert_id: int) -> Answer:
        if self.detail_route is not None:
            scope["route"] = self.detail_route
        self.answered += 1  # taken: from here on this path gives the answer, whatever it is
        try:
            found = await self._run(pool, repo.fetch_detail, alert_id)
        except Exception as exc:
            return await self._failed(scope, exc)
        if found is None:
            return _answer(await service_error_handler(Request(scope), detail_not_found(alert_id)))
        return _answer(detail_response(detail_body(found)))

    async def _list(self, pool: asyncpg.Pool, scope: Scope) -> Answer | None:
        query = _list_query(scope)
        if query is None:
            return None
        states, cursor, limit = query
        if self.list_route is not None:
            scope["route"] = self.list_route
        self.answered += 1
        self.lists += 1
        try:
            rows = await self._run(pool, repo.fetch_list_page, states, cursor, limit + 1)
        except Exception as exc:
            return await self._failed(scope, exc)
        page, next_cursor = repo.split_page(rows, limit)
        return _answer(list_response(page_body([r[2] for r in page], next_cursor)))

    async def _failed(self, scope: Scope, exc: Exception) -> Answer:
        if not database_unreachable(exc):
            raise exc  # as through the route: an error of ours is a 500, not an outage
        return _answer(await database_error_handler(Request(scope), exc))

    async def _run(self, pool: asyncpg.Pool, fetch: Any, *args: Any) -> Any:
        for attempt in (1, 2):
            try:
                # The pool's wait is bounded like SQLAlchemy's (pool_timeout): a TimeoutError,
                # which database_unreachable counts as an outage (503), never a hang.
                async with pool.acquire(timeout=CONNECT_TIMEOUT_S * 2) as conn:
                    return await fetch(conn, *args)
            except _LOST:
                if attempt == 2:
                    raise
                self.retried += 1
        raise AssertionError("unreachable")  # pragma: no cover


ListQuery = tuple[tuple[str, ...] | None, tuple[datetime, int] | None, int]


def _list_query(scope: Scope) -> ListQuery | None:
    """(states, cursor, limit) of a list request this path takes (see ``_LIST_PARAM``), or None
    for FastAPI: another parameter or spelling, a repeated one, a cursor the route refuses
    (its 400), or an Accept that asks for GeoJSON."""
    raw: bytes = scope.get("query_string", b"")
    seen: dict[bytes, bytes] = {}
    for part in raw.split(b"&") if raw else ():
        param = _LIST_PARAM.fullmatch(part)
        if param is None or param.group(1) in seen:
            return None
        seen[param.group(1)] = param.group(2)
    states: tuple[str, ...] | None = None
    if b"status" in seen:
        if seen[b"status"] not in _STATUS:
            return None
        states = _STATUS[seen[b"status"]]
    limit = LIST_LIMIT
    if b"limit" in seen:
        if _LIMIT.fullmatch(seen[b"limit"]) is None or int(seen[b"limit"]) > MAX_LIST_LIMIT:
            return None
        limit = int(seen[b"limit"])
    cursor = None
    if b"cursor" in seen:
        try:
            cursor = repo.decode_cursor(seen[b"cursor"].decode("ascii"))
        except ValueError:
            return None
    # The first Accept header, as the route reads it (Starlette's ``headers.get``).
    accept = next((v for k, v in scope.get("headers", ()) if k == b"accept"), b"")
    if wants_geojson(accept.decode("latin-1")):
        return None
    return states, cursor, limit
