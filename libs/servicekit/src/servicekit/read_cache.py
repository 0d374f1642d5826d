"""A response cache for hot read routes that can never serve a page older than a bound.

Why: a dashboard polls the same few pages (the alert list, its counts, the detail it shows)
from every open browser. Building them costs database round trips, dependency solving and
query validation per request; serving the bytes already built costs a dictionary look-up.

Freshness, on every replica, without trusting the bus alone. The service gives a *watermark*:
a cheap query whose answer changes exactly when a write to its store commits (alerts-api:
the sum of a trigger-kept counter). Every entry remembers the watermark read BEFORE its page
was built. An entry is served only if a watermark check that STARTED less than ``max_lag_s``
ago returned that same value: then nothing was committed between the page's query and that
check, so the page is at most ``max_lag_s`` behind the newest commit (plus the time to send
it, as for any page from the database).

Checks are single-flight and on demand: a request that finds no recent enough check starts
one, and every request arriving while it runs waits for it. So an idle service polls nothing
and a busy one makes at most about one check per ``max_lag_s`` per process, whatever its
load; a check that fails (database away) serves nothing from memory. An event loop slowed by
load delays the answer, never the rule: freshness is judged by when the check started.

The service also calls ``invalidate()`` for every one of its own change events (``alert.*``)
that reaches the replica: pages drop at once, the next request re-checks. Entries expire after
``max_entry_age_s`` too: some pages depend on the clock, not only on the data (counts of the
last 24 hours).

Served through ``CachedReads``, a pure ASGI layer inside the service's edge middleware (so
security headers, CORS and metrics still apply): a hit is authorised with the same
``authorize`` as the route's dependency; anything the cache cannot answer (no entry, a token
that fails, a non-GET) goes to the application untouched, which answers as it always did.
Every 200 it passes through gets a strong ``ETag``; ``If-None-Match`` answers 304.

A miss can also be answered without the application: ``direct`` (optional) is a pure
function of the request for the routes whose miss is hot (alerts-api: the detail of any id,
where a dashboard or a client walking the store misses nearly every time). It is called only
for a caller ``authorize`` accepts, builds the same status, headers and body as the route
would (the service proves it in its tests), and returns None for anything it does not handle
the same way (a malformed id, another route), which then goes to the application. What it
answers is cached and tagged exactly like a page the application built; its errors (404,
503) are sent as they are, never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.auth.dependencies import authorize, bearer_token
from servicekit.auth.permissions import Permission

log = logging.getLogger(__name__)

Watermark = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole response built without the application (see ``CachedReads.direct``)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# Called with the scope of an authorised GET the cache could not answer; None: not mine.
Direct = Callable[[Scope], Awaitable[Answer | None]]


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes
    route: Any
    built_at: float
    mark: object


class ResponseCache:
    def __init__(
        self,
        watermark: Watermark | None = None,
        *,
        max_entries: int = 512,
        max_lag_s: float = 0.08,
        max_entry_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watermark = watermark
        self.max_entries = max_entries
        self.max_lag_s = max_lag_s
        self.max_entry_age_s = max_entry_age_s
        self.clock = clock
        self._mark: object = None
        self._mark_started = float("-inf")  # when the check that returned _mark started
        self._check: asyncio.Task[object] | None = None
        self._check_started = float("-inf")
        # Bumped by invalidate(): a check that started before an event is not adopted.
        self._epoch = 0
        self._entries: OrderedDict[tuple[bytes, ...], CachedResponse] = OrderedDict()
        self.hits = self.misses = self.checks = self.failed_checks = self.invalidations = 0

    def fresh_mark(self) -> object | None:
        """The watermark of a check started less than ``max_lag_s`` ago, else None."""
        if self._mark is not None and self.clock() - self._mark_started < self.max_lag_s:
            return self._mark
        return None

    async def current_mark(self) -> object | None:
        """A watermark no older than ``max_lag_s`` (checking if need be); None if unknown."""
        mark = self.fresh_mark()
        if mark is not None:
            return mark
        if self.watermark is None:
            return None
        check = self._check
        if check is None or self.clock() - self._check_started >= self.max_lag_s:
            self._check_started = self.clock()
            check = self._check = asyncio.ensure_future(
                self._run_check(self._check_started, self._epoch)
            )
        try:
            # shield: a client that goes away must not cancel the check the others wait for
            return await asyncio.shield(check)
        except Exception:
            return None

    async def _run_check(self, started: float, epoch: int) -> object:
        assert self.watermark is not None
        self.checks += 1
        try:
            mark = await self.watermark()
        except Exception as exc:
            self.failed_checks += 1
            log.warning("read cache: watermark check failed: %s: %s", type(exc).__name__, exc)
            raise
        if epoch == self._epoch and started > self._mark_started:
            if mark != self._mark:
                self._entries.clear()
            self._mark, self._mark_started = mark, started
        return mark

    def invalidate(self) -> None:
        """Drop every entry and make the next request check the watermark again."""
        self.invalidations += 1
        self._epoch += 1
        self._entries.clear()
        self._mark_started = self._check_started = float("-inf")

    def get(self, key: tuple[bytes, ...], mark: object) -> CachedResponse | None:
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.mark != mark
            or self.clock() - entry.built_at > self.max_entry_age_s
        ):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple[bytes, ...], entry: CachedResponse) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def etag_of(body: bytes) -> bytes:
    # Content-derived, so every replica gives the same page the same tag.
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == b"*" or candidate == etag:
            return True
    return False


_KEEP_ON_304 = (b"etag", b"vary", b"cache-control")


class CachedReads:
    """Pure ASGI: answers GETs of ``paths`` from a ``ResponseCache``; ETag/304 on every 200."""

    def __init__(
        self,
        app: ASGIApp,
        cache: ResponseCache,
        permission: Permission,
        prefixes: Sequence[str],
        direct: Direct | None = None,
    ) -> None:
        self.app = app
        self.cache = cache
        self.permission = permission
        self.prefixes = tuple(prefixes)
        self.direct = direct
        # Pages being built, by key: concurrent misses of one page wait for the first build
        # instead of all running it (every entry expiring at once made a p99 spike).
        self._building: dict[tuple[bytes, ...], tuple[object, asyncio.Future[Any]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        accept = if_none_match = b""
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value
            elif name == b"if-none-match":
                if_none_match = value
        key = (scope["path"].encode(), scope["query_string"], accept)
        mark = self.cache.fresh_mark()
        if mark is None:
            mark = await self.cache.current_mark()
        if mark is None:  # no watermark to trust: built afresh, never cached
            await self._through(scope, receive, send, None, None, if_none_match)
            return
        entry = self.cache.get(key, mark)
        if entry is None:
            building = self._building.get(key)
            if building is not None and building[0] == mark:
                entry = await asyncio.shield(building[1])
        if entry is not None and self._authorized(scope):
            scope["route"] = entry.route  # the edge middleware's metrics label
            await self._answer(
                send, entry.status, entry.headers, entry.body, entry.etag, if_none_match
            )
            return
        if key in self._building:  # someone else builds it (under another mark): no wait
            await self._through(scope, receive, send, key, mark, if_none_match)
            return
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._building[key] = (mark, done)
        built: CachedResponse | None = None
        try:
            built = await self._through(scope, receive, send, key, mark, if_none_match)
        finally:
            if self._building.get(key, (None, None))[1] is done:
                del self._building[key]
            done.set_result(built)  # None (an error, not cacheable): waiters go their own way

    def _authorized(self, scope: Scope) -> bool:
        request = Request(scope)
        try:
            authorize(request, bearer_token(request), self.permission)
        except HTTPException:
            return False  # the application gives the same refusal, with its own shape
        return True

    async def _through(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: tuple[bytes, ...] | None,
        mark: object,
        if_none_match: bytes,
    ) -> CachedResponse | None:
        """Build a miss (through ``direct`` when it takes the request, else the application);
        the entry stored for ``key``, if any."""
        if self.direct is not None and self._authorized(scope):
            answer = await self.direct(scope)
            if answer is not None and answer.status == 200:
                return await self._store(
                    scope, send, key, mark, answer.headers, answer.body, if_none_match
                )
            if answer is not None:  # an error (404, 503): sent as it is, never kept
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": answer.headers,
                    }
                )
                await send({"type": "http.response.body", "body": answer.body})
                return None
        start: Message | None = None
        chunks: list[bytes] = []
        stored: CachedResponse | None = None

        async def capture(message: Message) -> None:
            nonlocal start, stored
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            stored = await self._store(
                scope, send, key, mark, start.get("headers", []), b"".join(chunks), if_none_match
            )

        await self.app(scope, receive, capture)
        return stored

    async def _store(
        self,
        scope: Scope,
        send: Send,
        key: tuple[bytes, ...] | None,
        mark: object,
        raw_headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        if_none_match: bytes,
    ) -> CachedResponse | None:
        """Tag a built 200, keep it under ``key`` (unless it sets a cookie), send it."""
        etag = etag_of(body)
        headers = [(k, v) for k, v in raw_headers if k not in (b"etag", b"set-cookie")]
        cookies = [(k, v) for k, v in raw_headers if k == b"set-cookie"]
        stored: CachedResponse | None = None
        if key is not None and not cookies:
            route = scope.get("route")
            stored = CachedResponse(200, headers, body, etag, route, self.cache.clock(), mark)
            self.cache.put(key, stored)
        await self._answer(send, 200, headers + cookies, body, etag, if_none_match)
        return stored

    @staticmethod
    async def _answer(
        send: Send,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        etag: bytes,
        if_none_match: bytes,
    ) -> None:
        if if_none_match and _matches(if_none_match, etag):
            kept = [(k, v) for k, v in headers if k in _KEEP_ON_304]
            await send(
                {"type": "http.response.start", "status": 304, "headers": [*kept, (b"etag", etag)]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"etag", etag)],
            }
        )
        await send({"type": "http.response.body", "body": body})
