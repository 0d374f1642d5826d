"""The one-port gateway: dispatch by prefix, the composite lifespan, readiness, discovery."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from eas_station.dashboard import CSP
from eas_station.gateway import (
    Gateway,
    GatewayError,
    GatewaySettings,
    Hosted,
    call_get,
    create_gateway,
    discover,
)
from servicekit.manifest import ServiceManifest, installed
from servicekit.settings import ServiceSettings


def fake_app(
    name: str,
    log: list[str],
    *,
    fail_start: bool = False,
    ready: bool = True,
    state: dict[str, Any] | None = None,
) -> Starlette:
    """A tiny service: records its lifespan, echoes what it was asked for."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.append(f"start {name}")
        if fail_start:
            raise ConnectionError("database unreachable")
        try:
            yield dict(state or {})
        finally:
            log.append(f"stop {name}")

    async def echo(request: Request) -> Response:
        return JSONResponse(
            {
                "app": name,
                "path": request.url.path,
                "route_path": request.scope.get("route").path
                if request.scope.get("route")
                else None,
                "root_path": request.scope.get("root_path", ""),
                "state": {k: v for k, v in request.scope.get("state", {}).items()},
            }
        )

    async def readyz(request: Request) -> Response:
        return JSONResponse(
            {"ready": ready, "checks": {"db": "ok" if ready else "down"}},
            status_code=200 if ready else 503,
        )

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"app": name, "path": websocket.url.path})
        await websocket.close()

    return Starlette(
        routes=[
            Route("/readyz", readyz),
            Route("/healthz", echo),
            Route("/docs", echo),
            Route("/api/{rest:path}", echo),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )


def three(log: list[str], **kw: Any) -> list[Hosted]:
    return [
        Hosted("alpha", fake_app("alpha", log, state={"who": "alpha"}), ("/api/alpha",)),
        Hosted("beta", fake_app("beta", log, **kw), ("/api/beta", "/api/beta-extra")),
        Hosted("socket", fake_app("socket", log), ("/ws",)),
    ]


@contextlib.asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(gateway) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def test_dispatch_by_prefix() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with serve(gateway) as client:
        r = await client.get("/api/alpha/items?x=1")
        assert r.status_code == 200
        assert r.json()["app"] == "alpha" and r.json()["path"] == "/api/alpha/items"
        assert (await client.get("/api/alpha")).json()["app"] == "alpha"
        assert (await client.get("/api/beta/1")).json()["app"] == "beta"
        assert (await client.get("/api/beta-extra")).json()["app"] == "beta"
        # A prefix matches whole path segments only.
        missing = await client.get("/api/alphabet")
        assert missing.status_code == 404
        assert "nothing at /api/alphabet" in missing.json()["detail"]
        assert (await client.get("/nowhere")).status_code == 404


async def test_lifespan_state_reaches_requests() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with serve(gateway) as client:
        assert (await client.get("/api/alpha/x")).json()["state"] == {"who": "alpha"}
        assert (await client.get("/api/beta/x")).json()["state"] == {}


async def test_service_root_routes_are_rewritten() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with serve(gateway) as client:
        r = await client.get("/services/beta/healthz")
        assert r.status_code == 200
        body = r.json()
        assert body["app"] == "beta"
        assert body["route_path"] == "/healthz"
        assert body["root_path"] == "/services/beta"
        docs = (await client.get("/services/alpha/docs")).json()
        assert docs["app"] == "alpha" and docs["route_path"] == "/docs"
        assert (await client.get("/services/nope/healthz")).status_code == 404
        assert (await client.get("/services/alpha")).status_code == 404


async def test_gateway_health_and_readiness() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with serve(gateway) as client:
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok"
        assert set(health["hosted"]) == {"alpha", "beta", "socket"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        doc = ready.json()
        assert doc["ready"] is True
        assert doc["services"]["beta"]["detail"]["checks"] == {"db": "ok"}


async def test_not_ready_when_one_service_is_not() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log, ready=False))
    async with serve(gateway) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        doc = ready.json()
        assert doc["ready"] is False
        assert doc["services"]["alpha"]["ready"] is True
        assert doc["services"]["beta"]["ready"] is False
        assert doc["services"]["beta"]["status"] == 503


