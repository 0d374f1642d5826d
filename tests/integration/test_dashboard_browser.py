"""The dashboard in headless Chromium against a real station.

The station is the one-port gateway (alerts-api, station-api, ws-broadcaster and the dashboard
in one process, ``python -m eas_station.gateway``) on the test Redis (its own namespace) and a
fresh PostgreSQL database. The test signs in as an admin made with ``station-api
create-admin``, sees an alert ingested on the bus appear, restarts the gateway, sees the page
reconnect, and sees what was published while it was away (a stored alert and a SAME header)
arrive through the /ws resume. Screenshots (desktop, alert detail, phone, wall display) go to
the test's tmp dir, and to ``$EAS_SCREENSHOT_DIR`` when set.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``); without it the
test fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import POLLER_STATUS_TYPE, FeedKind, PollerStatus
from eas_schemas.monitor_events import (
    AUDIO_INPUT_LEVEL_TYPE,
    MONITOR_STATUS_TYPE,
    SAME_HEADER_TYPE,
    DecoderState,
    Hearing,
    InputKind,
    InputLevel,
    InputState,
    MonitorStatus,
    SameHeaderEvent,
    SameHeaderFields,
    SameLocation,
)
from eas_schemas.same_codes import DEVIATIONS
from eas_schemas.streams import (
    ALERTS_INGESTED,
    AUDIO_METRICS,
    MONITOR_STATUS,
    POLLER_STATUS,
    SAME_EVENTS,
)
from eas_testkit.factories import ingested_envelope, make_alert
from servicekit.auth.tokens import write_keypair
from servicekit.bus import SyncBus
from servicekit.embedded import free_port

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN, PASSWORD = "admin", "dashboard test password 1"


class Station:
    """``python -m eas_station.gateway serve`` as a child process that can be restarted."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eas_station.gateway", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        pytest.fail(f"the gateway was not ready in {timeout_s}s ({last}):\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def station_env(
    tmp_path: Path, database_url: str, redis_url: str, bus_namespace: str
) -> dict[str, str]:
    private, public = write_keypair(tmp_path / "keys")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EAS_", "ALERTS_API_", "STATION_API_", "WS_BROADCASTER_", "POLLERS_"))
    }
    env.update(
        EAS_REDIS_URL=redis_url,
        EAS_BUS_NAMESPACE=bus_namespace,
        EAS_DATABASE_URL=database_url,
        EAS_AUTH_PUBLIC_KEY_FILE=str(public),
        EAS_AUTH_SIGNING_KEY_FILE=str(private),
        EAS_ANONYMOUS_READ="false",
        EAS_LOG_JSON="false",
        EAS_HEARTBEAT_INTERVAL_S="2",
        ALERTS_API_STATION_SAME_CODES="039035",
        ALERTS_API_OUTBOX_INTERVAL_S="0.3",
        STATION_API_PASSWORD_MEMORY_KIB="8192",
        STATION_API_PASSWORD_TIME_COST="1",
        EAS_MONITOR_DATA_DIR=str(tmp_path / "eas-monitor"),
    )
    return env


@pytest.fixture
def station(station_env: dict[str, str], tmp_path: Path) -> Iterator[Station]:
    """A running gateway with an admin made by ``station-api create-admin``."""
    _create_admin(station_env)
    station = Station(station_env, free_port(), tmp_path / "gateway.log")
    station.start()
    try:
        yield station
    finally:
        station.stop()


@pytest.fixture
def new_station(station_env: dict[str, str], tmp_path: Path) -> Iterator[Station]:
    """A running gateway without any user: it prints a one-time setup token."""
    station = Station(station_env, free_port(), tmp_path / "gateway.log")
    station.start()
    try:
        yield station
    finally:
        station.stop()


def _create_admin(env: dict[str, str]) -> None:
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "station_api",
            "create-admin",
            "--username",
            ADMIN,
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr.decode(errors="replace")


@pytest.fixture
def bus(redis_url: str, bus_namespace: str) -> Iterator[SyncBus]:
    client = redis.Redis.from_url(redis_url)
    yield SyncBus(client, bus_namespace)
    client.close()


def _same_header(
    now: datetime, text: str, event: str, code: str, name: str, deviations: tuple[str, ...] = ()
) -> EventEnvelope[Any]:
    hearing = Hearing(
        input_id=1,
        input_name="NWR KEC61",
        heard_at=now,
        confidence=0.98,
        bursts=3,
        agreed=3,
        start_s=10.0,
        end_s=14.5,
        started_at=now - timedelta(seconds=5),
        ended_at=now,
    )
    data = SameHeaderEvent(
        text=text,
        header=SameHeaderFields(
            originator="WXR",
            originator_name="National Weather Service",
            event_code=code,
            event_name=event,
            locations=[SameLocation(code="039035", name="Cuyahoga County, OH")],
            duration="0030",
            duration_minutes=30,
            issued=now,
            purge_at=now + timedelta(minutes=30),
            callsign=text.split("-")[-2] if text.endswith("-") else text.split("-")[-1],
        ),
        deviations=list(deviations),
        deviation_notes=[DEVIATIONS[d] for d in deviations],
        description=f"The National Weather Service has issued a {name} for "
        "Cuyahoga County, OH (KCLE/NWS).",
        confidence=0.98,
        bursts=3,
        agreed=3,
        inputs=[hearing],
        first_heard_at=now,
    )
    return EventEnvelope[SameHeaderEvent](
        type=SAME_HEADER_TYPE, source="eas-monitor/test", subject=text, data=data
    )


