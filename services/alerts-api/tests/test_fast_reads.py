"""The fast reads (alerts_api.fast_reads) give exactly the FastAPI routes' answers.

Two apps on one database: ``fast`` (the default: misses of GET /api/alerts/{id} and of the
plain GET /api/alerts page answered inside the read cache layer) and ``route``
(``fast_reads=False``: every request through FastAPI). The read cache is off on both so
every request is built, never served from memory. Each case compares status, every header
and the body bytes, and checks through the fast path's counters which of the two answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from alerts_api.fast_reads import FastReads
from alerts_api.migrate import upgrade_url
from alerts_api.settings import AlertsApiSettings
from eas_schemas.cap import CapMsgType
from eas_testkit.factories import ingested, make_alert
from eas_testkit.servers import LocalPostgres
from servicekit.auth.permissions import Role
from servicekit.errors import DATABASE_UNAVAILABLE

Pair = tuple[httpx.AsyncClient, httpx.AsyncClient]


@contextlib.asynccontextmanager
async def _app(settings: AlertsApiSettings, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"run_consumer": False, **changes}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


@contextlib.asynccontextmanager
async def _pair(settings: AlertsApiSettings) -> AsyncIterator[Pair]:
    base = settings.model_copy(update={"read_cache": False})
    async with (
        _app(base, instance="fast") as fast,
        _app(base, instance="route", fast_reads=False) as route,
    ):
        yield fast, route


@pytest.fixture
async def pair(settings: AlertsApiSettings) -> AsyncIterator[Pair]:
    async with _pair(settings) as both:
        yield both


def _fast(client: httpx.AsyncClient) -> FastReads:
    path: FastReads = client.app.state.fast_reads  # type: ignore[attr-defined]
    return path


async def _same(pair: Pair, path: str, headers: dict[str, str]) -> httpx.Response:
    """GET ``path`` on both apps; assert identical answers; the fast app's answer."""
    fast, route = pair
    a = await fast.get(path, headers=headers)
    b = await route.get(path, headers=headers)
    assert (a.status_code, a.headers.raw, a.content) == (b.status_code, b.headers.raw, b.content)
    return a


async def _chain(client: httpx.AsyncClient) -> list[int]:
    """An alert, its Update and a Cancel of the Update: references, referrers, history."""
    service = client.app.state.alert_service  # type: ignore[attr-defined]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    square = [(41.0, -82.0), (41.0, -81.0), (42.0, -81.0), (42.0, -82.0), (41.0, -82.0)]
    first = make_alert(sent=t0, polygon=square)
    update = make_alert(
        sent=t0 + timedelta(minutes=1), msg_type=CapMsgType.UPDATE, references=[first]
    )
    cancel = make_alert(
        sent=t0 + timedelta(minutes=2), msg_type=CapMsgType.CANCEL, references=[update]
    )
    ids = []
    for alert in (first, update, cancel):
        result = await service.ingest(ingested(alert))
        assert result.alert_id is not None
        ids.append(int(result.alert_id))
    return ids


async def test_a_stored_alert_is_the_same_document_through_either_path(
    pair: Pair, token: Callable[..., str]
) -> None:
    fast, _ = pair
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    ids = await _chain(fast)
    before = _fast(fast).answered
    for alert_id in ids:
        answer = await _same(pair, f"/api/alerts/{alert_id}", viewer)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert "etag" in answer.headers and "x-content-type-options" in answer.headers
    assert _fast(fast).answered == before + len(ids), "the fast app answered by itself"
    assert _fast(pair[1]).answered == 0, "the route app never used the fast path"
    # The middle one has a reference, a referrer and a three-step history: all three parts.
    middle = (await fast.get(f"/api/alerts/{ids[1]}", headers=viewer)).json()
    assert [r["alert_id"] for r in middle["references"]] == [ids[0]]
    assert [r["id"] for r in middle["referenced_by"]] == [ids[2]]
    assert [h["to_state"] for h in middle["history"]] == ["active", "cancelled"]


async def test_unknown_id_is_the_same_404(pair: Pair, token: Callable[..., str]) -> None:
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    before = _fast(pair[0]).answered
    for alert_id in (1, 987654321, 2**62):
        answer = await _same(pair, f"/api/alerts/{alert_id}", viewer)
        assert answer.status_code == 404
        assert answer.json() == {"detail": f"no alert with id {alert_id}"}
        assert "etag" not in answer.headers
    assert _fast(pair[0]).answered == before + 3