async def test_not_ready_before_startup() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    ok, doc = await gateway.readiness()
    assert ok is False
    assert doc["services"]["alpha"] == {"ready": False, "status": "not started"}


async def test_lifespans_enter_in_order_and_exit_in_reverse() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with LifespanManager(gateway):
        assert log == ["start alpha", "start beta", "start socket"]
        assert gateway.started
    assert log[3:] == ["stop socket", "stop beta", "stop alpha"]
    assert not gateway.started
    assert not any(h.started for h in gateway.hosted)


async def test_a_failing_startup_fails_the_gateway_and_unwinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log, fail_start=True))
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with caplog.at_level(logging.ERROR):
        await gateway({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": "beta failed to start: ConnectionError: database unreachable",
        }
    ]
    # alpha had started: it is stopped again; socket never started.
    assert log == ["start alpha", "start beta", "stop alpha"]
    assert "beta failed to start" in caplog.text


async def test_a_failing_startup_surfaces_through_lifespan_manager() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log, fail_start=True))
    # asgi-lifespan does not read lifespan.startup.failed: the failure reaches it as its own
    # startup timeout (uvicorn, which does read it, exits instead).
    with pytest.raises(TimeoutError):
        async with LifespanManager(gateway, startup_timeout=1):
            pass
    assert log == ["start alpha", "start beta", "stop alpha"]


async def test_websocket_dispatch_and_unknown_socket_path(asgi_websocket: Any) -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with LifespanManager(gateway):
        async with asgi_websocket(gateway, "/ws") as ws:
            assert await ws.receive_json() == {"app": "socket", "path": "/ws"}
        with pytest.raises(asgi_websocket.Closed) as closed:
            async with asgi_websocket(gateway, "/elsewhere"):
                pass
        assert closed.value.code == 1008
    assert log[-1] == "stop alpha"


async def test_dashboard_is_served_with_a_strict_csp() -> None:
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(station_name="Test <Station>"), hosted=three(log))
    async with serve(gateway) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP.split("style-src")[0]
        assert "Test &lt;Station&gt;" in page.text
        assert "<script>" not in page.text  # no inline script
        assert 'data-login="false"' in page.text  # no station-api among the hosted
        for asset in ("app.js", "live.js", "ui.js", "dashboard.css", "icon.svg"):
            r = await client.get(f"/static/{asset}")
            assert r.status_code == 200, asset
            assert r.headers["content-security-policy"] == CSP
        assert (await client.get("/static/../gateway.py")).status_code == 404
        js = (await client.get("/static/app.js")).headers["content-type"]
        assert "javascript" in js
        assert (await client.get("/favicon.ico", follow_redirects=False)).status_code == 301


async def test_call_get_in_process() -> None:
    log: list[str] = []
    app = fake_app("x", log)
    status, body = await call_get(app, "/readyz")
    assert status == 200 and b'"ready":true' in body


def test_prefix_claimed_twice_is_refused() -> None:
    log: list[str] = []
    with pytest.raises(GatewayError, match="claimed by"):
        Gateway(
            [
                Hosted("a", fake_app("a", log), ("/api/x",)),
                Hosted("b", fake_app("b", log), ("/api/x",)),
            ]
        )


# ---- discovery -----------------------------------------------------------------------------


def _fake_manifest(name: str) -> ServiceManifest:
    return ServiceManifest(
        name=name,
        summary="a fake service",
        prefixes=(f"/api/{name}",),
        settings=ServiceSettings,
        create_app=lambda settings=None: fake_app(name, []),
        default_port=0,
    )


def test_discover_hosts_every_manifest_but_the_disabled() -> None:
    manifests = [_fake_manifest("fake"), _fake_manifest("off")]
    hosted = discover(GatewaySettings(disable="off"), manifests)
    assert [(h.name, h.prefixes) for h in hosted] == [("fake", ("/api/fake",))]