def _publish_station_status(bus: SyncBus) -> None:
    now = datetime.now(UTC)
    bus.publish(
        MONITOR_STATUS,
        EventEnvelope[MonitorStatus](
            type=MONITOR_STATUS_TYPE,
            source="eas-monitor/test",
            subject="1",
            data=MonitorStatus(
                input_id=1,
                name="NWR KEC61",
                kind=InputKind.STREAM,
                state=InputState.RUNNING,
                running=True,
                signal_present=True,
                decoder_state=DecoderState.IDLE,
                samples_per_s=22050,
                samples_total=22050 * 600,
                restarts=0,
                errors=0,
                since=now - timedelta(minutes=10),
                updated_at=now,
            ),
        ),
    )
    bus.publish(
        AUDIO_METRICS,
        EventEnvelope[InputLevel](
            type=AUDIO_INPUT_LEVEL_TYPE,
            source="eas-monitor/test",
            subject="1",
            data=InputLevel(
                input_id=1,
                name="NWR KEC61",
                peak_dbfs=-6.5,
                rms_dbfs=-19.0,
                silence=False,
                clipping=False,
                window_s=0.5,
                at=now,
            ),
        ),
    )
    bus.publish(
        POLLER_STATUS,
        EventEnvelope[PollerStatus](
            type=POLLER_STATUS_TYPE,
            source="pollers/test",
            subject="nws",
            data=PollerStatus(
                feed="nws",
                feed_kind=FeedKind.NWS,
                started_at=now,
                duration_s=0.4,
                fetched=3,
                new=1,
                not_modified=False,
                errors=0,
                next_poll_s=60,
                ok=True,
            ),
        ),
    )


def _chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the dashboard browser test needs Debian's Chromium "
            "(apt-get install -y chromium)"
        )
    return CHROMIUM


