"""Authentication and authorization on every /api/alerts route, edge limits, OpenAPI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from eas_testkit.factories import ingested, make_alert
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair


@pytest.fixture
async def client(settings, token) -> AsyncIterator[httpx.AsyncClient]:
    """The conftest client without the ingest consumer (not needed here)."""
    app = create_app(settings.model_copy(update={"run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            http.token = token(Role.VIEWER)  # type: ignore[attr-defined]
            yield http


MANUAL = {
    "event": "Civil Emergency Message",
    "same_event": "CEM",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Observed",
    "area_desc": "Cuyahoga County, OH",
    "same_codes": ["039035"],
    "duration_minutes": 30,
}


async def _seed(client: httpx.AsyncClient) -> int:
    result = await client.app.state.alert_service.ingest(ingested(make_alert()))  # type: ignore[attr-defined]
    return int(result.alert_id)


def _routes(alert_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/api/alerts", None),
        ("GET", "/api/alerts/stats", None),
        ("GET", f"/api/alerts/{alert_id}", None),
        ("POST", "/api/alerts", MANUAL),
        ("POST", f"/api/alerts/{alert_id}/cancel", {"note": "test"}),
    ]


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    token: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.request(method, path, json=body, headers=headers)


def _assert_401(response: httpx.Response, why: str) -> None:
    assert response.status_code == 401, (why, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"], why


async def _count(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/api/alerts", headers={"Authorization": f"Bearer {token}"})
    return len(response.json()["items"])


async def test_every_route_needs_a_valid_token(client, token):
    alert_id = await _seed(client)
    viewer = token(Role.VIEWER)
    good_sig = viewer.rsplit(".", 1)
    flipped = good_sig[1][:5] + ("A" if good_sig[1][5] != "A" else "B") + good_sig[1][6:]
    foreign = TokenSigner(generate_keypair()[0]).mint("intruder", Role.ADMIN)
    bad_tokens = {
        "expired": token(Role.OPERATOR, ttl_s=60, now=time.time() - 7200),
        "tampered signature": f"{good_sig[0]}.{flipped}",
        "signed by another key": foreign,
        "not a JWT": "not-a-token",
        "empty claims": "e30.e30.e30",
    }
    for method, path, body in _routes(alert_id):
        missing = await _call(client, method, path, body)
        _assert_401(missing, f"{method} {path} without a token")
        assert "token" in missing.json()["detail"]
        for why, bad in bad_tokens.items():
            _assert_401(await _call(client, method, path, body, bad), f"{method} {path}: {why}")
        basic = await client.request(
            method, path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
        _assert_401(basic, f"{method} {path} with Basic auth")
    expired = await _call(client, "GET", "/api/alerts", None, bad_tokens["expired"])
    assert "expired" in expired.json()["detail"]
    assert await _count(client, viewer) == 1, "no refused write stored anything"


async def test_viewer_may_read_but_not_write(client, token):
    alert_id = await _seed(client)
    viewer = token(Role.VIEWER)
    for method, path, body in _routes(alert_id):
        response = await _call(client, method, path, body, viewer)
        if method == "GET":
            assert response.status_code == 200, (path, response.text)
        else:
            assert response.status_code == 403, (path, response.text)
            assert "alerts:write" in response.json()["detail"]
    detail = await _call(client, "GET", f"/api/alerts/{alert_id}", None, viewer)
    assert detail.json()["alert"]["state"] == "active"
    assert await _count(client, viewer) == 1


async def test_operator_and_admin_may_write(client, token):
    for role in (Role.OPERATOR, Role.ADMIN):
        response = await _call(client, "POST", "/api/alerts", MANUAL, token(role))
        assert response.status_code == 201, (role, response.text)


async def test_auth_is_checked_before_the_body(client):
    # Without a token, an invalid body or id must not reveal how it is validated.
    bad_body = await _call(client, "POST", "/api/alerts", {"nonsense": True})
    _assert_401(bad_body, "invalid body without a token")
    bad_id = await _call(client, "POST", "/api/alerts/-5/cancel", None)
    _assert_401(bad_id, "invalid id without a token")
    bad_filter = await client.get("/api/alerts", params={"status": "nope"})
    _assert_401(bad_filter, "invalid filter without a token")


async def test_anonymous_read_opens_reads_only(settings, token):
    app = create_app(settings.model_copy(update={"anonymous_read": True, "run_consumer": False}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            alert_id = int((await app.state.alert_service.ingest(ingested(make_alert()))).alert_id)
            for method, path, body in _routes(alert_id):
                response = await _call(http, method, path, body)
                if method == "GET":
                    assert response.status_code == 200, (path, response.text)
                else:
                    _assert_401(response, f"anonymous {method} {path}")
            # A bad token is still refused rather than silently downgraded to anonymous.
            bad = await _call(http, "GET", "/api/alerts", None, "not-a-token")
            _assert_401(bad, "bad token with anonymous_read")
            ok = await _call(http, "POST", "/api/alerts", MANUAL, token(Role.OPERATOR))
            assert ok.status_code == 201


async def test_security_headers_on_every_kind_of_response(client, token):
    viewer = token(Role.VIEWER)
    responses = [
        await _call(client, "GET", "/api/alerts", None, viewer),
        await _call(client, "GET", "/api/alerts/12345", None, viewer),
        await _call(client, "GET", "/api/alerts", None),
        await client.get(
            "/api/alerts", params={"limit": 0}, headers={"Authorization": f"Bearer {viewer}"}
        ),
        await client.get("/healthz"),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401, 422, 200]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_oversized_body_is_413_with_a_json_message(client, settings, token):
    operator = token(Role.OPERATOR)
    big = {**MANUAL, "description": "x" * (settings.max_request_bytes + 10)}
    response = await client.post(
        "/api/alerts", json=big, headers={"Authorization": f"Bearer {operator}"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert str(settings.max_request_bytes) in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # Without a token too: the limit applies before anything reads the body.
    anonymous = await client.post("/api/alerts", json=big)
    assert anonymous.status_code == 413
    listed = await client.get("/api/alerts", headers={"Authorization": f"Bearer {operator}"})
    assert listed.json()["items"] == []


async def test_oversized_streamed_body_is_413(client, settings, token):
    body = b'{"description": "' + b"x" * (settings.max_request_bytes + 10) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = await client.post(
        "/api/alerts",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {token(Role.OPERATOR)}",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 413, response.text


async def test_openapi_describes_the_alert_routes(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes, "a security scheme is declared"
    bearer_names = {
        name
        for name, scheme in schemes.items()
        if scheme["type"] == "oauth2" or scheme.get("scheme", "").lower() == "bearer"
    }
    assert bearer_names
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/alerts")
        for method, op in item.items()
    ]
    assert {(p, m) for p, m, _ in operations} == {
        ("/api/alerts", "get"),
        ("/api/alerts", "post"),
        ("/api/alerts/stats", "get"),
        ("/api/alerts/{alert_id}", "get"),
        ("/api/alerts/{alert_id}/cancel", "post"),
    }
    for path, method, op in operations:
        assert op.get("security"), f"{method} {path} declares no security"
        assert {name for req in op["security"] for name in req} <= bearer_names
        assert "401" in op["responses"], f"{method} {path} does not document 401"
        assert "403" in op["responses"]
    listing = doc["paths"]["/api/alerts"]["get"]
    ok = listing["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/AlertPage"}
    assert "application/geo+json" in ok
    page = doc["components"]["schemas"]["AlertPage"]
    assert set(page["properties"]) == {"items", "next_cursor"}
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/AlertItem"}
    params = {p["name"] for p in listing["parameters"]}
    assert params >= {
        "status",
        "event",
        "same_event",
        "severity",
        "urgency",
        "certainty",
        "cap_status",
        "same",
        "ugc",
        "source",
        "relevant",
        "since",
        "until",
        "limit",
        "cursor",
        "format",
    }
    create = doc["paths"]["/api/alerts"]["post"]
    assert "201" in create["responses"] and "422" in create["responses"]
    assert "Location" in create["responses"]["201"].get("headers", {})
    cancel = doc["paths"]["/api/alerts/{alert_id}/cancel"]["post"]
    assert {"201", "404", "409"} <= set(cancel["responses"])
    assert "404" in doc["paths"]["/api/alerts/{alert_id}"]["get"]["responses"]
