"""Every route of station-api, enumerated from the app: 401 without or with a bad token, 403
for a role without the route's permission, CSRF for cookie-authenticated unsafe requests, and
no secret or password hash in any GET answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

import jwt
import pytest
from fastapi.routing import APIRoute

from servicekit.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from servicekit.auth.tokens import TokenSigner, generate_keypair
from station_api.routes import PUBLIC_ROUTES

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"
PATH_VALUES = {"version": "1", "username": ADMIN}
PIN = "ipaws-pin-31337"
KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIsecretmaterial\n-----END PRIVATE KEY-----"


def _permission_of(route: APIRoute) -> Permission | None:
    """The permission named by the route's ``require(...)`` dependency."""
    found: list[Permission] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            found.append(Permission(name[len("require_") :].replace("_", ":", 1)))
        stack.extend(dep.dependencies)
    assert len(found) <= 1, f"{route.path} names several permissions: {found}"
    return found[0] if found else None


def _routes(app) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) from the OpenAPI document, minus health and public auth routes."""
    schema = app.openapi()
    by_key = {(m, r.path): r for r in _api_routes(app.routes) for m in r.methods}
    out = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if "health" in op.get("tags", []) or (method.upper(), path) in PUBLIC_ROUTES:
                continue
            out.append((method.upper(), path, by_key[(method.upper(), path)]))
    return out


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    # Included routers may be nested (FastAPI keeps them as wrappers around the original).
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
        elif hasattr(route, "routes"):
            found.extend(_api_routes(route.routes))
    return found


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


async def _call(client, method: str, path: str, **kwargs: Any):
    if method in ("POST", "PUT", "PATCH"):
        kwargs.setdefault("json", {})
    return await client.request(method, _url(path), **kwargs)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_route_list_is_complete(client):
    routes = _routes(client.app)
    assert len(routes) >= 20
    names = {(m, p) for m, p, _ in routes}
    assert ("GET", "/api/settings") in names and ("DELETE", "/api/users/{username}") in names
    # Every protected route names exactly one permission.
    for method, path, route in routes:
        assert _permission_of(route) is not None, f"{method} {path} names no permission"


async def test_missing_token_is_401_everywhere(client, admin):
    client.cookies.clear()
    for method, path, _ in _routes(client.app):
        answer = await _call(client, method, path)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
        assert answer.headers.get("www-authenticate") == "Bearer"


async def test_too_low_a_role_is_403_everywhere(client, admin, operator, viewer):
    sessions = {Role.OPERATOR: operator, Role.VIEWER: viewer}
    checked = 0
    for method, path, route in _routes(client.app):
        permission = _permission_of(route)
        for role, session in sessions.items():
            if permission in ROLE_PERMISSIONS[role]:
                continue
            answer = await _call(client, method, path, headers=session.headers)
            assert answer.status_code == 403, f"{role} {method} {path}: {answer.status_code}"
            checked += 1
    assert checked >= 20


async def test_expired_tampered_and_foreign_tokens_are_401_everywhere(client, admin, keypair):
    signer = TokenSigner(keypair[0])
    expired = signer.mint(ADMIN, Role.ADMIN, ttl_s=60, now=time.time() - 3600)
    good = signer.mint("someone", Role.VIEWER, ttl_s=600)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    escalated = f"{header}.{forged_payload}.{signature}"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    bad_signature = f"{header}.{payload}.{flipped}"
    foreign = TokenSigner(generate_keypair()[0]).mint(ADMIN, Role.ADMIN)
    unsigned = jwt.encode({**claims, "sub": ADMIN}, None, algorithm="none")
    # Algorithm confusion: an HMAC "signed" with the public key, built by hand (PyJWT refuses).
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    hs_body = _b64(json.dumps({**claims, "sub": ADMIN}).encode())
    mac = hmac.new(keypair[1].encode(), f"{hs_header}.{hs_body}".encode(), hashlib.sha256)
    hs256 = f"{hs_header}.{hs_body}.{_b64(mac.digest())}"
    tokens = {
        "expired": expired,
        "escalated": escalated,
        "bad-signature": bad_signature,
        "foreign-key": foreign,
        "alg-none": unsigned,
        "hs256-with-public-key": hs256,
        "garbage": "not.a.token",
    }
    client.cookies.clear()
    for method, path, _ in _routes(client.app):
        for name, token in tokens.items():
            answer = await _call(client, method, path, headers=_bearer(token))
            assert answer.status_code == 401, f"{name} {method} {path}: {answer.status_code}"
            # The same token in the cookie is no better.
            client.cookies.set("eas_access", token)
            answer = await _call(client, method, path)
            client.cookies.clear()
            assert answer.status_code == 401, f"cookie {name} {method} {path}"


async def test_csrf_required_for_cookie_auth_on_unsafe_methods_not_for_bearer(client, admin):
    session = await client.login(ADMIN, ADMIN_PASSWORD, keep_cookies=True)
    csrf = client.cookies["eas_csrf"]
    unsafe = [(m, p) for m, p, _ in _routes(client.app) if m in ("POST", "PUT", "PATCH", "DELETE")]
    assert len(unsafe) >= 8
    PATH_VALUES["username"] = "nobody-here"  # a passing request must not delete anyone real
    try:
        for method, path in unsafe:
            missing = await _call(client, method, path)
            assert missing.status_code == 403, f"{method} {path} without CSRF header"
            assert "CSRF" in missing.json()["detail"]
            wrong = await _call(client, method, path, headers={"X-CSRF-Token": "forged"})
            assert wrong.status_code == 403, f"{method} {path} with a wrong CSRF header"
            ok = await _call(client, method, path, headers={"X-CSRF-Token": csrf})
            assert ok.status_code not in (401, 403), f"{method} {path} with CSRF: {ok.text}"
        # Reads by cookie need no CSRF token.
        assert (await client.get("/api/settings")).status_code == 200
        # A Bearer request is exempt, even when cookies ride along.
        bearer = await client.patch(
            "/api/settings",
            json={"patch": {"identity": {"name": "By bearer"}}},
            headers=session.headers,
        )
        assert bearer.status_code == 200
        client.cookies.clear()
        bearer_only = await client.patch(
            "/api/settings",
            json={"patch": {"identity": {"name": "Bearer only"}}},
            headers=session.headers,
        )
        assert bearer_only.status_code == 200
    finally:
        PATH_VALUES["username"] = ADMIN


async def test_csrf_cookie_planted_by_a_sibling_site_does_not_pass(client, admin):
    # An attacker who can set cookies (a sibling subdomain) sets both cookie and header to
    # the same value; the access token is bound to the CSRF token it was issued with.
    await client.login(ADMIN, ADMIN_PASSWORD, keep_cookies=True)
    client.cookies.set("eas_csrf", "attacker-chosen")
    answer = await client.patch(
        "/api/settings",
        json={"patch": {"identity": {"name": "Planted"}}},
        headers={"X-CSRF-Token": "attacker-chosen"},
    )
    assert answer.status_code == 403
    client.cookies.clear()


async def test_no_secret_password_or_hash_in_any_get_answer(client, admin, operator, viewer):
    from httpx import AsyncClient  # noqa: F401

    saved = await client.put(
        "/api/settings",
        json={
            "settings": {
                "identity": {"callsign": "WXYZ"},
                "feeds": {
                    "ipaws": {
                        "enabled": True,
                        "url": "https://ipaws.example/feed",
                        "pin": PIN,
                        "client_key_pem": KEY,
                    }
                },
            }
        },
        headers=admin.headers,
    )
    assert saved.status_code == 200
    await client.patch(
        "/api/settings", json={"patch": {"identity": {"name": "Second"}}}, headers=admin.headers
    )
    secrets = [PIN, "secretmaterial", ADMIN_PASSWORD, "oper-1-password", "$argon2", "password_hash"]
    schema = client.app.openapi()
    gets = [p for p, item in schema["paths"].items() if "get" in item]
    assert len(gets) >= 12
    bodies = 0
    for path in gets:
        for session in (admin, operator, viewer):
            answer = await client.get(_url(path), headers=session.headers)
            if answer.status_code != 200:
                continue
            bodies += 1
            for secret in secrets:
                assert secret not in answer.text, f"{secret!r} in GET {path}"
    assert bodies >= 20
    # Also the bus and the Redis copy of the document.
    redis = client.app.state.redis
    for key in await redis.keys(f"{client.app.state.settings_service.namespace}:*"):
        if await redis.type(key) == "stream":
            entries = await redis.xrange(key)
            blob = str(entries)
        elif await redis.type(key) == "string":
            blob = str(await redis.get(key))
        else:
            continue
        assert PIN not in blob and "secretmaterial" not in blob, key


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
async def test_docs_offer_the_password_flow(client, path):
    answer = await client.get(path)
    assert answer.status_code == 200
    if path == "/openapi.json":
        schemes = answer.json()["components"]["securitySchemes"]
        assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/auth/token"