async def test_malformed_ids_go_to_fastapi_and_get_its_422(
    pair: Pair, token: Callable[..., str]
) -> None:
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    (alert_id, *_) = await _chain(pair[0])
    before = _fast(pair[0]).answered
    for spelling in ("abc", "0", "-3", str(2**62 + 1), "9" * 40, "1.5"):
        answer = await _same(pair, f"/api/alerts/{spelling}", viewer)
        assert answer.status_code == 422, spelling
        assert answer.json()["fields"] == ["alert_id"], answer.json()
    # A spelling FastAPI accepts but this path does not take: still the route's answer.
    answer = await _same(pair, f"/api/alerts/00{alert_id}", viewer)
    assert answer.status_code == 200 and answer.json()["alert"]["id"] == alert_id
    assert _fast(pair[0]).answered == before, "none of these went through the fast path"


async def test_refused_callers_get_the_same_401(pair: Pair, token: Callable[..., str]) -> None:
    (alert_id, *_) = await _chain(pair[0])
    path = f"/api/alerts/{alert_id}"
    before = _fast(pair[0]).answered
    cases = {
        "no token": {},
        "forged": {"Authorization": "Bearer x.y.z"},
        "expired": {"Authorization": f"Bearer {token(Role.VIEWER, ttl_s=1, now=1.0)}"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "bad cookie": {"Cookie": "eas_access=not-a-token"},
    }
    for why, headers in cases.items():
        answer = await _same(pair, path, headers)
        assert answer.status_code == 401, why
        assert answer.headers["www-authenticate"] == "Bearer", why
    assert _fast(pair[0]).answered == before
    # A cookie session reads like a Bearer token (GET needs no CSRF echo).
    cookie = {"Cookie": f"eas_access={token(Role.VIEWER)}"}
    assert (await _same(pair, path, cookie)).status_code == 200
    assert _fast(pair[0]).answered == before + 1


async def _many(client: httpx.AsyncClient, n: int) -> list[int]:
    """n alerts, two of them sent at the same second (the cursor's tie on id), one expired."""
    service = client.app.state.alert_service  # type: ignore[attr-defined]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ids = []
    for k in range(n):
        sent = t0 + timedelta(minutes=min(k, n - 2))  # the last two share their sent time
        alert = make_alert(sent=sent, expires_in=timedelta(minutes=30 if k == 0 else 600))
        result = await service.ingest(ingested(alert))
        ids.append(int(result.alert_id))
    await service.expire_due()
    return ids


async def test_list_pages_are_the_same_through_either_path(
    pair: Pair, token: Callable[..., str]
) -> None:
    fast, route = pair
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    ids = await _many(fast, 7)
    before = _fast(fast).lists
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:  # every page of three, following the cursors the fast path hands out
        path = "/api/alerts?limit=3" + (f"&cursor={cursor}" if cursor else "")
        answer = await _same(pair, path, viewer)
        assert answer.status_code == 200 and answer.headers["vary"] == "Accept"
        body = answer.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[::-1][0:3], ids[::-1][3:6], ids[::-1][6:]]
    cases = [
        "/api/alerts",
        "/api/alerts?status=all&limit=50",
        "/api/alerts?status=active",
        "/api/alerts?status=expired&limit=500",
        "/api/alerts?status=inactive",
        "/api/alerts?status=cancelled",
        "/api/alerts?limit=1&status=active",
        f"/api/alerts?limit=2&status=active&cursor={pages[0][0]}",  # an id, not a cursor
    ]
    for path in cases[:-1]:
        assert (await _same(pair, path, viewer)).status_code == 200, path
    assert (await _same(pair, cases[-1], viewer)).status_code == 400
    assert _fast(fast).lists == before + len(pages) + len(cases) - 1
    assert _fast(route).lists == 0
    expired = (await fast.get("/api/alerts?status=expired", headers=viewer)).json()["items"]
    assert [item["id"] for item in expired] == [ids[0]]


