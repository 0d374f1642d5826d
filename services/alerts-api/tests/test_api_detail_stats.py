"""GET /api/alerts/{id} and GET /api/alerts/stats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from eas_schemas.cap import CapMsgType, CapSeverity
from eas_schemas.events import AlertIngested, FeedKind
from eas_testkit.factories import ingested, make_alert
from servicekit.auth.permissions import Role


@pytest.fixture
async def client(settings, token) -> AsyncIterator[httpx.AsyncClient]:
    """The conftest client without the ingest consumer (not needed to read the store)."""
    app = create_app(settings.model_copy(update={"run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            http.token = token(Role.VIEWER)  # type: ignore[attr-defined]
            yield http


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


async def _store(client: httpx.AsyncClient, entry: AlertIngested) -> int:
    result = await client.app.state.alert_service.ingest(entry)  # type: ignore[attr-defined]
    assert result.alert_id is not None
    return int(result.alert_id)


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0), text
    return parsed


async def test_detail_of_an_updated_alert(client):
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    square = [(41.0, -82.0), (41.0, -81.0), (42.0, -81.0), (42.0, -82.0), (41.0, -82.0)]
    original = make_alert(sent=t0, polygon=square)
    update = make_alert(
        sent=t0 + timedelta(minutes=5), msg_type=CapMsgType.UPDATE, references=[original]
    )
    first = await _store(client, ingested(original))
    second = await _store(client, ingested(update))

    response = await client.get(f"/api/alerts/{first}", headers=_auth(client))
    assert response.status_code == 200
    detail = response.json()
    assert set(detail) >= {"alert", "cap", "geometry", "references", "referenced_by", "history"}
    assert detail["alert"]["id"] == first
    assert detail["alert"]["state"] == "updated"
    assert _utc(detail["alert"]["sent"]) == t0
    assert detail["cap"]["identifier"] == original.identifier
    assert detail["cap"]["sender"] == original.sender
    assert _utc(detail["cap"]["sent"]) == t0
    assert detail["cap"]["infos"][0]["areas"][0]["polygons"][0][0] == [41.0, -82.0]
    assert detail["geometry"]["type"] == "MultiPolygon"
    ring = detail["geometry"]["coordinates"][0][0]
    assert [-82.0, 41.0] in ring and ring[0] == ring[-1], "GeoJSON is [lon, lat], closed"
    assert detail["references"] == []
    assert [(r["id"], r["msg_type"]) for r in detail["referenced_by"]] == [(second, "Update")]
    assert detail["referenced_by"][0]["identifier"] == update.identifier
    assert [(h["from_state"], h["to_state"]) for h in detail["history"]] == [
        (None, "active"),
        ("active", "updated"),
    ]
    assert detail["history"][1]["by_alert_id"] == second
    assert update.identifier in detail["history"][1]["reason"]
    for h in detail["history"]:
        _utc(h["at"])

    later = (await client.get(f"/api/alerts/{second}", headers=_auth(client))).json()
    assert later["geometry"] is None
    assert later["alert"]["references"] == [first]
    (ref,) = later["references"]
    assert ref["alert_id"] == first
    assert ref["identifier"] == original.identifier
    assert _utc(ref["sent"]) == t0
    assert later["referenced_by"] == []


async def test_detail_shows_unresolved_reference(client):
    missing = make_alert(sent=datetime.now(UTC) - timedelta(hours=1))
    cancel = await _store(
        client, ingested(make_alert(msg_type=CapMsgType.CANCEL, references=[missing]))
    )
    detail = (await client.get(f"/api/alerts/{cancel}", headers=_auth(client))).json()
    assert detail["references"][0]["alert_id"] is None
    assert detail["references"][0]["identifier"] == missing.identifier
    assert detail["alert"]["state"] == "cancelled"


async def test_unknown_and_invalid_ids(client):
    await _store(client, ingested(make_alert()))
    missing = await client.get("/api/alerts/999999", headers=_auth(client))
    assert missing.status_code == 404
    assert "999999" in missing.json()["detail"]
    for bad in ("abc", "-1", "0", "1.5", "99999999999999999999999", "1e3"):
        response = await client.get(f"/api/alerts/{bad}", headers=_auth(client))
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "alert_id"]


async def test_stats_counts_and_windows(client):
    now = datetime.now(UTC).replace(microsecond=0)
    await _store(client, ingested(make_alert(sent=now - timedelta(minutes=5))))
    await _store(
        client,
        AlertIngested(
            feed="nws",
            feed_kind=FeedKind.NWS,
            received_at=now,
            alert=make_alert(
                sent=now - timedelta(days=2),
                event="Flood Warning",
                same_event="FLW",
                severity=CapSeverity.SEVERE,
            ),
        ),
    )
    await _store(
        client,
        ingested(
            make_alert(
                sent=now - timedelta(days=10),
                event="Flood Warning",
                same_event="FLW",
                severity=CapSeverity.MODERATE,
            )
        ),
    )
    response = await client.get("/api/alerts/stats", headers=_auth(client))
    assert response.status_code == 200
    stats = response.json()
    assert stats["total"] == 3
    assert stats["active"] == 1
    assert stats["last_24h"] == 1
    assert stats["last_7d"] == 2
    assert stats["by_event"] == {"Tornado Warning": 1, "Flood Warning": 2}
    assert stats["by_severity"] == {"Extreme": 1, "Severe": 1, "Moderate": 1}
    assert stats["by_source"] == {"cap-folder": 2, "nws": 1}
    assert stats["by_state"] == {"active": 1, "expired": 2}
    assert stats["by_event_7d"] == {"Tornado Warning": 1, "Flood Warning": 1}
    assert stats["by_severity_7d"] == {"Extreme": 1, "Severe": 1}
    assert stats["by_source_7d"] == {"cap-folder": 1, "nws": 1}


async def test_stats_of_an_empty_store(client):
    stats = (await client.get("/api/alerts/stats", headers=_auth(client))).json()
    assert stats["total"] == stats["active"] == stats["last_24h"] == stats["last_7d"] == 0
    assert stats["by_event"] == stats["by_state"] == {}
