"""GET /api/alerts/{id} answered inside the pure-ASGI read cache, without FastAPI.

Why: the detail of a random id is a cache miss nearly every time (a client walking the
store, a dashboard opening alerts one by one). Through FastAPI such a miss paid for
dependency solving, the SQLAlchemy pool (a pre-ping round trip per checkout, overflow
connections opened and closed under load) and four queries: about 3x the CPU of a
same-design Flask app. Here a miss costs the token check the cache already does, one
prepared statement on a small asyncpg pool of its own (``repository.DETAIL_SQL``: the
stored documents plus references, referrers and history as arrays of records) and the
same ``service.detail_body`` the route uses.

The FastAPI route stays: it documents the contract (OpenAPI) and answers everything this
path does not take (a malformed or out-of-range id: its 422; an unauthorised caller: its
401/403 — ``CachedReads`` only calls in for callers ``authorize`` accepts). What this path
answers is byte-for-byte the route's answer: the same body, the same 404 body, the same
headers, and during a database outage the same 503 (``servicekit.errors``'s handler, with
Retry-After). ``tests/test_detail_fast_path.py`` compares the two on every case.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from asyncpg.exceptions import AdminShutdownError, ConnectionDoesNotExistError, CrashShutdownError
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.engine import URL
from starlette.types import Scope

from alerts_api import repository as repo
from alerts_api.service import detail_body, detail_not_found
from servicekit.db import CONNECT_TIMEOUT_S, database_unreachable
from servicekit.errors import database_error_handler, service_error_handler
from servicekit.read_cache import Answer

log = logging.getLogger(__name__)

# Only the canonical spelling of an id in the route's range (1..2**62) is taken here; any
# other spelling ("007", "+7", " 7", "abc", "0") goes to FastAPI, which decides as always.
_DETAIL_PATH = re.compile(r"/api/alerts/([1-9][0-9]{0,18})")
_MAX_ID = 2**62

# A pooled connection the server dropped (restart, failover, idle cut): tried once more on a
# fresh connection, as SQLAlchemy's pre-ping would; a connect that fails is not retried.
_LOST = (ConnectionDoesNotExistError, AdminShutdownError, CrashShutdownError, ConnectionResetError)


def detail_response(body: bytes) -> Response:
    """The 200 of the detail route (the route and this path both send this)."""
    return Response(body, media_type="application/json")


def _answer(response: Response) -> Answer:
    return Answer(response.status_code, list(response.raw_headers), bytes(response.body))


def asyncpg_dsn(url: URL) -> str:
    """The SQLAlchemy URL of the service's engine, as a DSN asyncpg itself accepts."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class DetailFastPath:
    """``CachedReads.direct`` for the detail route (see the module docstring).

    Inert until ``start``: with no pool (SQLite, the path switched off, before the lifespan)
    every request goes to the application.
    """

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.pool: asyncpg.Pool | None = None
        # The FastAPI route this path stands in for: put in the scope so the edge
        # middleware's metrics count its answers under the route's own label.
        self.route: Any = None
        self.answered = self.retried = 0

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
        match = _DETAIL_PATH.fullmatch(scope["path"])
        if pool is None or match is None:
            return None
        alert_id = int(match.group(1))
        if alert_id > _MAX_ID:
            return None
        if self.route is not None:
            scope["route"] = self.route
        self.answered += 1  # taken: from here on this path gives the answer, whatever it is
        try:
            found = await self._fetch(pool, alert_id)
        except Exception as exc:
            if not database_unreachable(exc):
                raise  # as through the route: an error of ours is a 500, not an outage
            return _answer(await database_error_handler(Request(scope), exc))
        if found is None:
            return _answer(await service_error_handler(Request(scope), detail_not_found(alert_id)))
        return _answer(detail_response(detail_body(found)))

    async def _fetch(self, pool: asyncpg.Pool, alert_id: int) -> repo.DetailRow | None:
        for attempt in (1, 2):
            try:
                # The pool's wait is bounded like SQLAlchemy's (pool_timeout): a TimeoutError,
                # which database_unreachable counts as an outage (503), never a hang.
                async with pool.acquire(timeout=CONNECT_TIMEOUT_S * 2) as conn:
                    return await repo.fetch_detail(conn, alert_id)
            except _LOST:
                if attempt == 2:
                    raise
                self.retried += 1
        raise AssertionError("unreachable")  # pragma: no cover
