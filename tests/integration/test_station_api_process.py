"""station-api as a station runs it: `create-admin` and `serve` as processes configured only by
environment variables; its tokens verified locally by another service (alerts-api), whose
cookie-authenticated writes need the CSRF token too (servicekit.auth.dependencies)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app as create_alerts_app
from alerts_api.migrate import upgrade_url as upgrade_alerts
from alerts_api.settings import AlertsApiSettings
from servicekit.auth.tokens import write_keypair
from servicekit.embedded import free_port

pytestmark = pytest.mark.integration

PASSWORD = "an admin password 4 tests"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "keys")


@pytest.fixture
def station_env(
    database_url: str, redis_url: str, bus_namespace: str, keys: tuple[Path, Path]
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EAS_", "STATION_API_", "ALERTS_API_"))
    }
    env.update(
        EAS_DATABASE_URL=database_url,
        EAS_REDIS_URL=redis_url,
        EAS_BUS_NAMESPACE=bus_namespace,
        EAS_AUTH_SIGNING_KEY_FILE=str(keys[0]),
        EAS_LOG_JSON="true",
        STATION_API_PASSWORD_MEMORY_KIB="8192",
        STATION_API_PASSWORD_TIME_COST="1",
    )
    return env


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station_api", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def station_api(station_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "station_api", "serve", "--port", str(port)],
        env=station_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "station-api did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_create_admin_cli(station_env: dict[str, str]) -> None:
    weak = _cli(station_env, "create-admin", "--username", "ops", stdin="short\n")
    assert weak.returncode == 1 and "password" in weak.stderr
    made = _cli(station_env, "create-admin", "--username", "ops", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert PASSWORD not in made.stdout + made.stderr
    again = _cli(station_env, "create-admin", "--username", "ops", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already exists" in again.stderr


async def test_tokens_from_the_process_work_in_another_service(
    station_env: dict[str, str],
    station_api: str,
    keys: tuple[Path, Path],
    database_url: str,
    redis_url: str,
    bus_namespace: str,
) -> None:
    made = _cli(station_env, "create-admin", "--username", "ops", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    async with httpx.AsyncClient(base_url=station_api) as station:
        # Users exist now: the setup route is closed whatever token is offered.
        setup = await station.post(
            "/api/auth/setup",
            json={"setup_token": "x", "username": "other", "password": "other password 1"},
        )
        assert setup.status_code == 403
        login = await station.post(
            "/api/auth/token", data={"username": "ops", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        tokens = login.json()
        me = await station.get("/api/auth/me")  # the cookie alone authenticates a read
        assert me.json()["role"] == "admin"
        fleet = await station.get("/api/system/fleet")
        assert any(i["service"] == "station-api" for i in fleet.json()["instances"]) or (
            fleet.json()["rebuilt"] is True
        )

    await upgrade_alerts(database_url)
    alerts = create_alerts_app(
        AlertsApiSettings(
            database_url=database_url,
            redis_url=redis_url,
            bus_namespace=bus_namespace,
            auth_public_key_file=keys[1],
            instance="alerts-it",
            run_consumer=False,
        )
    )
    async with LifespanManager(alerts) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert (await http.get("/api/alerts", headers=bearer)).status_code == 200
            # Bearer writes need no CSRF token (the body is wrong on purpose: 422, not 403).
            assert (await http.post("/api/alerts", json={}, headers=bearer)).status_code == 422

            http.cookies.set("eas_access", tokens["access_token"])
            http.cookies.set("eas_csrf", tokens["csrf_token"])
            assert (await http.get("/api/alerts")).status_code == 200
            refused = await http.post("/api/alerts", json={})
            assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
            passed = await http.post(
                "/api/alerts", json={}, headers={"X-CSRF-Token": tokens["csrf_token"]}
            )
            assert passed.status_code == 422
