"""Every route of every HTTP service declares its permission, and enforces it.

The routes are enumerated from each service's OpenAPI document; only the ``health`` tag
(healthz, readyz, metrics, asyncapi.json) and the routes marked ``x-public: true`` (station-api's
login, refresh, logout and setup) are left out. For every other operation:

- the route has exactly one ``servicekit.auth.dependencies.require(...)`` dependency
  (its permission);
- no token: 401 with ``WWW-Authenticate: Bearer``;
- an expired token, a token whose signature or claims were altered, a token signed by another
  key: 401;
- a token of every role below the least role holding the permission: 403;
- a token of that least role passes the gate (neither 401 nor 403).

With the anonymous-read switch on, a request without a token is let through exactly on the
routes whose permission is in ``ANONYMOUS_PERMISSIONS`` (read permissions only).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from eas_testkit.services import Operation, Resources, build_app, http_services, operations
from servicekit.auth.dependencies import route_permissions
from servicekit.auth.permissions import (
    ANONYMOUS_PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLE_RANK,
    Permission,
    Role,
)
from servicekit.auth.tokens import TokenSigner, generate_keypair

pytestmark = pytest.mark.integration

BODY_METHODS = {"POST", "PUT", "PATCH"}


@pytest.fixture
def resources(database_url: str, redis_url: str, bus_namespace: str, tmp_path: Path) -> Resources:
    return Resources(database_url, redis_url, bus_namespace, tmp_path)


async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://service", timeout=60
        ) as http:
            yield http


def _protected(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if "health" not in op.tags and not op.public]


def _permission(op: Operation) -> Permission:
    found = route_permissions(op.route.dependant)
    assert found, (
        f"{op.method} {op.path} declares no permission: add a "
        "Depends(servicekit.auth.dependencies.require(Permission...)) or mark it x-public"
    )
    assert len(found) == 1, f"{op.method} {op.path} names several permissions: {found}"
    return found[0]


def _least_role(permission: Permission) -> Role:
    holders = [r for r in Role if permission in ROLE_PERMISSIONS[r]]
    assert holders, f"no role holds {permission}"
    return min(holders, key=ROLE_RANK.__getitem__)


async def _call(http: httpx.AsyncClient, op: Operation, token: str | None) -> httpx.Response:
    kwargs: dict[str, Any] = {}
    if op.method in BODY_METHODS:
        kwargs["json"] = {}
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    http.cookies.clear()  # only the token under test authenticates
    return await http.request(op.method, op.url(), headers=headers, **kwargs)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad_tokens(resources: Resources) -> dict[str, str]:
    signer = resources.signer
    expired = signer.mint("test-admin", Role.ADMIN, ttl_s=60, now=time.time() - 3600)
    good = signer.mint("test-admin", Role.ADMIN, ttl_s=600)
    header, payload, signature = good.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    viewer = signer.mint("test-viewer", Role.VIEWER, ttl_s=600)
    v_header, v_payload, v_signature = viewer.split(".")
    claims = json.loads(base64.urlsafe_b64decode(v_payload + "=="))
    escalated = _b64(json.dumps({**claims, "role": "admin"}).encode())
    return {
        "expired": expired,
        "signature-altered": f"{header}.{payload}.{flipped}",
        "claims-altered": f"{v_header}.{escalated}.{v_signature}",
        "signature-dropped": f"{header}.{payload}.",
        "other-key": TokenSigner(generate_keypair()[0]).mint("test-admin", Role.ADMIN),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("service", http_services())
async def test_every_route_declares_one_permission(service: str, resources: Resources) -> None:
    app = await build_app(service, resources)
    ops = operations(app)
    protected = _protected(app)
    assert len(protected) >= 5, f"{service}: only {len(protected)} protected operations found"
    for op in protected:
        _permission(op)
    for op in ops:
        if op.public:
            # A public route is an auth step (log in, refresh, log out, set up), never data.
            assert "auth" in op.tags, f"{op.method} {op.path} is x-public outside auth"
            assert not route_permissions(op.route.dependant), f"{op.path}: public and guarded"
        if "health" in op.tags:
            assert op.method == "GET" and not op.path.startswith("/api/"), op.path
    public = {(op.method, op.path) for op in ops if op.public}
    if service == "station-api":
        from station_api.routes import PUBLIC_ROUTES

        assert public == set(PUBLIC_ROUTES)
        assert ("POST", "/api/auth/token") in public and ("POST", "/api/auth/setup") in public
    else:
        assert not public, f"{service} has public routes: {public}"


@pytest.mark.parametrize("service", http_services())
async def test_every_route_rejects_missing_bad_and_too_weak_tokens(
    service: str, resources: Resources
) -> None:
    app = await build_app(service, resources)
    bad = _bad_tokens(resources)
    checked_403 = 0
    async for http in _running(app):
        for op in _protected(app):
            where = f"{service} {op.method} {op.path}"
            permission = _permission(op)

            answer = await _call(http, op, None)
            assert answer.status_code == 401, f"{where} without token: {answer.status_code}"
            assert answer.headers.get("www-authenticate") == "Bearer", where

            for name, token in bad.items():
                answer = await _call(http, op, token)
                assert answer.status_code == 401, f"{where} {name}: {answer.status_code}"
                assert answer.headers.get("www-authenticate") == "Bearer", f"{where} {name}"

            least = _least_role(permission)
            for role in Role:
                if ROLE_RANK[role] >= ROLE_RANK[least]:
                    continue
                answer = await _call(http, op, resources.token(role))
                assert answer.status_code == 403, f"{where} as {role}: {answer.status_code}"
                assert permission.value in answer.json()["detail"], where
                checked_403 += 1

            # The least role passes the gate: the path reached the route and the check is
            # the permission, not something stricter.
            answer = await _call(http, op, resources.token(least))
            assert answer.status_code not in (401, 403, 405), (
                f"{where} as {least}: {answer.status_code} {answer.text[:200]}"
            )
            assert answer.status_code < 500, f"{where} as {least}: {answer.text[:300]}"
    assert checked_403 > 0, f"{service}: no route needs more than a viewer"


def test_anonymous_permissions_are_read_permissions_only() -> None:
    assert ANONYMOUS_PERMISSIONS, "the anonymous-read switch opens nothing"
    for permission in ANONYMOUS_PERMISSIONS:
        assert permission.value.endswith(":read"), permission
        # Nothing private: no settings, no audit, no users, nothing only an operator may read.
        assert permission in ROLE_PERMISSIONS[Role.VIEWER], permission
    assert Permission.SETTINGS_READ not in ANONYMOUS_PERMISSIONS
    assert Permission.AUDIT_READ not in ANONYMOUS_PERMISSIONS
    assert Permission.ACCOUNT_SELF not in ANONYMOUS_PERMISSIONS


@pytest.mark.parametrize("service", http_services())
async def test_anonymous_read_opens_only_read_routes(service: str, resources: Resources) -> None:
    app = await build_app(service, resources, anonymous_read=True)
    opened = 0
    async for http in _running(app):
        for op in _protected(app):
            where = f"{service} {op.method} {op.path}"
            permission = _permission(op)
            answer = await _call(http, op, None)
            if permission in ANONYMOUS_PERMISSIONS:
                assert op.method in ("GET", "HEAD"), f"{where}: anonymous on an unsafe method"
                assert answer.status_code not in (401, 403), f"{where}: {answer.status_code}"
                assert answer.status_code < 500, f"{where}: {answer.text[:300]}"
                opened += 1
            else:
                assert answer.status_code == 401, f"{where} anonymous: {answer.status_code}"
            # A bad token is never "anonymous": it is refused even with the switch on.
            answer = await _call(http, op, "not.a.token")
            assert answer.status_code == 401, f"{where} garbage token: {answer.status_code}"
    if service != "station-api":
        assert opened >= 2, f"{service}: anonymous read opened {opened} routes"


def test_a_route_without_permission_is_caught() -> None:
    # The guard of the tests above: a route that forgot its require(...) is reported.
    from fastapi import APIRouter, Depends

    from servicekit.auth.dependencies import require

    app = FastAPI()
    router = APIRouter(prefix="/api/x", tags=["x"])

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {}

    @router.get("/guarded")
    async def guarded(_: Any = Depends(require(Permission.ALERTS_READ))) -> dict[str, str]:
        return {}

    app.include_router(router)
    by_path = {op.path: op for op in _protected(app)}
    assert _permission(by_path["/api/x/guarded"]) == Permission.ALERTS_READ
    with pytest.raises(AssertionError, match="declares no permission"):
        _permission(by_path["/api/x/open"])
