"""Host resources and dependency health; the common endpoints every service has."""

from __future__ import annotations

import os

from station_api.app import asyncapi_document


async def test_host_resources_without_command_lines_or_environment(client, viewer, settings):
    answer = await client.get("/api/system/host", headers=viewer.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["cpu"]["count"] >= 1 and 0 <= body["cpu"]["percent"] <= 100
    assert body["memory"]["total_bytes"] > 0 and body["uptime_s"] > 0
    assert body["disks"][0]["path"] == "/"
    assert len(body["cpu"]["load_average"]) in (0, 3)
    text = answer.text
    lowered = text.lower()
    for word in ("cmdline", "environ", "argv", "pid", "username", "exe"):
        assert f'"{word}' not in lowered, word
    # Nothing from this process's command line or environment leaks.
    assert settings.database_url not in text and "pytest" not in lowered
    for name, value in os.environ.items():
        if len(value) >= 8 and value not in ("/usr/bin", "/bin"):
            assert value not in text, f"environment variable {name} leaked"


async def test_dependencies_with_latency(client, viewer):
    answer = await client.get("/api/system/dependencies", headers=viewer.headers)
    assert answer.status_code == 200
    body = answer.json()
    for name in ("database", "redis"):
        assert body[name]["ok"] is True and body[name]["latency_ms"] >= 0
        assert body[name]["error"] is None


async def test_dependency_failure_reports_type_not_url(client, viewer, settings):
    real = client.app.state.redis

    class Down:
        async def ping(self) -> None:
            raise ConnectionError(f"cannot reach {settings.redis_url}")

    client.app.state.redis = Down()
    try:
        answer = await client.get("/api/system/dependencies", headers=viewer.headers)
    finally:
        client.app.state.redis = real
    body = answer.json()
    assert body["redis"] == {
        "name": "redis",
        "ok": False,
        "latency_ms": None,
        "error": "ConnectionError",
    }
    assert settings.redis_url not in answer.text


async def test_health_metrics_asyncapi_and_headers(client):
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "station-api"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "redis": "ok",
        "signing_key": "ok",
    }
    metrics = await client.get("/metrics")
    assert "http_requests_total" in metrics.text
    doc = (await client.get("/asyncapi.json")).json()
    assert doc == asyncapi_document()
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert {"settings.changed", "system.alarm", "service.heartbeat"} <= names
    assert set(doc["operations"]) == {
        "send_settings_changed",
        "send_system_alarm",
        "send_service_heartbeat",
        "receive_service_heartbeat",
        "send_auth_revocations",
        "receive_auth_revocations",
    }
    assert ready.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in ready.headers["content-security-policy"]


async def test_cors_closed_and_body_limit(client, admin):
    preflight = await client.options(
        "/api/settings",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    huge = await client.put(
        "/api/settings",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413


async def test_own_heartbeat_appears_in_the_fleet(client, viewer):
    import asyncio

    for _ in range(50):
        view = (await client.get("/api/system/fleet", headers=viewer.headers)).json()
        if any(i["service"] == "station-api" for i in view["instances"]):
            break
        await asyncio.sleep(0.1)
    mine = next(i for i in view["instances"] if i["service"] == "station-api")
    assert mine["instance"] == "test-1" and "fleet_instances" in mine["figures"]


async def test_readyz_names_the_failed_dependency_not_the_drivers_message(client):
    runtime = client.app.state.runtime

    async def broken() -> None:
        raise ConnectionError("Error connecting to redis://:hunter2@10.1.2.3:6379 (v7.2.4)")

    real, runtime.redis.ping = runtime.redis.ping, broken
    try:
        answer = await client.get("/readyz")
    finally:
        runtime.redis.ping = real
    assert answer.status_code == 503
    assert answer.json()["checks"]["redis"] == "error: unavailable"
    assert "hunter2" not in answer.text and "10.1.2.3" not in answer.text


async def test_docs_are_served_from_the_station_under_a_strict_csp(client):
    import re

    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    # Nothing from another origin, and no inline script.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), page.text
    assert "<script>" not in page.text
    csp = page.headers["content-security-policy"]
    assert (
        "script-src 'self';" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "cdn" not in csp
    for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
        answer = await client.get(asset)
        assert answer.status_code == 200 and answer.content, asset
    assert (await client.get("/docs/../settings.py")).status_code == 404
    assert (await client.get("/docs/index.html")).status_code == 404
    spec = await client.get(re.search(r'data-openapi="([^"]+)"', page.text).group(1))
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
