"""GET /api/alerts: filters, ordering, cursor paging, GeoJSON and input errors."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapMsgType,
    CapSeverity,
    CapStatus,
    CapUrgency,
    Circle,
)
from eas_schemas.events import AlertIngested, FeedKind
from eas_testkit.factories import ingested, make_alert
from servicekit.auth.permissions import Role

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def client(settings, token) -> AsyncIterator[httpx.AsyncClient]:
    """The conftest client without the ingest consumer: these tests store through the service,
    and the consumer's blocking read only slows shutdown."""
    app = create_app(settings.model_copy(update={"run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            http.token = token(Role.VIEWER)  # type: ignore[attr-defined]
            yield http


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


async def _store(client: httpx.AsyncClient, alert: CapAlert, kind: FeedKind | None = None) -> int:
    service = client.app.state.alert_service  # type: ignore[attr-defined]
    entry = ingested(alert)
    if kind is not None:
        entry = AlertIngested(
            feed=f"{kind.value}-feed", feed_kind=kind, received_at=NOW, alert=alert
        )
    result = await service.ingest(entry)
    assert result.alert_id is not None
    return int(result.alert_id)


async def _list(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/alerts", params=params, headers=_auth(client))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[int]:
    return [item["id"] for item in (await _list(client, **params))["items"]]


async def _error(client: httpx.AsyncClient, code: int, **params: Any) -> Any:
    response = await client.get("/api/alerts", params=params, headers=_auth(client))
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["detail"]


def _loc_names(detail: Any) -> set[str]:
    assert isinstance(detail, list) and detail, detail
    return {str(part) for err in detail for part in err["loc"]}


# ---- filters ------------------------------------------------------------------------------


async def test_empty_store_lists_nothing(client):
    assert await _list(client) == {"items": [], "next_cursor": None}


async def test_status_filters(client, settings):
    active = await _store(client, make_alert(sent=NOW - timedelta(minutes=30)))
    expired = await _store(
        client, make_alert(sent=NOW - timedelta(hours=3), expires_in=timedelta(hours=1))
    )
    original = make_alert(sent=NOW - timedelta(minutes=20))
    updated = await _store(client, original)
    update = make_alert(
        sent=NOW - timedelta(minutes=10), msg_type=CapMsgType.UPDATE, references=[original]
    )
    update_id = await _store(client, update)
    doomed = make_alert(sent=NOW - timedelta(minutes=9))
    cancelled = await _store(client, doomed)
    cancel_msg = await _store(
        client,
        make_alert(
            sent=NOW - timedelta(minutes=8), msg_type=CapMsgType.CANCEL, references=[doomed]
        ),
    )

    assert set(await _ids(client, status="active")) == {active, update_id}
    assert await _ids(client, status="expired") == [expired]
    assert set(await _ids(client, status="cancelled")) == {cancelled, cancel_msg}
    assert await _ids(client, status="updated") == [updated]
    assert set(await _ids(client, status="inactive")) == {expired, updated, cancelled, cancel_msg}
    everything = {active, expired, updated, update_id, cancelled, cancel_msg}
    assert set(await _ids(client, status="all")) == everything
    assert set(await _ids(client)) == everything, "default status is all"
    for item in (await _list(client, status="active"))["items"]:
        assert item["state"] == "active"


async def test_event_filters(client):
    tor = await _store(client, make_alert(event="Tornado Warning", same_event="TOR"))
    svr = await _store(client, make_alert(event="Severe Thunderstorm Warning", same_event="SVR"))
    assert await _ids(client, event="Tornado Warning") == [tor]
    assert await _ids(client, event="tornado WARNING") == [tor], "event is case-insensitive"
    assert await _ids(client, event="Tornado") == [], "event is an exact name, not a substring"
    assert await _ids(client, same_event="SVR") == [svr]
    assert await _ids(client, same_event="svr") == [svr], "same_event is case-insensitive"
    assert set(await _ids(client, event="Tornado Warning", same_event="SVR")) == set()


async def test_severity_urgency_certainty_and_cap_status(client):
    extreme = await _store(client, make_alert(severity=CapSeverity.EXTREME))
    minor = await _store(
        client,
        make_alert(severity=CapSeverity.MINOR, urgency=CapUrgency.FUTURE, status=CapStatus.TEST),
    )
    assert await _ids(client, severity="Extreme") == [extreme]
    assert await _ids(client, severity="Minor") == [minor]
    assert await _ids(client, severity="minor") == [minor], "CAP values are case-insensitive"
    assert await _ids(client, urgency="Future") == [minor]
    assert await _ids(client, urgency="Immediate") == [extreme]
    assert set(await _ids(client, certainty="Observed")) == {extreme, minor}
    assert await _ids(client, certainty="Likely") == []
    assert await _ids(client, cap_status="Test") == [minor]
    assert await _ids(client, cap_status="Actual") == [extreme]
    assert await _ids(client, severity="Minor", urgency="Immediate") == []
    assert await _ids(client, severity="Extreme", urgency="Immediate", cap_status="Actual") == [
        extreme
    ]


async def test_same_ugc_source_and_relevant_filters(client):
    here = await _store(client, make_alert(same_codes=("039035",), ugc_codes=("OHC035",)))
    texas = await _store(
        client, make_alert(same_codes=("048201",), ugc_codes=("TXC201",)), kind=FeedKind.NWS
    )
    zone = await _store(client, make_alert(same_codes=(), ugc_codes=("OHZ014",)), FeedKind.IPAWS)
    assert await _ids(client, same="039035") == [here]
    assert await _ids(client, same="048201") == [texas]
    assert await _ids(client, same="039000") == [], "SAME filter is the exact code"
    assert await _ids(client, ugc="TXC201") == [texas]
    assert await _ids(client, ugc="ohz014") == [zone], "UGC is case-insensitive"
    assert set(await _ids(client, ugc="OHZALL")) == {zone}, "OHZALL: every OH zone"
    assert set(await _ids(client, ugc="OHCALL")) == {here}
    assert await _ids(client, source="nws") == [texas]
    assert await _ids(client, source="ipaws") == [zone]
    assert await _ids(client, source="cap-folder") == [here]
    assert set(await _ids(client, relevant="true")) == {here, zone}
    assert await _ids(client, relevant="false") == [texas]
    assert await _ids(client, relevant="true", source="nws") == []
    assert await _ids(client, same="039035", ugc="OHC035", relevant="true") == [here]


async def test_since_until_window(client):
    ids = [
        await _store(
            client, make_alert(sent=NOW - timedelta(hours=h), expires_in=timedelta(days=1))
        )
        for h in (5, 3, 1)
    ]
    since = (NOW - timedelta(hours=4)).isoformat()
    until = (NOW - timedelta(hours=1)).isoformat()
    assert await _ids(client, since=since) == [ids[2], ids[1]]
    assert await _ids(client, until=until) == [ids[1], ids[0]], "until is exclusive"
    assert await _ids(client, since=since, until=until) == [ids[1]]
    # Other offsets mean the same instant.
    for offset in (-5, 2):
        shifted = (NOW - timedelta(hours=4)).astimezone(timezone(timedelta(hours=offset)))
        assert await _ids(client, since=shifted.isoformat()) == [ids[2], ids[1]]
    assert await _ids(client, since=since.replace("+00:00", "Z")) == [ids[2], ids[1]]


# ---- ordering and paging ------------------------------------------------------------------


async def test_newest_first_by_sent_then_id(client):
    old = await _store(client, make_alert(sent=NOW - timedelta(hours=2)))
    same_a = await _store(client, make_alert(sent=NOW - timedelta(hours=1)))
    same_b = await _store(client, make_alert(sent=NOW - timedelta(hours=1)))
    new = await _store(client, make_alert(sent=NOW - timedelta(minutes=1)))
    assert await _ids(client) == [new, max(same_a, same_b), min(same_a, same_b), old]


async def test_cursor_pages_without_duplicates_or_gaps(client):
    expected = []
    for k in range(13):
        # Pairs and triples of identical `sent` times straddle page boundaries.
        sent = NOW - timedelta(minutes=k // 3)
        expected.append((sent, await _store(client, make_alert(sent=sent))))
    expected.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = await _list(client, **params)
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 4
        assert pages < 10, "paging does not terminate"
    assert seen == [alert_id for _, alert_id in expected]
    assert pages == 4


async def test_last_full_page_has_no_next_cursor(client):
    for k in range(4):
        await _store(client, make_alert(sent=NOW - timedelta(minutes=k)))
    first = await _list(client, limit=2)
    assert first["next_cursor"] is not None
    second = await _list(client, limit=2, cursor=first["next_cursor"])
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None, "an exactly full last page must not promise more"
    assert (await _list(client, limit=4))["next_cursor"] is None


async def test_cursor_keeps_filters(client):
    ids = [
        await _store(client, make_alert(sent=NOW - timedelta(minutes=k), severity=sev))
        for k, sev in enumerate([CapSeverity.EXTREME, CapSeverity.MINOR] * 3)
    ]
    extreme = [ids[0], ids[2], ids[4]]
    page = await _list(client, severity="Extreme", limit=2)
    rest = await _list(client, severity="Extreme", limit=2, cursor=page["next_cursor"])
    assert [i["id"] for i in page["items"] + rest["items"]] == extreme
    assert rest["next_cursor"] is None


async def test_limit_bounds(client):
    for k in range(3):
        await _store(client, make_alert(sent=NOW - timedelta(minutes=k)))
    assert len((await _list(client, limit=1))["items"]) == 1
    assert len((await _list(client, limit=500))["items"]) == 3
    for bad in (0, -1, 501, 10000):
        assert "limit" in _loc_names(await _error(client, 422, limit=bad))
    assert "limit" in _loc_names(await _error(client, 422, limit="ten"))


# ---- representation -----------------------------------------------------------------------


def _utc_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, f"{text!r} has no offset"
    assert parsed.utcoffset() == timedelta(0), f"{text!r} is not UTC"
    return parsed


async def test_items_carry_utc_iso_times_and_fields(client):
    sent = NOW - timedelta(minutes=5)
    alert_id = await _store(client, make_alert(sent=sent, expires_in=timedelta(hours=2)))
    (item,) = (await _list(client))["items"]
    assert item["id"] == alert_id
    assert _utc_time(item["sent"]) == sent
    assert _utc_time(item["expires"]) == sent + timedelta(hours=2)
    for key in ("onset", "effective", "received_at", "updated_at"):
        _utc_time(item[key])
    assert item["event"] == "Tornado Warning"
    assert item["same_event"] == "TOR"
    assert item["same_codes"] == ["039035"]
    assert item["relevant"] is True
    assert item["state"] == "active"
    assert item["source"] == "cap-folder"
    assert item["description"] and item["instruction"]


def _square(lat: float, lon: float) -> list[tuple[float, float]]:
    return [(lat, lon), (lat, lon + 1), (lat + 1, lon + 1), (lat + 1, lon), (lat, lon)]


def _ring_area(ring: list[list[float]]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring)) / 2


def _check_feature_collection(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    assert doc["type"] == "FeatureCollection"
    out = {}
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        assert isinstance(feature["properties"], dict)
        assert feature["id"] == feature["properties"]["id"]
        geometry = feature["geometry"]
        if geometry is not None:
            assert geometry["type"] in ("Polygon", "MultiPolygon")
            polygons = (
                geometry["coordinates"]
                if geometry["type"] == "MultiPolygon"
                else [geometry["coordinates"]]
            )
            for polygon in polygons:
                for ring in polygon:
                    assert len(ring) >= 4
                    assert ring[0] == ring[-1], "rings are closed"
                    for lon, lat in ring:
                        assert -180 <= lon <= 180 and -90 <= lat <= 90
                # RFC 7946: exterior rings are counterclockwise.
                assert _ring_area(polygon[0]) > 0
        out[feature["id"]] = feature
    return out


async def _geo_alerts(client: httpx.AsyncClient) -> tuple[int, int, int]:
    # Cleveland-ish: lat 41, lon -82 — distinct so a lat/lon swap is caught.
    polygon = await _store(
        client, make_alert(sent=NOW - timedelta(minutes=3), polygon=_square(41.0, -82.0))
    )
    circle_alert = make_alert(sent=NOW - timedelta(minutes=2))
    info = circle_alert.infos[0]
    area = CapArea(
        area_desc="10 km around Cleveland",
        circles=[Circle(lat=41.5, lon=-81.7, radius_km=10)],
    )
    circle_alert = circle_alert.model_copy(
        update={"infos": [info.model_copy(update={"areas": [area]})]}
    )
    circle = await _store(client, circle_alert)
    plain = await _store(client, make_alert(sent=NOW - timedelta(minutes=1)))
    return polygon, circle, plain


async def test_geojson_by_format_parameter(client):
    polygon, circle, plain = await _geo_alerts(client)
    response = await client.get("/api/alerts", params={"format": "geojson"}, headers=_auth(client))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    doc = response.json()
    features = _check_feature_collection(doc)
    assert list(features) == [plain, circle, polygon], "newest first, as JSON"
    assert features[plain]["geometry"] is None
    poly_coords = features[polygon]["geometry"]["coordinates"]
    ring = poly_coords[0][0]
    assert {tuple(p) for p in ring} == {(-82.0, 41.0), (-81.0, 41.0), (-81.0, 42.0), (-82.0, 42.0)}
    circle_ring = features[circle]["geometry"]["coordinates"][0][0]
    assert len(circle_ring) >= 17
    lons = [p[0] for p in circle_ring]
    lats = [p[1] for p in circle_ring]
    assert -82.0 < min(lons) < -81.7 < max(lons) < -81.4
    assert 41.4 < min(lats) < 41.5 < max(lats) < 41.6
    assert features[circle]["properties"]["event"] == "Tornado Warning"
    assert doc["next_cursor"] is None


async def test_geojson_by_accept_header_and_paging(client):
    await _geo_alerts(client)
    headers = {**_auth(client), "Accept": "application/geo+json"}
    response = await client.get("/api/alerts", params={"limit": 2}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    doc = response.json()
    assert len(_check_feature_collection(doc)) == 2
    more = await client.get(
        "/api/alerts", params={"limit": 2, "cursor": doc["next_cursor"]}, headers=headers
    )
    assert len(_check_feature_collection(more.json())) == 1
    # An explicit format wins over Accept; a browser's Accept gets JSON.
    forced = await client.get("/api/alerts", params={"format": "json"}, headers=headers)
    assert forced.headers["content-type"].startswith("application/json")
    assert "items" in forced.json()
    browser = {**_auth(client), "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert "items" in (await client.get("/api/alerts", headers=browser)).json()
    refused = {**_auth(client), "Accept": "application/json, application/geo+json;q=0"}
    assert "items" in (await client.get("/api/alerts", headers=refused)).json()


# ---- bad input ----------------------------------------------------------------------------


async def test_unknown_status_is_422_naming_choices(client):
    detail = await _error(client, 422, status="pending")
    assert "status" in _loc_names(detail)
    assert "active" in json.dumps(detail)


BAD_FILTERS = [
    ("severity", "Catastrophic"),
    ("urgency", "Soon"),
    ("certainty", "Maybe"),
    ("cap_status", "Draftish"),
    ("source", "twitter"),
    ("relevant", "perhaps"),
    ("same_event", "TORNADO"),
    ("same_event", "T0R"),
    ("same", "12345"),
    ("same", "0390351"),
    ("same", "03903A"),
    ("same", "099001"),
    ("ugc", "OHX014"),
    ("ugc", "OH014"),
    ("format", "xml"),
    ("format", "csv"),
    ("event", "x" * 256),
    ("event", "Tornado\x00Warning"),
]


async def test_bad_filter_values_are_422_naming_the_parameter(client):
    # One app for every case: each request is independent, the store is never touched.
    for name, value in BAD_FILTERS:
        detail = await _error(client, 422, **{name: value})
        assert name in _loc_names(detail), (name, value, detail)
        assert all(err["msg"] for err in detail)


async def test_malformed_same_code_message_is_clear(client):
    detail = await _error(client, 422, same="12345")
    assert "6 digits" in detail[0]["msg"] or "PSSCCC" in detail[0]["msg"]


async def test_naive_bad_or_unrepresentable_times_are_422(client):
    for name in ("since", "until"):
        for value in (
            "2024-05-01T12:00:00",  # naive: which zone? refused, not guessed
            "2024-05-01",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "0001-01-01T00:00:00+05:00",  # year 0 in UTC
            "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
        ):
            detail = await _error(client, 422, **{name: value})
            assert name in _loc_names(detail), (name, value, detail)
    naive = await _error(client, 422, since="2024-05-01T12:00:00")
    assert "timezone" in naive[0]["msg"]


async def test_since_not_before_until_is_400(client):
    t = NOW.isoformat()
    assert "since" in await _error(client, 400, since=t, until=t)
    later = (NOW + timedelta(hours=1)).isoformat()
    assert "since" in await _error(client, 400, since=later, until=t)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "garbage",
    "!!!!",
    "x" * 5000,
    _b64(b"not json"),
    _b64(b"[1, 2, 3]"),
    _b64(b'{"a": 1, "b": 2}'),
    _b64(b'["2024-05-01T00:00:00", 5]'),  # naive
    _b64(b'["2024-05-01T00:00:00+00:00", "5"]'),
    _b64(b'["2024-05-01T00:00:00+00:00", true]'),
    _b64(b'["2024-05-01T00:00:00+00:00", 1e400]'),
    _b64(b'["2024-05-01T00:00:00+00:00", 100000000000000000000000]'),
    _b64(b'["2024-05-01T00:00:00+00:00", -1]'),
    _b64(b'["0001-01-01T00:00:00+05:00", 5]'),
    _b64(b"\xff\xfe"),
]


async def test_garbage_cursor_is_400(client):
    await _store(client, make_alert())
    for cursor in BAD_CURSORS:
        detail = await _error(client, 400, cursor=cursor)
        assert "cursor" in detail, (cursor, detail)


async def test_bad_inputs_do_not_disturb_the_store(client):
    alert_id = await _store(client, make_alert())
    await _error(client, 400, cursor="garbage")
    await _error(client, 422, since="2024-05-01T12:00:00")
    assert await _ids(client) == [alert_id]


async def test_certainty_case_and_enum_values_listed(client):
    detail = await _error(client, 422, certainty="Maybe")
    assert "Observed" in detail[0]["msg"]


async def test_many_codes_certainty_unknown(client):
    unknown = make_alert()
    info = unknown.infos[0].model_copy(update={"certainty": CapCertainty.UNKNOWN})
    alert_id = await _store(client, unknown.model_copy(update={"infos": [info]}))
    assert await _ids(client, certainty="Unknown") == [alert_id]