def test_dashboard_live_in_chromium(station: Station, bus: SyncBus, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems: list[str] = []
    api_requests: list[str] = []

    def on_console(message: Any) -> None:
        text = message.text
        # Expected noise: the 401 before login, the socket refused while the gateway restarts.
        if message.type == "error" and not (
            text.startswith("Failed to load resource") or "WebSocket connection to" in text
        ):
            problems.append(f"console: {text}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(executable),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "request",
            lambda r: api_requests.append(r.url) if "/api/" in r.url else None,
        )
        page.set_default_timeout(30_000)

        # 1. Not anonymous: the login form; sign in.
        page.goto(station.url)
        expect(page.locator("#login-view")).to_be_visible()
        page.screenshot(path=str(shots / "login.png"))
        page.get_by_label("User name", exact=True).fill(ADMIN)
        page.get_by_label("Password", exact=True).fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.locator("#login-submit").click()
        expect(page.locator("#board")).to_be_visible()
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator("#who")).to_contain_text(f"{ADMIN} (admin)")
        expect(page.locator("#alerts-empty")).to_be_visible()

        # 2. An alert ingested on the bus is stored by alerts-api and appears live.
        first = make_alert(event="Tornado Warning")
        bus.publish(ALERTS_INGESTED, ingested_envelope(first))
        card = page.locator("#alert-list li", has_text="Tornado Warning")
        expect(card).to_be_visible(timeout=30_000)
        expect(card).to_contain_text("Extreme")
        expect(card).to_contain_text("Your area")
        expect(card).to_contain_text("Cuyahoga, OH")
        expect(card.locator("time.countdown")).to_contain_text("expires in")
        expect(page.locator("#announcer")).to_contain_text("New alert: Tornado Warning")
        expect(page.locator("#alert-count")).to_have_text("1")

        # The other panels, fed by their topics.
        now = datetime.now(UTC)
        bus.publish(
            SAME_EVENTS,
            _same_header(
                now,
                "ZCZC-WXR-TOR-039035+0030-0011200-KCLE/NWS-",
                "Tornado Warning",
                "TOR",
                "Tornado Warning",
            ),
        )
        _publish_station_status(bus)
        expect(page.locator("#same-list")).to_contain_text(
            "has issued a Tornado Warning for Cuyahoga County"
        )
        expect(page.locator("#monitor-list")).to_contain_text("NWR KEC61")
        expect(page.locator("#monitor-list [role=meter]")).to_have_attribute("aria-valuenow", "-19")
        expect(page.locator("#poller-list")).to_contain_text("nws")
        expect(page.locator("#health-list")).to_contain_text("alerts-api", timeout=20_000)
        expect(page.locator("#health-list")).to_contain_text("ws-broadcaster", timeout=20_000)
        page.screenshot(path=str(shots / "desktop.png"), full_page=True)

        # 3. The detail view: GET /api/alerts/{id}.
        card.get_by_role("button", name="Tornado Warning").click()
        dialog = page.locator("#detail")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Take shelter now.")
        expect(dialog).to_contain_text("A tornado was observed near Cleveland.")
        expect(dialog).to_contain_text("History")
        page.screenshot(path=str(shots / "detail.png"))
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        # 4. A phone: one column, nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        expect(card).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 391, f"the page is {overflow}px wide on a 390px phone"
        page.screenshot(path=str(shots / "phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # 5. Restart the gateway; what happens meanwhile arrives after the reconnect.
        station.stop()
        expect(page.locator("#conn")).to_have_attribute(
            "data-state", "reconnecting", timeout=20_000
        )
        expect(page.locator("#conn-text")).to_contain_text("Reconnecting")
        page.screenshot(path=str(shots / "reconnecting.png"))
        second = make_alert(event="Severe Thunderstorm Warning", same_event="SVR")
        bus.publish(ALERTS_INGESTED, ingested_envelope(second))
        # Published to the stream while no broadcaster runs: only the resume can deliver it.
        bus.publish(
            SAME_EVENTS,
            _same_header(
                datetime.now(UTC),
                "ZCZC-WXR-SVR-039035+0030-0011205-KCLENWS-",
                "Severe Thunderstorm Warning",
                "SVR",
                "Severe Thunderstorm Warning",
                ("callsign_length",),
            ),
        )
        alerts_fetches_before = sum("/api/alerts?" in u for u in api_requests)
        station.start()
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=90_000)
        expect(
            page.locator("#alert-list li", has_text="Severe Thunderstorm Warning")
        ).to_be_visible(timeout=60_000)
        expect(page.locator("#same-list")).to_contain_text(
            "has issued a Severe Thunderstorm Warning"
        )
        # A header heard with a deviation from 11.31 says so, in plain language.
        expect(page.locator("#same-list .deviations")).to_have_count(1)
        expect(page.locator("#same-list .deviations")).to_contain_text(
            DEVIATIONS["callsign_length"]
        )
        expect(page.locator("#alert-list li", has_text="Tornado Warning")).to_have_count(1)
        expect(page.locator("#alert-count")).to_have_text("2")
        # Resumed from the last ids: no REST refetch was needed.
        assert sum("/api/alerts?" in u for u in api_requests) == alerts_fetches_before
        page.screenshot(path=str(shots / "after-restart.png"), full_page=True)

        # 6. The wall display: large type, same data.
        wall = context.new_page()
        wall.on("pageerror", lambda exc: problems.append(f"wall page error: {exc}"))
        wall.set_viewport_size({"width": 1920, "height": 1080})
        wall.goto(f"{station.url}/?wall=1")
        expect(wall.locator("html.wall")).to_have_count(1)
        expect(wall.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(wall.locator("#alert-list li")).to_have_count(2)
        # Heartbeats of the last minutes come from the /ws replay, not from REST.
        # One instance per hosted service: alerts-api, station-api, eas-monitor,
        # audio-control, ws-broadcaster.
        expect(wall.locator("#health-list li")).to_have_count(5, timeout=20_000)
        expect(wall.locator("#same-list li")).to_have_count(2)
        overflow = wall.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 1921, f"the wall page is {overflow}px wide"
        wall.screenshot(path=str(shots / "wall.png"))
        wall.close()

        # 7. Signing out ends the session: back to the login form, the socket closed.
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#login-view")).to_be_visible()
        expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
        assert "eas_access" not in {c["name"] for c in context.cookies()}

        browser.close()

    # Nothing polled: one list fetch before login (401), one after, none since.
    list_fetches = [u for u in api_requests if "/api/alerts?" in u]
    assert len(list_fetches) == 2, list_fetches
    assert not problems, problems
    target = os.environ.get("EAS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)
    print("screenshots:", json.dumps(sorted(str(p) for p in shots.iterdir()), indent=1))


def test_first_start_setup_from_the_login_page(new_station: Station, tmp_path: Path) -> None:
    """A new station has no user: the login page creates the admin with the setup token the
    station printed, then signs in."""
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    station = new_station
    found = re.search(r"one-time setup token: (\S+)", station.log())
    assert found, f"no setup token in the station's log:\n{station.log()}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(30_000)
        page.goto(station.url)
        expect(page.locator("#login-view")).to_be_visible()
        page.get_by_text("First start: create the admin account").click()
        page.get_by_label("Setup token").fill("not-the-token")
        page.get_by_label("Admin user name").fill("chief")
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Create admin and sign in").click()
        expect(page.locator("#setup-error")).to_contain_text("setup token is wrong")
        page.get_by_label("Setup token").fill(found.group(1))
        page.get_by_role("button", name="Create admin and sign in").click()
        expect(page.locator("#board")).to_be_visible()
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator("#who")).to_contain_text("chief (admin)")
        page.screenshot(path=str(tmp_path / "setup-done-phone.png"), full_page=True)
        browser.close()
    assert not errors, errors
