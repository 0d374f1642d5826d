"""The read cache: two replicas on one database and bus never serve an old page for long.

The 100 ms freshness rule is proven by mechanism, not by timing: a page is served from memory
only while the last watermark poll (which sees every commit) started less than
``read_cache_max_lag_s`` ago, and a write must show on the OTHER replica both when its
``alert.*`` event arrives and when no event is published at all (a missed event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from alerts_api.service import AlertService
from alerts_api.settings import AlertsApiSettings
from eas_testkit.factories import ingested, make_alert
from servicekit.auth.permissions import Role
from servicekit.db import make_engine
from servicekit.read_cache import CachedResponse, ResponseCache, etag_of

BOUND_S = 10.0  # generous: the machine is shared; the rule itself is tested by mechanism


@contextlib.asynccontextmanager
async def _replica(settings: AlertsApiSettings, name: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"instance": name, "run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


@pytest.fixture
async def replicas(
    settings: AlertsApiSettings,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with _replica(settings, "r1") as one, _replica(settings, "r2") as two:
        yield one, two


def _cache(client: httpx.AsyncClient) -> ResponseCache:
    cache: ResponseCache = client.app.state.read_cache  # type: ignore[attr-defined]
    return cache


async def _ids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    resp = await client.get("/api/alerts", params={"limit": 50}, headers=headers)
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


async def _until_listed(client: httpx.AsyncClient, headers: dict[str, str], alert_id: int) -> None:
    async with asyncio.timeout(BOUND_S):
        while alert_id not in await _ids(client, headers):
            await asyncio.sleep(0.01)


async def _warm(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    """Read until a page came from memory, so the next read would be a hit if nothing moved."""
    cache = _cache(client)
    async with asyncio.timeout(BOUND_S):
        while True:
            before = cache.hits
            ids = await _ids(client, headers)
            if cache.hits > before:
                return ids
            await asyncio.sleep(0.01)


_MANUAL = {
    "event": "Civil Emergency Message",
    "same_event": "CEM",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "area_desc": "Cuyahoga County, OH",
    "same_codes": ["039035"],
    "duration_minutes": 60,
}


async def test_write_through_one_replica_shows_on_the_other(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], token: Callable[..., str]
) -> None:
    one, two = replicas
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    operator = {"Authorization": f"Bearer {token(Role.OPERATOR)}"}
    assert await _warm(two, viewer) == []
    created = await one.post("/api/alerts", json=_MANUAL, headers=operator)
    assert created.status_code == 201, created.text
    await _until_listed(two, viewer, created.json()["id"])
    # ...and the detail and the counts follow as well.
    detail = await two.get(f"/api/alerts/{created.json()['id']}", headers=viewer)
    assert detail.status_code == 200
    stats = await two.get("/api/alerts/stats", headers=viewer)
    assert stats.json()["total"] == 1


async def test_missed_event_cannot_keep_an_old_page(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    settings: AlertsApiSettings,
    token: Callable[..., str],
) -> None:
    """A write that publishes nothing (no bus): only the database watermark can notice it."""
    _, two = replicas
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    assert await _warm(two, viewer) == []
    invalidations = _cache(two).invalidations
    engine = make_engine(settings.database_url)
    try:
        silent = AlertService(engine, None, "test/silent", ["039035"], [])
        result = await silent.ingest(ingested(make_alert(identifier="silent-1")))
        assert result.alert_id is not None
    finally:
        await engine.dispose()
    await _until_listed(two, viewer, result.alert_id)
    # No event dropped the page: the watermark check alone brought the new one.
    assert _cache(two).invalidations == invalidations


async def test_etag_and_304_follow_the_content(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], token: Callable[..., str]
) -> None:
    one, two = replicas
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    operator = {"Authorization": f"Bearer {token(Role.OPERATOR)}"}
    first = await one.get("/api/alerts", headers=viewer)
    etag = first.headers["etag"]
    # Content-derived: the other replica gives the same page the same tag.
    assert (await two.get("/api/alerts", headers=viewer)).headers["etag"] == etag
    again = await two.get("/api/alerts", headers={**viewer, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and "x-content-type-options" in again.headers
    created = await one.post("/api/alerts", json=_MANUAL, headers=operator)
    assert created.status_code == 201
    async with asyncio.timeout(BOUND_S):
        while (
            resp := await two.get("/api/alerts", headers={**viewer, "If-None-Match": etag})
        ).status_code == 304:
            await asyncio.sleep(0.01)
    assert resp.status_code == 200 and resp.headers["etag"] != etag


async def test_a_hit_still_checks_the_token(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], token: Callable[..., str]
) -> None:
    one, _ = replicas
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    await _warm(one, viewer)
    missing = await one.get("/api/alerts", params={"limit": 50})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    forged = await one.get(
        "/api/alerts", params={"limit": 50}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert forged.status_code == 401
    assert "invalid token" in forged.json()["detail"]


async def test_errors_are_not_cached(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], token: Callable[..., str]
) -> None:
    one, _ = replicas
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    for _ in range(2):
        resp = await one.get("/api/alerts", params={"limit": 0}, headers=viewer)
        assert resp.status_code == 422 and "etag" not in resp.headers
    assert (await one.get("/api/alerts/999", headers=viewer)).status_code == 404


# ---- the cache's rules, on a clock the test moves ---------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Store:
    """A watermark the test moves, counting the checks made."""

    def __init__(self) -> None:
        self.mark = 0
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> object:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("database away")
        return self.mark


KEY = (b"/api/alerts", b"", b"")


def _entry(clock: _Clock, mark: object, body: bytes = b"{}") -> CachedResponse:
    return CachedResponse(200, [], body, etag_of(body), None, clock(), mark)


async def test_an_entry_is_served_only_under_a_recent_unchanged_watermark() -> None:
    clock, store = _Clock(), _Store()
    cache = ResponseCache(store, max_lag_s=0.08, clock=clock)
    mark = await cache.current_mark()
    cache.put(KEY, _entry(clock, mark))
    assert cache.get(KEY, await cache.current_mark()) is not None
    assert store.calls == 1  # within max_lag: no second check
    clock.now += 0.081
    store.mark += 1  # a commit: the next check sees a new watermark
    assert cache.get(KEY, await cache.current_mark()) is None
    assert store.calls == 2


async def test_a_failing_check_serves_nothing() -> None:
    clock, store = _Clock(), _Store()
    cache = ResponseCache(store, clock=clock)
    cache.put(KEY, _entry(clock, await cache.current_mark()))
    clock.now += 0.1
    store.fail = True
    assert await cache.current_mark() is None
    assert cache.failed_checks == 1


async def test_checks_are_single_flight() -> None:
    clock, store = _Clock(), _Store()
    cache = ResponseCache(store, clock=clock)
    store.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.current_mark()) for _ in range(50)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*waiting) == [0] * 50
    assert store.calls == 1


async def test_an_event_forces_a_new_check() -> None:
    clock, store = _Clock(), _Store()
    cache = ResponseCache(store, clock=clock)
    cache.put(KEY, _entry(clock, await cache.current_mark()))
    store.mark += 1
    cache.invalidate()
    assert cache.fresh_mark() is None
    assert cache.get(KEY, await cache.current_mark()) is None
    assert store.calls == 2


async def test_entries_expire_for_clock_dependent_pages() -> None:
    clock, store = _Clock(), _Store()
    cache = ResponseCache(store, max_entry_age_s=1.0, clock=clock)
    cache.put(KEY, _entry(clock, await cache.current_mark()))
    clock.now += 0.5
    assert cache.get(KEY, await cache.current_mark()) is not None
    clock.now += 0.6
    assert cache.get(KEY, await cache.current_mark()) is None


async def test_without_a_watermark_nothing_is_cached() -> None:
    cache = ResponseCache(None)
    assert await cache.current_mark() is None


async def test_concurrent_misses_of_one_page_build_it_once() -> None:
    from types import SimpleNamespace

    from servicekit.auth.permissions import Permission
    from servicekit.read_cache import CachedReads

    calls = 0
    gate = asyncio.Event()

    async def app(scope: dict, receive: object, send: Callable) -> None:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"items":[]}'})

    store = _Store()
    layer = CachedReads(app, ResponseCache(store), Permission.ALERTS_READ, ["/api/alerts"])
    owner = SimpleNamespace(state=SimpleNamespace(anonymous_read=True, verifier=None))
    bodies: list[bytes] = []

    async def one() -> None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/alerts",
            "query_string": b"",
            "headers": [],
            "app": owner,
        }

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.body":
                bodies.append(message["body"])

        await layer(scope, None, send)  # type: ignore[arg-type]

    requests = [asyncio.ensure_future(one()) for _ in range(20)]
    async with asyncio.timeout(BOUND_S):
        while calls == 0:
            await asyncio.sleep(0)
    for _ in range(50):  # let the other nineteen reach the page being built
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*requests)
    assert calls == 1 and bodies == [b'{"items":[]}'] * 20