async def test_list_queries_this_path_does_not_take_go_to_fastapi(
    pair: Pair, token: Callable[..., str]
) -> None:
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    await _many(pair[0], 3)
    before = _fast(pair[0]).answered
    answers = {
        "/api/alerts?status=ALL": 200,  # any letter case: the route's any_case
        "/api/alerts?status=Active": 200,
        "/api/alerts?limit=050": 200,
        "/api/alerts?limit=2&limit=3": 200,  # repeated: the route takes the last
        "/api/alerts?status=all&severity=severe": 200,
        "/api/alerts?status=": 422,
        "/api/alerts?status=bogus": 422,
        "/api/alerts?limit=0": 422,
        "/api/alerts?limit=501": 422,
        "/api/alerts?limit=1000": 422,
        "/api/alerts?format=geojson": 200,
        "/api/alerts?status%3Dall": 200,  # one odd unknown parameter, ignored by the route
        "/api/alerts?cursor=%3D": 400,
    }
    for path, expected in answers.items():
        assert (await _same(pair, path, viewer)).status_code == expected, path
    geo = {**viewer, "Accept": "application/geo+json"}
    answer = await _same(pair, "/api/alerts", geo)
    assert answer.json()["type"] == "FeatureCollection"
    # JSON preferred over GeoJSON, or a wildcard: JSON, and this path takes it.
    taken = _fast(pair[0]).answered
    assert _fast(pair[0]).answered == before, "none of these went through the fast path"
    for accept in ("application/json, application/geo+json;q=0.5", "*/*", "text/html"):
        answer = await _same(pair, "/api/alerts", {**viewer, "Accept": accept})
        assert answer.json()["items"], accept
    assert _fast(pair[0]).answered == taken + 3


async def test_database_outage_is_the_same_503_then_recovers(
    settings: AlertsApiSettings, token: Callable[..., str]
) -> None:
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    cluster = LocalPostgres()
    try:
        url = cluster.start()
        await upgrade_url(url)
        async with _pair(settings.model_copy(update={"database_url": url})) as pair:
            (alert_id, *_) = await _chain(pair[0])
            path = f"/api/alerts/{alert_id}"
            ok = await _same(pair, path, viewer)  # both pools now hold an open connection
            assert ok.status_code == 200
            cluster.stop_fast()
            taken = _fast(pair[0]).answered
            down = await _same(pair, path, viewer)
            assert down.status_code == 503, down.text
            assert down.json() == {"detail": DATABASE_UNAVAILABLE}
            assert down.headers["retry-after"] == "5"
            assert (await _same(pair, "/api/alerts/424242", viewer)).status_code == 503
            listed = await _same(pair, "/api/alerts?status=active", viewer)
            assert listed.status_code == 503 and listed.json() == down.json()
            assert _fast(pair[0]).answered == taken + 3, "the fast path gave the three 503s"
            cluster.start()
            # Back: the fast path's dropped connection is replaced, not answered as an outage.
            back = await _same(pair, path, viewer)
            assert back.status_code == 200 and back.content == ok.content
    finally:
        cluster.stop()


async def test_with_the_cache_on_an_outage_is_a_503_on_every_read_route(
    settings: AlertsApiSettings, token: Callable[..., str]
) -> None:
    """Pages in memory are not served once the watermark check fails: every read route
    answers the outage's 503 (the fault run saw 404s during an outage)."""
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    cluster = LocalPostgres()
    try:
        url = cluster.start()
        await upgrade_url(url)
        async with _app(settings.model_copy(update={"database_url": url})) as client:
            (alert_id, *_) = await _chain(client)
            paths = ["/api/alerts?limit=5", "/api/alerts/stats", f"/api/alerts/{alert_id}"]
            cache = client.app.state.read_cache  # type: ignore[attr-defined]
            for path in paths:  # read until one came from memory (events may drop pages)
                async with asyncio.timeout(10):
                    while True:
                        hits = cache.hits
                        assert (await client.get(path, headers=viewer)).status_code == 200
                        if cache.hits > hits:
                            break
            cluster.stop_fast()
            for path in paths:
                down = await client.get(path, headers=viewer)
                assert down.status_code == 503, (path, down.text)
                assert down.json() == {"detail": DATABASE_UNAVAILABLE}, path
            cluster.start()
            for path in paths:
                assert (await client.get(path, headers=viewer)).status_code == 200, path
    finally:
        cluster.stop()
