"""POST /api/alerts (manual alert) and POST /api/alerts/{id}/cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from eas_schemas.cap import CapMsgType
from eas_schemas.envelope import decode_entry
from eas_testkit.factories import ingested, make_alert
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key


@pytest.fixture
async def client(settings, token) -> AsyncIterator[httpx.AsyncClient]:
    """The conftest client without the ingest consumer; ``token`` here is an operator's."""
    app = create_app(settings.model_copy(update={"run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            http.token = token(Role.OPERATOR)  # type: ignore[attr-defined]
            yield http


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "Civil Emergency Message",
        "same_event": "CEM",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "headline": "Water main break: boil water advisory",
        "description": "A water main broke on Main Street.",
        "instruction": "Boil water before drinking.",
        "area_desc": "Cuyahoga County, OH",
        "same_codes": ["039035"],
        "duration_minutes": 60,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def _post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/api/alerts", json=body, headers=_auth(client))


async def _events(aredis, namespace: str, want: int) -> list[tuple[str, dict[str, Any]]]:
    """The alert.events stream once it holds ``want`` entries (polled with a deadline)."""
    key = stream_key("alert.events", namespace)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        rows = await aredis.xrange(key)
        if len(rows) >= want or asyncio.get_running_loop().time() > deadline:
            return [(env.type, env.data) for env in (decode_entry(f) for _, f in rows)]
        await asyncio.sleep(0.05)


async def _stored(client: httpx.AsyncClient) -> list[int]:
    response = await client.get("/api/alerts", headers=_auth(client))
    return [item["id"] for item in response.json()["items"]]


# ---- create ---------------------------------------------------------------------------


async def test_create_manual_alert(client, aredis, bus_namespace):
    before = datetime.now(UTC).replace(microsecond=0)
    response = await _post(client, _body())
    assert response.status_code == 201, response.text
    created = response.json()
    alert_id = created["id"]
    assert response.headers["location"] == f"/api/alerts/{alert_id}"
    item = created["alert"]
    assert item["id"] == alert_id
    assert item["state"] == "active"
    assert item["source"] == "manual"
    assert item["msg_type"] == "Alert"
    assert item["status"] == "Actual"
    assert item["event"] == "Civil Emergency Message"
    assert item["same_event"] == "CEM"
    assert item["same_codes"] == ["039035"]
    assert item["relevant"] is True
    assert "039035" in item["relevance_reason"]
    sent = datetime.fromisoformat(item["sent"])
    assert sent.utcoffset() == timedelta(0)
    assert before <= sent <= datetime.now(UTC)
    assert datetime.fromisoformat(item["expires"]) == sent + timedelta(minutes=60)

    detail = await client.get(response.headers["location"], headers=_auth(client))
    assert detail.status_code == 200
    cap = detail.json()["cap"]
    assert cap["infos"][0]["event_codes"] == [{"value_name": "SAME", "value": "CEM"}]
    assert "test-operator" in cap["note"]

    events = await _events(aredis, bus_namespace, 1)
    assert [t for t, _ in events] == ["alert.created"]
    assert events[0][1]["alert"]["id"] == alert_id
    assert events[0][1]["alert"]["source"] == "manual"


async def test_created_alert_relevance_follows_station_codes(client):
    by_zone = await _post(client, _body(same_codes=[], ugc_codes=["ohz014"]))
    assert by_zone.status_code == 201, by_zone.text
    assert by_zone.json()["alert"]["relevant"] is True
    assert by_zone.json()["alert"]["ugc_codes"] == ["OHZ014"]
    statewide = await _post(client, _body(same_codes=["039000"]))
    assert statewide.json()["alert"]["relevant"] is True
    elsewhere = await _post(client, _body(same_codes=["048201"], ugc_codes=["TXC201"]))
    assert elsewhere.status_code == 201
    assert elsewhere.json()["alert"]["relevant"] is False


async def test_create_with_expires_in_any_offset(client):
    expires = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    local = expires.astimezone(timezone(timedelta(hours=-5)))
    response = await _post(client, _body(duration_minutes=None, expires=local.isoformat()))
    assert response.status_code == 201, response.text
    got = datetime.fromisoformat(response.json()["alert"]["expires"])
    assert got == expires and got.utcoffset() == timedelta(0)


def _mentions(detail: list[dict[str, Any]], field: str) -> bool:
    return any(field in err["loc"] or field in err["msg"] for err in detail)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no codes", _body(same_codes=[]), "same_codes"),
    ("both expiry forms", _body(expires="2099-01-01T00:00:00Z"), "duration_minutes"),
    ("neither expiry form", _body(duration_minutes=None), "expires"),
    ("past expires", _body(duration_minutes=None, expires="2020-01-01T00:00:00Z"), "expires"),
    ("naive expires", _body(duration_minutes=None, expires="2099-01-01T00:00:00"), "expires"),
    (
        "expires beyond year 9999 in UTC",
        _body(duration_minutes=None, expires="9999-12-31T23:59:59-05:00"),
        "expires",
    ),
    ("zero duration", _body(duration_minutes=0), "duration_minutes"),
    ("week-long duration", _body(duration_minutes=7 * 24 * 60 + 1), "duration_minutes"),
    ("5-digit SAME code", _body(same_codes=["12345"]), "same_codes"),
    ("unknown state in SAME code", _body(same_codes=["099001"]), "same_codes"),
    ("bad UGC", _body(ugc_codes=["OHX014"]), "ugc_codes"),
    ("32 SAME codes", _body(same_codes=["039035"] * 32), "same_codes"),
    ("event code of 4 letters", _body(same_event="TORN"), "same_event"),
    ("unknown event code", _body(same_event="XYZ"), "same_event"),
    ("extra field", _body(identifier="forged"), "identifier"),
    ("extra sender", _body(sender="nws@noaa.gov"), "sender"),
    ("Draft", _body(status="Draft"), "status"),
    ("unknown status", _body(status="Real"), "status"),
    ("Restricted scope", _body(scope="Restricted"), "scope"),
    ("bad severity", _body(severity="Apocalyptic"), "severity"),
    ("missing severity", _body(severity=None), "severity"),
    ("oversized headline", _body(headline="H" * 501), "headline"),
    ("empty event", _body(event=""), "event"),
    ("blank event", _body(event="   "), "event"),
    ("blank area", _body(area_desc=" "), "area_desc"),
    ("NUL in headline", _body(headline="boil\x00water"), "headline"),
    ("bad language", _body(language="english!"), "language"),
]


async def test_invalid_manual_alerts_are_422_naming_the_field(client, aredis, bus_namespace):
    for name, body, field in INVALID:
        response = await _post(client, body)
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"]
        assert _mentions(detail, field), (name, detail)
    # Values Python's JSON reader accepts but JSON output cannot carry: the 422 must still be
    # rendered (FastAPI's echo of the input used to turn these into 500s).
    template = httpx.Request("POST", "/", json=_body(description="TEXT", duration_minutes=-1))
    for field, old, new in (
        ("description", b'"TEXT"', b'"bad \\ud800 text"'),
        ("duration_minutes", b"-1", b"NaN"),
        ("duration_minutes", b"-1", b"-Infinity"),
    ):
        content = template.content.replace(old, new)
        if field == "description":
            content = content.replace(b"-1", b"60")
        response = await client.post(
            "/api/alerts",
            content=content,
            headers={**_auth(client), "content-type": "application/json"},
        )
        assert response.status_code == 422, (content, response.text)
        assert _mentions(response.json()["detail"], field), response.text
    assert await _stored(client) == [], "nothing invalid was stored"
    assert await aredis.xlen(stream_key("alert.events", bus_namespace)) == 0


async def test_malformed_bodies_are_422(client):
    for content in (b"", b"not json", b"[]", b'"text"', b"{"):
        response = await client.post(
            "/api/alerts",
            content=content,
            headers={**_auth(client), "content-type": "application/json"},
        )
        assert response.status_code == 422, (content, response.text)
        assert response.json()["detail"]


# ---- cancel ---------------------------------------------------------------------------


async def test_cancel_an_active_alert(client, aredis, bus_namespace):
    created = await _post(client, _body())
    alert_id = created.json()["id"]
    response = await client.post(
        f"/api/alerts/{alert_id}/cancel", json={"note": "broken main fixed"}, headers=_auth(client)
    )
    assert response.status_code == 201, response.text
    cancel = response.json()
    assert response.headers["location"] == f"/api/alerts/{cancel['id']}"
    assert cancel["alert"]["msg_type"] == "Cancel"
    assert cancel["alert"]["state"] == "cancelled"
    assert cancel["alert"]["references"] == [alert_id]

    detail = (await client.get(f"/api/alerts/{alert_id}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "cancelled"
    assert [r["id"] for r in detail["referenced_by"]] == [cancel["id"]]
    assert detail["history"][-1]["to_state"] == "cancelled"
    assert detail["history"][-1]["by_alert_id"] == cancel["id"]
    cancel_cap = (await client.get(f"/api/alerts/{cancel['id']}", headers=_auth(client))).json()
    assert cancel_cap["cap"]["note"] == "broken main fixed"

    events = await _events(aredis, bus_namespace, 3)
    assert [t for t, _ in events] == ["alert.created", "alert.created", "alert.cancelled"]
    assert events[2][1]["alert"]["id"] == alert_id
    assert events[2][1]["previous_state"] == "active"

    again = await client.post(f"/api/alerts/{alert_id}/cancel", headers=_auth(client))
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    of_cancel = await client.post(f"/api/alerts/{cancel['id']}/cancel", headers=_auth(client))
    assert of_cancel.status_code == 409
    assert "Cancel message" in of_cancel.json()["detail"]
    assert len(await _stored(client)) == 2, "refused cancels store nothing"


async def test_cancel_an_ingested_alert_without_a_body(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    target = (await service.ingest(ingested(make_alert()))).alert_id
    response = await client.post(f"/api/alerts/{target}/cancel", headers=_auth(client))
    assert response.status_code == 201, response.text
    detail = (await client.get(f"/api/alerts/{target}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "cancelled"
    events = await _events(aredis, bus_namespace, 3)
    assert [t for t, _ in events][-1] == "alert.cancelled"


async def test_cancel_refusals(client):
    service = client.app.state.alert_service
    expired = (
        await service.ingest(
            ingested(make_alert(sent=datetime.now(UTC) - timedelta(hours=3)))  # expired 2 h ago
        )
    ).alert_id
    response = await client.post(f"/api/alerts/{expired}/cancel", headers=_auth(client))
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]

    missing = await client.post("/api/alerts/424242/cancel", headers=_auth(client))
    assert missing.status_code == 404
    assert "424242" in missing.json()["detail"]

    for bad in ("abc", "0", "-3"):
        response = await client.post(f"/api/alerts/{bad}/cancel", headers=_auth(client))
        assert response.status_code == 422, bad

    active = (await service.ingest(ingested(make_alert()))).alert_id
    for body in ({"reason": "x"}, {"note": "n" * 2001}, {"note": "a\x00b"}):
        response = await client.post(
            f"/api/alerts/{active}/cancel", json=body, headers=_auth(client)
        )
        assert response.status_code == 422, (body, response.text)
    detail = (await client.get(f"/api/alerts/{active}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "active", "a refused cancel changes nothing"


async def test_cancel_an_updated_alert(client):
    service = client.app.state.alert_service
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    original = make_alert(sent=t0)
    first = (await service.ingest(ingested(original))).alert_id
    await service.ingest(
        ingested(
            make_alert(
                sent=t0 + timedelta(minutes=1), msg_type=CapMsgType.UPDATE, references=[original]
            )
        )
    )
    response = await client.post(f"/api/alerts/{first}/cancel", headers=_auth(client))
    assert response.status_code == 201
    detail = (await client.get(f"/api/alerts/{first}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "cancelled"


async def test_concurrent_cancels_give_one_cancel(client, settings, aredis, bus_namespace):
    """Operators on two instances press Cancel at once: one 201, the rest 409, one Cancel."""
    service = client.app.state.alert_service
    target = (await service.ingest(ingested(make_alert()))).alert_id
    other = create_app(settings.model_copy(update={"run_consumer": False, "instance": "test-2"}))
    async with LifespanManager(other) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts-2") as second:
            calls = [
                http.post(f"/api/alerts/{target}/cancel", headers=_auth(client))
                for http in (client, second, client, second, client, second)
            ]
            responses = await asyncio.gather(*calls)
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    listed = (await client.get("/api/alerts", headers=_auth(client))).json()["items"]
    assert sorted(i["msg_type"] for i in listed) == ["Alert", "Cancel"]
    events = await _events(aredis, bus_namespace, 3)
    assert [t for t, _ in events].count("alert.cancelled") == 1
