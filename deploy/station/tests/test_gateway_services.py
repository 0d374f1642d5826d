"""The gateway hosting every real service in one process,
against real Redis and PostgreSQL: login, cookies, /ws, the per-service root routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager

from alerts_api.migrate import upgrade_url as upgrade_alerts
from alerts_api.settings import AlertsApiSettings
from audio_control.migrate import upgrade_url as upgrade_audio
from audio_control.settings import AudioControlSettings
from eas_monitor.migrate import upgrade_url as upgrade_monitor
from eas_monitor.settings import EasMonitorSettings
from eas_schemas.streams import ALERTS_INGESTED
from eas_station.gateway import Gateway, GatewaySettings, create_gateway
from eas_testkit.factories import ingested_envelope, make_alert
from servicekit.auth.tokens import write_keypair
from servicekit.bus import SyncBus
from station_api.migrate import upgrade_url as upgrade_station
from station_api.settings import StationApiSettings
from ws_broadcaster.settings import WsBroadcasterSettings

pytestmark = pytest.mark.integration

ADMIN, PASSWORD = "admin", "correct horse battery staple"


@pytest.fixture
async def gateway(
    tmp_path: Path, database_url: str, redis_url: str, bus_namespace: str
) -> AsyncIterator[Gateway]:
    private, public = write_keypair(tmp_path / "keys")
    common: dict[str, Any] = dict(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        auth_public_key_file=public,
        anonymous_read=False,
        heartbeat_interval_s=0.5,
        instance="gw-test",
    )
    await upgrade_alerts(database_url)
    await upgrade_station(database_url)
    await upgrade_monitor(database_url)
    await upgrade_audio(database_url)
    overrides = {
        "alerts-api": AlertsApiSettings(
            **common, station_same_codes=["039035"], outbox_interval_s=0.2
        ),
        "station-api": StationApiSettings(
            **common, signing_key_file=private, password_memory_kib=1024, password_time_cost=1
        ),
        "eas-monitor": EasMonitorSettings(**common, data_dir=tmp_path / "monitor"),
        "audio-control": AudioControlSettings(
            **common, run_playout=False, aired_dir=tmp_path / "aired"
        ),
        "ws-broadcaster": WsBroadcasterSettings(
            **{k: v for k, v in common.items() if k != "database_url"}
        ),
    }
    gw = create_gateway(GatewaySettings(anonymous_read=False), overrides=overrides)
    async with LifespanManager(gw, startup_timeout=60, shutdown_timeout=30):
        yield gw


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8080") as client:
        yield client


async def _login(gateway: Gateway, http: httpx.AsyncClient) -> None:
    token = gateway.by_name["station-api"].app.state.setup_token  # type: ignore[attr-defined]
    made = await http.post(
        "/api/auth/setup", json={"setup_token": token, "username": ADMIN, "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    login = await http.post("/api/auth/token", data={"username": ADMIN, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert "eas_access" in http.cookies and "eas_csrf" in http.cookies


async def test_one_port_serves_every_service(gateway: Gateway, http: httpx.AsyncClient) -> None:
    assert set(gateway.by_name) == {
        "alerts-api",
        "station-api",
        "eas-monitor",
        "ws-broadcaster",
        "audio-control",
    }
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["services"]) == set(gateway.by_name)

    # Not anonymous: reads need a token; the page offers a login.
    assert (await http.get("/api/alerts")).status_code == 401
    page = await http.get("/")
    assert 'data-login="true"' in page.text and 'data-anonymous="false"' in page.text

    await _login(gateway, http)
    listed = await http.get("/api/alerts", params={"status": "active"})
    assert listed.status_code == 200 and listed.json()["items"] == []
    settings = await http.get("/api/settings")
    assert settings.status_code == 200
    assert settings.json()["settings"]["identity"]["timezone"]
    assert (await http.get("/api/system/fleet")).status_code == 200
    inputs = await http.get("/api/eas-monitor/inputs")
    assert inputs.status_code == 200, inputs.text

    openapi = await http.get("/services/alerts-api/openapi.json")
    assert openapi.status_code == 200 and "/api/alerts" in openapi.json()["paths"]
    docs = await http.get("/services/station-api/docs")
    assert docs.status_code == 200 and "/services/station-api/openapi.json" in docs.text
    asyncapi = await http.get("/services/alerts-api/asyncapi.json")
    assert asyncapi.status_code == 200
    metrics = await http.get("/services/ws-broadcaster/metrics")
    assert metrics.status_code == 200 and "ws_clients" in metrics.text
    assert (await http.get("/services/alerts-api/healthz")).json()["service"] == "alerts-api"


async def test_ws_with_the_login_cookie_sees_a_stored_alert(
    gateway: Gateway,
    http: httpx.AsyncClient,
    redis_url: str,
    bus_namespace: str,
    asgi_websocket: Any,
) -> None:
    # Without a token the socket is refused with 4401 (the page then shows its login).
    async with asgi_websocket(gateway, "/ws") as anonymous:
        with pytest.raises(asgi_websocket.Closed) as closed:
            await anonymous.receive_until(lambda m: False, timeout=15)
        assert closed.value.code == 4401

    await _login(gateway, http)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    async with asgi_websocket(gateway, "/ws", [(b"cookie", cookie.encode())]) as ws:
        welcome = await ws.receive_until(lambda m: m["type"] == "welcome")
        assert welcome["principal"]["subject"] == ADMIN
        await ws.send_json({"type": "subscribe", "ref": "r1", "topics": ["alerts", "health"]})
        await ws.receive_until(lambda m: m["type"] == "subscribed" and m["topic"] == "alerts")

        alert = make_alert(event="Tornado Warning")
        client = redis.Redis.from_url(redis_url)
        SyncBus(client, bus_namespace).publish(ALERTS_INGESTED, ingested_envelope(alert))
        client.close()
        event = await ws.receive_until(
            lambda m: m["type"] == "event" and m["topic"] == "alerts", timeout=30
        )
        data = event["envelope"]["data"]["alert"]
        assert event["envelope"]["type"] == "alert.created"
        assert data["identifier"] == alert.identifier and data["relevant"] is True
        # The heartbeats of the hosted services come through the same socket.
        beat = await ws.receive_until(lambda m: m.get("topic") == "health", timeout=15)
        assert beat["envelope"]["data"]["service"] in gateway.by_name

    detail = await http.get(f"/api/alerts/{data['id']}")
    assert detail.status_code == 200
    assert detail.json()["alert"]["instruction"] == "Take shelter now."
    await asyncio.sleep(0)