def test_discover_reads_the_installed_manifests() -> None:
    hosted = discover(GatewaySettings(disable="eas-monitor,station-api,alerts-api,audio-control"))
    assert "ws-broadcaster" in [h.name for h in hosted]
    assert {m.name for m in installed()} >= {
        "alerts-api",
        "station-api",
        "ws-broadcaster",
        "eas-monitor",
    }


def test_discover_refuses_a_broken_service(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        name, value = "broken", "broken_service.manifest:MANIFEST"

        def load(self) -> Any:
            raise ImportError("cannot import name 'thing'")

    monkeypatch.setattr(
        "servicekit.manifest.entry_points", lambda group: [Broken()] if group else []
    )
    with pytest.raises(GatewayError, match=r"broken: loading broken_service\.manifest:MANIFEST"):
        discover(GatewaySettings())


def test_gateway_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAS_GATEWAY_DISABLE", "station-api, ws-broadcaster")
    monkeypatch.setenv("EAS_ANONYMOUS_READ", "true")
    settings = GatewaySettings()
    assert settings.disable == ["station-api", "ws-broadcaster"]
    assert settings.anonymous_read is True


def test_runner_starts_the_gateway_and_the_pollers(tmp_path: Any) -> None:
    import argparse

    from eas_station.runner import children

    args = argparse.Namespace(host="127.0.0.1", port=8099)
    # Even with no feed configured: the pollers idle until station settings name one.
    kids = children(args, {})
    assert [k.name for k in kids] == ["gateway", "pollers"]
    assert kids[0].argv[1:] == [
        "-m",
        "eas_station.gateway",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "8099",
    ]


def test_the_gateway_server_does_not_trust_loopback_forwarded_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Uvicorn's default trusts X-Forwarded-For from 127.0.0.1: on the one-machine station,
    # any local process could then choose the address the throttle and the audit log see.
    import uvicorn

    from eas_station import gateway

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(gateway, "create_gateway", lambda settings: object())
    assert gateway.main(["serve", "--no-migrate"]) == 0
    assert seen["proxy_headers"] is False


async def test_unknown_hosts_and_foreign_websocket_origins_are_refused(
    asgi_websocket: Any,
) -> None:
    # DNS rebinding: a page whose name now points at 127.0.0.1 arrives with its own Host.
    gateway = create_gateway(GatewaySettings(), hosted=[], dashboard=False)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
        answer = await http.get("/healthz")
        assert answer.status_code == 421 and "EAS_GATEWAY_ALLOWED_HOSTS" in answer.text
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        assert (await http.get("/healthz")).status_code == 200
    wide = create_gateway(GatewaySettings(allowed_hosts=".example.org"), hosted=[], dashboard=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wide), base_url="http://eas.example.org"
    ) as http:
        assert (await http.get("/healthz")).status_code == 200
    log: list[str] = []
    gateway = create_gateway(GatewaySettings(), hosted=three(log))
    async with LifespanManager(gateway):
        for origin in (b"https://evil.example", b"null"):
            with pytest.raises(asgi_websocket.Closed) as closed:
                async with asgi_websocket(gateway, "/ws", headers=[(b"origin", origin)]):
                    pass
            assert closed.value.code == 1008 and "Origin" in closed.value.reason
        async with asgi_websocket(
            gateway, "/ws", headers=[(b"origin", b"http://localhost:8080")]
        ) as ws:
            assert await ws.receive_json() == {"app": "socket", "path": "/ws"}


def test_the_embedded_bus_gets_a_password_kept_out_of_sight(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import stat

    import redis

    from eas_station.runner import station_env

    for name in ("EAS_REDIS_URL", "EAS_GATEWAY_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    env, embedded = station_env(argparse.Namespace(host="127.0.0.1"), tmp_path)
    assert embedded is not None
    try:
        url = env["EAS_REDIS_URL"]
        assert redis.Redis.from_url(url).ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=embedded.port).ping()
        url_file = tmp_path / "redis" / "url"
        assert url_file.read_text() == url
        assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
        assert env["EAS_GATEWAY_ALLOWED_HOSTS"] == "localhost,127.0.0.1,::1"
    finally:
        embedded.stop()
