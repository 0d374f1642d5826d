"""A settings change reaches a running poller and alerts-api, and does what it says there.
station-api (its HTTP API, an admin logged in), alerts-api (app with its lifespan) and a
pollers runner (in a thread, as `pollers run` runs it) share one Redis and one database; the
settings are changed with PUT /api/settings and both services must apply the new version.

How fast is measured, not asserted (a loaded CI machine must not fail a correct station):
the latencies are printed here, and `bench/settings_propagation/run.py` runs this test
repeatedly and reports them against the 1 s target."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app as create_alerts_app
from alerts_api.migrate import upgrade_url as upgrade_alerts
from alerts_api.settings import AlertsApiSettings
from eas_schemas.envelope import decode_entry
from eas_schemas.streams import ALERT_EVENTS
from eas_testkit.factories import ingested, make_alert
from pollers.runner import Pollers
from pollers.settings import PollersSettings
from servicekit.auth.tokens import generate_keypair
from servicekit.bus import stream_key
from station_api.app import create_app as create_station_app
from station_api.migrate import upgrade_url as upgrade_station
from station_api.settings import StationApiSettings

pytestmark = pytest.mark.integration

ADMIN, PASSWORD = "settings-admin", "a long admin password 1"
# Generous: only a change that never arrives may fail the test; the 1 s target is the bench's.
APPLY_BOUND_S = 30.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, str]:
    private, public = generate_keypair()
    path = tmp_path / "signing.pem"
    path.write_text(private)
    return path, public


@pytest.fixture
async def station(
    database_url: str, redis_url: str, bus_namespace: str, keypair: tuple[Path, str]
) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_station(database_url)
    app = create_station_app(
        StationApiSettings(
            database_url=database_url,
            redis_url=redis_url,
            bus_namespace=bus_namespace,
            signing_key_file=keypair[0],
            instance="it-station",
            password_memory_kib=1024,
            password_time_cost=1,
        )
    )
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://station") as http:
            setup = await http.post(
                "/api/auth/setup",
                json={
                    "setup_token": app.state.setup_token,
                    "username": ADMIN,
                    "password": PASSWORD,
                },
            )
            assert setup.status_code == 201, setup.text
            login = await http.post(
                "/api/auth/token", data={"username": ADMIN, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            http.cookies.clear()
            http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            yield http


@pytest.fixture
async def alerts(
    database_url: str, redis_url: str, bus_namespace: str, keypair: tuple[Path, str]
) -> AsyncIterator[Any]:
    await upgrade_alerts(database_url)
    app = create_alerts_app(
        AlertsApiSettings(
            database_url=database_url,
            redis_url=redis_url,
            bus_namespace=bus_namespace,
            auth_public_key=keypair[1],
            station_same_codes=["039035"],  # the environment's codes, until the document's
            instance="it-alerts",
            run_consumer=False,
        )
    )
    async with LifespanManager(app):
        yield app


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "cap-env", tmp_path / "cap-station"
    first.mkdir()
    second.mkdir()
    fixtures = REPO / "tests" / "fixtures" / "cap" / "good"
    shutil.copy(fixtures / "national-npt.xml", first / "a.xml")
    shutil.copy(fixtures / "nws-tor-cuyahoga.xml", second / "b.xml")
    return first, second


@pytest.fixture
def pollers(redis_url: str, bus_namespace: str, folders: tuple[Path, Path]) -> Iterator[Pollers]:
    app = Pollers(
        PollersSettings(
            redis_url=redis_url,
            bus_namespace=bus_namespace,
            cap_folder=[folders[0]],
            cap_folder_interval_s=3600,
            instance="it-pollers",
        ),
        idle_ok=True,
    )
    thread = threading.Thread(target=app.run, name="pollers-run")
    thread.start()
    try:
        yield app
    finally:
        app.shutdown()
        thread.join(timeout=15)
    assert not thread.is_alive()


async def _updated_ids(aredis: Any, ns: str) -> list[int]:
    rows = await aredis.xrange(stream_key(ALERT_EVENTS, ns))
    out = []
    for _, fields in rows:
        envelope = decode_entry(fields)
        if envelope.type == "alert.updated":
            out.append(envelope.data["alert"]["id"])
    return out


async def test_settings_change_reaches_pollers_and_alerts_api(
    station: httpx.AsyncClient,
    alerts: Any,
    pollers: Pollers,
    folders: tuple[Path, Path],
    aredis: Any,
    bus_namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = alerts.state.alert_service
    follower = alerts.state.settings_follower
    lucas = await service.ingest(ingested(make_alert(same_codes=("039095",), ugc_codes=())))
    assert lucas.alert_id is not None
    assert [f.name for f in pollers.feeds] == [f"cap-folder:{folders[0]}"]

    current = (await station.get("/api/settings")).json()
    measured: list[tuple[str, float, float]] = []
    for step, (codes, folder) in enumerate(
        [(["039095"], folders[1]), (["039035", "039095"], folders[0])], start=1
    ):
        document = current["settings"]
        document["location"]["same_codes"] = codes
        document["feeds"]["cap_folders"] = [str(folder)]
        sent = time.monotonic()
        answer = await station.put("/api/settings", json={"settings": document})
        answered = time.monotonic()
        assert answer.status_code == 200, answer.text
        version = answer.json()["version"]
        assert version == step

        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - answered < APPLY_BOUND_S:
            now = time.monotonic()
            if "alerts-api" not in seen and follower.applied_version >= version:
                seen["alerts-api"] = now
            if "pollers" not in seen and pollers.settings_version >= version:
                seen["pollers"] = now
            await asyncio.sleep(0.002)
        for name in ("alerts-api", "pollers"):
            assert name in seen, f"{name} never applied settings v{version}"
            measured.append((f"v{version} {name}", seen[name] - answered, seen[name] - sent))
        assert [f.name for f in pollers.feeds] == [f"cap-folder:{folder}"]
        assert service.station_same == codes
        current = (await station.get("/api/settings")).json()

    # What the changes did: the Lucas county alert became relevant, announced once (the second
    # change leaves its decision as it was), and the pollers read the station's folder.
    assert await _updated_ids(aredis, bus_namespace) == [lucas.alert_id]

    with capsys.disabled():
        print()
        for label, after_response, after_request in measured:
            print(
                f"settings propagation {label}: {after_response * 1000:.1f} ms after the PUT's "
                f"response ({after_request * 1000:.1f} ms after the request was sent)"
            )
