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
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import redis
import soundfile as sf

from eas_schemas.envelope import EventEnvelope, decode_entry
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
    SERVICE_HEARTBEAT,
)
from eas_testkit.factories import ingested_envelope, make_alert
from eas_testkit.station import GatewayProcess, gateway_env
from servicekit.bus import SyncBus, stream_key

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


@pytest.fixture
def station_env(
    tmp_path: Path, database_url: str, redis_url: str, bus_namespace: str
) -> dict[str, str]:
    env = gateway_env(tmp_path, database_url, redis_url, bus_namespace, anonymous_read=False)
    env.update(
        EAS_HEARTBEAT_INTERVAL_S="2",
        STATION_API_PASSWORD_MEMORY_KIB="8192",
        STATION_API_PASSWORD_TIME_COST="1",
    )
    return env


@pytest.fixture
def station(station_env: dict[str, str], tmp_path: Path) -> Iterator[GatewayProcess]:
    """A running gateway with an admin made by ``station-api create-admin``."""
    _create_admin(station_env)
    station = GatewayProcess(station_env, tmp_path / "gateway.log")
    station.start()
    try:
        yield station
    finally:
        station.stop()


@pytest.fixture
def new_station(station_env: dict[str, str], tmp_path: Path) -> Iterator[GatewayProcess]:
    """A running gateway without any user: it prints a one-time setup token."""
    station = GatewayProcess(station_env, tmp_path / "gateway.log")
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


def test_dashboard_live_in_chromium(station: GatewayProcess, bus: SyncBus, tmp_path: Path) -> None:
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
        envelope = ingested_envelope(first)
        # As an early NWS API vintage would have it: the poller named what it repaired.
        envelope.data.deviations = ["sender_held_name", "from_cap_xml"]
        bus.publish(ALERTS_INGESTED, envelope)
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
        # Every relevance match (issue 11), and the feed's deviations in words.
        expect(dialog).to_contain_text("SAME exact: alert 039035 ~ station 039035")
        expect(dialog).to_contain_text("the sender field held the office's name")
        expect(dialog).to_contain_text("read from its own CAP XML")
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
        # audio-control, ws-broadcaster, and audio-control's supervised playout worker
        # (audio-control-playout, its own process and heartbeat).
        expect(wall.locator("#health-list li")).to_have_count(6, timeout=20_000)
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


def test_first_start_setup_from_the_login_page(new_station: GatewayProcess, tmp_path: Path) -> None:
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


# ---- the operator's console ----------------------------------------------------------------

VIEWER, VIEWER_PASSWORD = "watcher", "viewer test password 1"


def _http(
    station: GatewayProcess, method: str, path: str, token: str, doc: dict[str, Any] | None = None
) -> Any:
    request = urllib.request.Request(
        f"{station.url}{path}",
        method=method,
        data=json.dumps(doc).encode() if doc is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def _token(station: GatewayProcess, user: str, password: str) -> str:
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    with urllib.request.urlopen(f"{station.url}/api/auth/token", data=form, timeout=30) as answer:
        token: str = json.loads(answer.read())["access_token"]
    return token


def _wait_for_settings(redis_url: str, namespace: str, version: int) -> None:
    """Until audio-control's heartbeat says it runs on settings `version` (or later)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = stream_key(SERVICE_HEARTBEAT, namespace)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            entries = cast(list[tuple[str, dict[str, str]]], client.xrevrange(key, count=20))
            for _, fields in entries:
                env = decode_entry(fields)
                data = env.data if isinstance(env.data, dict) else env.data.model_dump()
                figures = data.get("figures") or {}
                if (
                    data.get("service") == "audio-control"
                    and figures.get("settings_version", -1) >= version
                ):
                    return
            time.sleep(0.3)
    finally:
        client.close()
    pytest.fail(f"audio-control did not apply settings version {version}")


def _sign_in(page: Any, url: str, user: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_label("User name", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.locator("#login-submit").click()
    expect(page.locator("#board")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)


def test_console_relay_playout_log_and_origination(
    station: GatewayProcess, bus: SyncBus, redis_url: str, bus_namespace: str, tmp_path: Path
) -> None:
    """An operator's day at the console, against the real services: a Tornado Warning waits
    for confirmation (countdown, reasons, audio preview), is confirmed and airs; an ignored
    alert is forwarded by hand; a test tone, an RWT composed, previewed, sent and aired; the
    station log filtered, a bad filter shown at its field, exported, printed and verified.
    A viewer then sees the same screens without any control."""
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    admin = _token(station, ADMIN, PASSWORD)
    saved = _http(
        station,
        "PATCH",
        "/api/settings",
        admin,
        {
            "patch": {
                "identity": {"name": "Console FM", "callsign": "WCON/FM"},
                "location": {"same_codes": ["039035"]},
                "relay": {
                    "enabled": True,
                    "events": ["TOR"],
                    "require_confirmation": ["TOR"],
                    "confirmation_timeout_s": 900,
                    "delay_s": 0,
                },
            }
        },
    )
    _wait_for_settings(redis_url, bus_namespace, saved["version"])
    problems: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.set_default_timeout(30_000)
        _sign_in(page, station.url, ADMIN, PASSWORD)
        views = page.get_by_role("navigation", name="Screens")

        # 1. Relay: a pending confirmation with its countdown, reasons and preview.
        views.get_by_role("button", name="Relay").click()
        expect(page.locator("#view-relay")).to_be_visible()
        expect(page.locator("#board")).to_be_hidden()
        bus.publish(ALERTS_INGESTED, ingested_envelope(make_alert(event="Tornado Warning")))
        card = page.locator("#pending-list > li", has_text="Tornado Warning")
        expect(card).to_be_visible(timeout=60_000)
        expect(card.locator("time.countdown")).to_contain_text("confirm within")
        expect(card).to_contain_text("If no one acts: it is ignored.")
        card.get_by_text("Why: every rule checked").click()
        expect(card.locator(".checks")).to_contain_text("039035")
        audio = card.locator("audio")
        expect(audio).to_have_count(1, timeout=60_000)
        src = audio.get_attribute("src")
        assert src and src.startswith("/api/audio/messages/")
        wav = page.request.get(f"{station.url}{src}")
        assert wav.status == 200 and wav.headers["content-type"] == "audio/wav"
        assert wav.body()[:4] == b"RIFF"
        page.screenshot(path=str(shots / "relay-pending.png"), full_page=True)

        card.get_by_role("button", name="Confirm Tornado Warning").click()
        expect(page.locator("#pending-empty")).to_be_visible()
        tor = page.locator("#decision-list > li", has_text="Tornado Warning").first
        # Confirmed, then aired by the playout worker on the station's WAV output.
        expect(tor.locator(".pill.state-aired")).to_be_visible(timeout=60_000)
        expect(tor).to_contain_text(f"by {ADMIN}")

        # An alert the rules ignore (SVR is not relayed) is forwarded by hand.
        bus.publish(
            ALERTS_INGESTED,
            ingested_envelope(make_alert(event="Severe Thunderstorm Warning", same_event="SVR")),
        )
        svr = page.locator("#decision-list > li", has_text="Severe Thunderstorm Warning").first
        expect(svr.locator(".pill.state-ignored")).to_be_visible(timeout=60_000)
        svr.get_by_label("Reason for forwarding (optional)").fill("county EM asked")
        svr.get_by_role("button", name="Forward Severe Thunderstorm Warning by hand").click()
        svr = page.locator("#decision-list > li", has_text="Severe Thunderstorm Warning").first
        expect(svr.locator(".pill.state-ignored")).to_have_count(0)
        expect(svr).not_to_contain_text("ignored", timeout=30_000)
        expect(page.locator("#relay-error")).to_have_text("")
        page.screenshot(path=str(shots / "relay-decisions.png"), full_page=True)

        # 2. Playout: the outputs with their last airing; a test tone.
        views.get_by_role("button", name="Playout").click()
        output = page.locator("#output-list > li").first
        expect(output).to_be_visible()
        expect(output.locator("[role=meter]")).to_have_count(1)
        expect(output).to_contain_text("aired")
        name = output.get_attribute("data-output")
        output.get_by_role("button", name=f"Test tone on {name}").click()
        expect(page.locator("#playout-result")).to_contain_text(f"{name}:")
        expect(page.locator("#playout-error")).to_have_text("")

        # 3. Origination: a message by county name, a missing location shown at its field;
        # then an RWT asks once more, is previewed, sent, and airs.
        views.get_by_role("button", name="Originate").click()
        page.get_by_label("Event", exact=True).select_option("CEM")
        page.get_by_role("button", name="Compose and preview").click()
        expect(page.locator("#orig-locations-error")).to_contain_text("at least 1")
        expect(page.get_by_label("County or state")).to_have_attribute("aria-invalid", "true")
        page.get_by_label("County or state").fill("cuyah")
        choice = "Cuyahoga County, OH (039035)"
        expect(page.locator(f'#orig-places option[value="{choice}"]')).to_have_count(1)
        page.get_by_label("County or state").fill(choice)
        page.get_by_role("button", name="Add location").click()
        expect(page.locator("#orig-locations")).to_contain_text("Cuyahoga County, OH 039035")
        page.get_by_label("Valid for (HHMM)").select_option("0030")
        page.get_by_label("Narration (spoken", exact=False).fill(
            "This is a console test. *** Only a test."
        )
        page.get_by_role("button", name="Compose and preview").click()
        expect(page.locator("#composed-header")).to_contain_text("-CEM-039035+0030-")
        expect(page.locator("#orig-locations-error")).to_have_text("")
        cem = page.locator("#composed-audio").get_attribute("src")
        assert cem
        assert page.request.get(f"{station.url}{cem}").headers["content-type"] == "audio/wav"
        page.screenshot(path=str(shots / "originate.png"), full_page=True)
        page.get_by_role("button", name="Required Weekly Test (RWT)…").click()
        expect(page.locator("#originate-confirm")).to_contain_text("Required Weekly Test")
        page.get_by_role("button", name="Compose it").click()
        expect(page.locator("#composed-header")).to_contain_text("-RWT-039035")
        expect(page.locator("#composed-header")).to_contain_text("-WCON/FM -")
        preview = page.locator("#composed-audio").get_attribute("src")
        assert preview
        assert page.request.get(f"{station.url}{preview}").headers["content-type"] == "audio/wav"
        page.get_by_role("button", name="Send to air").click()
        expect(page.locator("#composed-result")).to_contain_text("Queued for air as item")
        item = re.search(r"item (\d+)", page.locator("#composed-result").inner_text())
        assert item
        views.get_by_role("button", name="Playout").click()
        expect(page.locator("#output-list > li").first).to_contain_text(
            f"last: item {item.group(1)} aired", timeout=60_000
        )
        page.get_by_role("button", name="Stop what is on air").click()
        expect(page.locator("#playout-result")).not_to_have_text("")
        page.screenshot(path=str(shots / "playout.png"), full_page=True)

        # 4. The station log: entries, a filter, a bad filter at its field, export, verify.
        views.get_by_role("button", name="Station log").click()
        rows = page.locator("#log-body tr")
        expect(rows.first).to_be_visible()
        expect(page.locator("#log-body")).to_contain_text("relayed")
        page.get_by_label("Kind").select_option("originated")
        page.get_by_role("button", name="Filter").click()
        kind_cells = page.locator("#log-body tr td:nth-child(3)")
        expect(kind_cells.filter(has_not_text="originated")).to_have_count(0)
        expect(page.locator("#log-body")).to_contain_text("RWT")
        kinds = page.locator("#log-body tr td:nth-child(3)").all_inner_texts()
        assert kinds and set(kinds) == {"originated"}, kinds
        page.get_by_label("From").fill("2026-06-02T12:00")
        page.get_by_label("To", exact=True).fill("2026-06-01T12:00")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#log-to-error")).to_contain_text("'to' must be after 'from'")
        expect(page.get_by_label("To", exact=True)).to_have_attribute("aria-invalid", "true")
        page.get_by_label("From").fill("")
        page.get_by_label("To", exact=True).fill("")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#log-to-error")).to_have_text("")
        csv = page.request.get(f"{station.url}{page.locator('#log-csv').get_attribute('href')}")
        assert csv.status == 200 and csv.text().startswith("seq,"), csv.text()[:200]
        pdf = page.request.get(f"{station.url}{page.locator('#log-pdf').get_attribute('href')}")
        assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
        page.get_by_role("button", name="Verify the station log").click()
        expect(page.locator("#verify-result")).to_contain_text("The station log is intact")
        page.get_by_role("button", name="Verify the audit log").click()
        expect(page.locator("#verify-result")).to_contain_text("The audit log is intact")
        page.screenshot(path=str(shots / "station-log.png"), full_page=True)

        # 5. Users: a policy error at its field, then a viewer created.
        views.get_by_role("button", name="Users").click()
        expect(page.locator("#user-body tr", has_text=ADMIN)).to_be_visible()
        page.get_by_label("New user's name").fill(VIEWER)
        page.get_by_label("Initial password").fill("x")
        page.get_by_role("button", name="Create user").click()
        expect(page.locator("#user-password-error")).not_to_have_text("")
        expect(page.get_by_label("Initial password")).to_have_attribute("aria-invalid", "true")
        page.get_by_label("Initial password").fill(VIEWER_PASSWORD)
        page.get_by_label("Role", exact=True).select_option("viewer")
        page.get_by_role("button", name="Create user").click()
        expect(page.locator("#users-result")).to_have_text(f"Created {VIEWER} (viewer).")
        row = page.locator("#user-body tr", has_text=VIEWER)
        expect(row.locator("td").first).to_have_text("viewer")
        expect(row).to_contain_text("never")
        page.screenshot(path=str(shots / "users.png"), full_page=True)

        # 6. Inputs: a bad URL at its field; a file input added, started (confirmed), renamed,
        # stopped.
        views.get_by_role("button", name="Inputs").click()
        page.get_by_label("Input name").fill("bad stream")
        page.get_by_label("Source").select_option("stream")
        page.get_by_label("Stream URL").fill("ftp://example.org/x")
        page.get_by_role("button", name="Add input").click()
        expect(page.locator("#in-url-error")).to_contain_text("http")
        input_wav = tmp_path / "input.wav"
        sf.write(input_wav, np.zeros(22050 * 5, dtype=np.float32), 22050, subtype="PCM_16")
        page.get_by_label("Input name").fill("Test file")
        page.get_by_label("Source").select_option("file")
        page.get_by_label("Path on the station").fill(str(input_wav))
        page.get_by_label("Start over at the end").check()
        page.get_by_role("button", name="Add input").click()
        expect(page.locator("#inputs-result")).to_contain_text("Test file is added, stopped")
        card = page.locator("#input-list > li", has_text="Test file")
        card.get_by_role("button", name="Start Test file").click()
        # The confirmed state, from the start's answer or (when the worker took longer than
        # the answer waits) from the input's next status report over /ws.
        expect(card.locator("[data-role=state]")).to_have_text("running", timeout=90_000)
        expect(card.get_by_role("button", name="Stop Test file")).to_be_visible()
        card.get_by_role("button", name="Edit Test file").click()
        page.get_by_label("Input name").fill("Test file two")
        page.get_by_role("button", name="Save changes").click()
        card = page.locator("#input-list > li", has_text="Test file two")
        expect(card).to_be_visible()
        page.screenshot(path=str(shots / "inputs.png"), full_page=True)

        # 7. The viewer signs in: the same screens, no control; their own password changes.
        other = browser.new_context(viewport={"width": 390, "height": 844})
        viewer = other.new_page()
        viewer.on("pageerror", lambda exc: problems.append(f"viewer page error: {exc}"))
        viewer.set_default_timeout(30_000)
        _sign_in(viewer, station.url, VIEWER, VIEWER_PASSWORD)
        nav = viewer.get_by_role("navigation", name="Screens")
        expect(nav.get_by_role("button", name="Relay")).to_be_visible()
        expect(nav.get_by_role("button", name="Originate")).to_be_hidden()
        nav.get_by_role("button", name="Relay").click()
        expect(viewer.locator("#decision-list > li").first).to_be_visible()
        expect(viewer.locator("#view-relay button", has_text="Forward")).to_have_count(0)
        expect(viewer.locator("#view-relay button", has_text="Confirm")).to_have_count(0)
        nav.get_by_role("button", name="Playout").click()
        expect(viewer.locator("#output-list > li").first).to_be_visible()
        expect(viewer.get_by_role("button", name="Stop what is on air")).to_be_hidden()
        expect(viewer.locator("#output-list button")).to_have_count(0)
        nav.get_by_role("button", name="Station log").click()
        expect(viewer.locator("#log-body tr").first).to_be_visible()
        expect(viewer.get_by_role("button", name="Verify the audit log")).to_be_hidden()
        viewer.get_by_role("button", name="Verify the station log").click()
        expect(viewer.locator("#verify-result")).to_contain_text("intact")
        expect(nav.get_by_role("button", name="Users")).to_be_hidden()
        nav.get_by_role("button", name="Inputs").click()
        expect(viewer.locator("#input-list > li", has_text="Test file two")).to_be_visible()
        expect(viewer.locator("#input-form")).to_be_hidden()
        expect(viewer.locator("#input-list button")).to_have_count(0)
        nav.get_by_role("button", name="My account").click()
        viewer.get_by_label("Current password").fill("not my password")
        viewer.get_by_label("New password").fill(VIEWER_PASSWORD + " changed")
        viewer.get_by_role("button", name="Change password").click()
        expect(viewer.locator("#pw-current_password-error")).to_contain_text("wrong")
        viewer.get_by_label("Current password").fill(VIEWER_PASSWORD)
        viewer.get_by_role("button", name="Change password").click()
        expect(viewer.locator("#password-result")).to_contain_text("Password changed")
        assert _token(station, VIEWER, VIEWER_PASSWORD + " changed")
        overflow = viewer.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 391, f"the console is {overflow}px wide on a 390px phone"
        viewer.screenshot(path=str(shots / "viewer-log-phone.png"), full_page=True)
        card = page.locator("#input-list > li", has_text="Test file two")
        card.get_by_role("button", name="Stop Test file two").click()
        expect(page.locator("#inputs-result")).to_have_text("Test file two is stopped.")
        card.get_by_role("button", name="Delete Test file two").click()
        expect(page.locator("#input-list > li")).to_have_count(0)

        # 8. Accessibility basics on every screen: axe-core finds nothing serious, and the
        # keyboard reaches each screen's controls with a visible focus.
        violations = _axe_every_screen(browser, station)
        assert not violations, json.dumps(violations, indent=1)
        browser.close()

    assert not problems, problems
    target = os.environ.get("EAS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)


AXE = Path(__file__).resolve().parents[2] / ".vendor/npm/node_modules/axe-core/axe.min.js"
SCREENS = (
    "board",
    "map",
    "relay",
    "playout",
    "log",
    "originate",
    "inputs",
    "settings",
    "users",
    "account",
)


def _axe_every_screen(
    browser: Any, station: GatewayProcess, screens: tuple[str, ...] = SCREENS
) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of each screen, as an admin sees it."""
    from playwright.sync_api import expect

    if not AXE.exists():
        pytest.fail(f"{AXE} not found: run scripts/setup.sh (it vendors axe-core from npm)")
    # axe is injected by the test, so the page's CSP (script-src 'self') is bypassed for it
    # alone; the station serves no such script.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, station.url, ADMIN, PASSWORD)
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = []
    for screen in screens:
        page.locator(f'#views button[data-view="{screen}"]').click()
        target = "#board" if screen == "board" else f"#view-{screen}"
        expect(page.locator(target)).to_be_visible()
        page.wait_for_load_state("networkidle")
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        for v in result["violations"]:
            if v["impact"] in ("serious", "critical"):
                found.append(
                    {
                        "screen": screen,
                        "id": v["id"],
                        "help": v["help"],
                        "nodes": [n["target"] for n in v["nodes"][:5]],
                    }
                )
        # The keyboard: Tab from the screen's button reaches its controls, each focus visible.
        page.locator(f'#views button[data-view="{screen}"]').focus()
        reached: set[str] = set()
        for _ in range(12):
            page.keyboard.press("Tab")
            info = page.evaluate(
                # An alert card's button draws its focus ring on its ::after (the whole card).
                "() => { const e = document.activeElement; let s = getComputedStyle(e);"
                " if (s.outlineStyle === 'none') s = getComputedStyle(e, '::after');"
                " return {tag: e.tagName, inScreen: !!e.closest('main, nav'),"
                " outline: s.outlineStyle, width: s.outlineWidth}; }"
            )
            if info["inScreen"] and info["tag"] in ("BUTTON", "INPUT", "SELECT", "A", "TEXTAREA"):
                reached.add(info["tag"])
                assert info["outline"] != "none" and info["width"] != "0px", (screen, info)
        assert reached, f"Tab reaches no control on the {screen} screen"
    context.close()
    return found


# ---- the map -------------------------------------------------------------------------------

# A Tornado Warning's polygon over Cleveland (lat, lon), closed, as CAP gives it.
CLEVELAND = [(41.55, -81.75), (41.55, -81.50), (41.38, -81.50), (41.38, -81.75), (41.55, -81.75)]
EXTREME_FILL = "rgb(194, 24, 91)"  # --sev-extreme
MODERATE_FILL = "rgb(245, 124, 0)"  # --sev-moderate


def _fills(page: Any, selector: str) -> list[str]:
    fills: list[str] = page.eval_on_selector_all(
        selector, "els => els.map(e => getComputedStyle(e).fill)"
    )
    return fills


def test_map_of_polygon_and_code_only_alerts(
    station: GatewayProcess, bus: SyncBus, redis_url: str, bus_namespace: str, tmp_path: Path
) -> None:
    """The map draws a polygon alert as its polygon and a code-only alert as the counties its
    SAME and UGC county codes name (a UGC zone said to be not drawn), the station's area
    highlighted, colours by severity; a shape opens the alert's detail; ?wall=1 has the map
    beside the alert list; without the vendored map data the page says so."""
    from playwright.sync_api import expect, sync_playwright

    from eas_schemas.cap import CapSeverity

    executable = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    admin = _token(station, ADMIN, PASSWORD)
    _http(
        station,
        "PATCH",
        "/api/settings",
        admin,
        {"patch": {"location": {"same_codes": ["039035"]}}},
    )
    bus.publish(
        ALERTS_INGESTED,
        ingested_envelope(make_alert(event="Tornado Warning", polygon=CLEVELAND)),
    )
    bus.publish(
        ALERTS_INGESTED,
        ingested_envelope(
            make_alert(
                event="Flood Warning",
                same_event="FLW",
                severity=CapSeverity.MODERATE,
                same_codes=("039093",),
                ugc_codes=("OHC093", "OHZ014"),
            )
        ),
    )
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.set_default_timeout(30_000)
        _sign_in(page, station.url, ADMIN, PASSWORD)
        expect(page.locator("#alert-list > li")).to_have_count(2, timeout=60_000)
        page.get_by_role("navigation", name="Screens").get_by_role("button", name="Map").click()
        root = page.locator("#map-main")
        expect(root).to_have_attribute("data-state", "drawn", timeout=60_000)
        polygon = root.locator('path.alert-shape.sev-extreme[data-kind="polygon"]')
        expect(polygon).to_have_count(1)
        # SAME 039093 and UGC OHC093 are one county (Lorain): one shape, not two.
        counties = root.locator("path.alert-shape.sev-moderate")
        expect(counties).to_have_count(1)
        assert _fills(page, "#map-main path.alert-shape.sev-extreme") == [EXTREME_FILL]
        assert _fills(page, "#map-main path.alert-shape.sev-moderate") == [MODERATE_FILL]
        assert root.locator("path.alert-shape").count() == 2
        expect(root.locator("path.station-area")).to_have_count(1)
        # A polygon wound the wrong way round for d3 would fill the whole map but this one.
        # The map is zoomed to the alerts and the station's area (two counties and a bit).
        svg_box = root.locator("svg.alert-map").bounding_box()
        box = polygon.bounding_box()
        area_box = root.locator("path.station-area").bounding_box()
        assert svg_box and box and area_box
        assert 0 < box["width"] < svg_box["width"] / 3, (box, svg_box)
        assert area_box["width"] < svg_box["width"] / 2, (area_box, svg_box)
        # Over the station's own county (Cuyahoga): the two boxes overlap.
        assert box["x"] < area_box["x"] + area_box["width"]
        assert area_box["x"] < box["x"] + box["width"]
        for d in page.eval_on_selector_all(
            "#map-main path.alert-shape", "els => els.map(e => e.getAttribute('d'))"
        ):
            assert d and len(d) > 20 and "NaN" not in d, d
        flood = root.locator(".map-legend li", has_text="Flood Warning")
        expect(flood).to_contain_text("drawn from 1 county or state")
        expect(flood).to_contain_text("forecast zones OHZ014 not drawn")
        expect(root.locator(".map-legend li", has_text="Tornado Warning")).to_contain_text(
            "drawn from its polygon"
        )
        page.screenshot(path=str(shots / "map.png"), full_page=True)
        page.get_by_role("button", name="Show the whole country").click()
        box = polygon.bounding_box()
        assert box and box["width"] < svg_box["width"] / 40, (box, svg_box)
        page.screenshot(path=str(shots / "map-country.png"), full_page=True)
        page.get_by_role("button", name="Zoom to the alerts").click()
        polygon.click()
        dialog = page.locator("#detail")
        expect(dialog).to_be_visible()
        expect(page.locator("#detail-title")).to_have_text("Tornado Warning")
        page.keyboard.press("Escape")
        flood.get_by_role("button", name="Flood Warning").click()
        expect(page.locator("#detail-title")).to_have_text("Flood Warning")
        page.keyboard.press("Escape")

        # The wall display: the map beside the alert list, drawn the same.
        wall = context.new_page()
        wall.on("pageerror", lambda exc: problems.append(f"wall page error: {exc}"))
        wall.set_viewport_size({"width": 1920, "height": 1080})
        wall.goto(f"{station.url}/?wall=1")
        expect(wall.locator("#alert-list > li")).to_have_count(2, timeout=30_000)
        expect(wall.locator("#map-wall")).to_have_attribute("data-state", "drawn", timeout=60_000)
        expect(wall.locator("#map-wall path.alert-shape")).to_have_count(2)
        alerts_box = wall.locator("#alerts").bounding_box()
        map_box = wall.locator("#map-panel").bounding_box()
        assert alerts_box and map_box
        assert map_box["x"] >= alerts_box["x"] + alerts_box["width"] - 1, (alerts_box, map_box)
        assert map_box["y"] < alerts_box["y"] + alerts_box["height"], (alerts_box, map_box)
        wall.screenshot(path=str(shots / "map-wall.png"))
        wall.close()

        # Without the vendored map files: a clear message, and the list still there.
        bare = browser.new_context(viewport={"width": 1280, "height": 900})
        bare.route("**/static/vendor/**", lambda route: route.fulfill(status=404, body="no"))
        other = bare.new_page()
        other.set_default_timeout(30_000)
        _sign_in(other, station.url, ADMIN, PASSWORD)
        other.get_by_role("navigation", name="Screens").get_by_role("button", name="Map").click()
        expect(other.locator("#map-main")).to_have_attribute("data-state", "missing")
        expect(other.locator("#map-main .map-status")).to_contain_text("Map data not installed")
        expect(other.locator("#map-main .map-legend li")).to_have_count(2)
        expect(other.locator("#map-main svg")).to_have_count(0)
        bare.close()

        # An alert arriving while the map is shown is drawn from its own polygon (fetched
        # because /ws named an alert the map had not seen).
        bus.publish(
            ALERTS_INGESTED,
            ingested_envelope(
                make_alert(
                    event="Severe Thunderstorm Warning",
                    same_event="SVR",
                    severity=CapSeverity.SEVERE,
                    same_codes=("039049",),
                    ugc_codes=(),
                    polygon=[
                        (40.1, -83.1),
                        (40.1, -82.8),
                        (39.9, -82.8),
                        (39.9, -83.1),
                        (40.1, -83.1),
                    ],
                )
            ),
        )
        expect(root.locator('path.alert-shape.sev-severe[data-kind="polygon"]')).to_have_count(
            1, timeout=60_000
        )
        expect(root.locator("path.alert-shape")).to_have_count(3)

        violations = _axe_every_screen(browser, station, ("map",))
        assert not violations, json.dumps(violations, indent=1)
        browser.close()
    assert not problems, problems
    target = os.environ.get("EAS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)


# ---- settings ------------------------------------------------------------------------------


def test_settings_screen_relay_rule_validation_history_import(
    station: GatewayProcess, bus: SyncBus, redis_url: str, bus_namespace: str, tmp_path: Path
) -> None:
    """The Settings screen against the real station: a bad relay delay is shown at its field
    and nothing is saved; SVR added to the relayed events and the next SVR alert is relayed
    where the one before was ignored; the area's county added by name; the version's changes
    shown and rolled back; the export downloads and a bad import names its field."""
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    admin = _token(station, ADMIN, PASSWORD)
    saved = _http(
        station,
        "PATCH",
        "/api/settings",
        admin,
        {
            "patch": {
                "identity": {"name": "Settings FM", "callsign": "WSET/FM"},
                "location": {"same_codes": ["039035"]},
                "relay": {"enabled": True, "events": ["TOR"], "delay_s": 0},
            }
        },
    )
    _wait_for_settings(redis_url, bus_namespace, saved["version"])
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.set_default_timeout(30_000)
        _sign_in(page, station.url, ADMIN, PASSWORD)
        views = page.get_by_role("navigation", name="Screens")

        # Before: SVR is not a relayed event, so an SVR alert is ignored.
        views.get_by_role("button", name="Relay").click()
        bus.publish(
            ALERTS_INGESTED,
            ingested_envelope(make_alert(event="Severe Thunderstorm Warning", same_event="SVR")),
        )
        svr = page.locator("#decision-list > li", has_text="Severe Thunderstorm Warning")
        expect(svr.first.locator(".pill.state-ignored")).to_be_visible(timeout=60_000)

        views.get_by_role("button", name="Settings").click()
        events = page.get_by_label("Event codes relayed (space-separated, e.g. TOR SVR)")
        expect(events).to_have_value("TOR")
        expect(page.locator("#settings-version")).to_contain_text(f"Version {saved['version']}")
        relay = page.locator("#set-form-relay")

        # A validation error at its field; nothing saved.
        delay = page.get_by_label("Delay before relaying", exact=False)
        delay.fill("9999")
        events.fill("TOR SVR")
        relay.get_by_role("button", name="Save relay rules").click()
        expect(page.locator("#set-relay-delay_s-error")).to_contain_text("600")
        expect(delay).to_have_attribute("aria-invalid", "true")
        expect(delay).to_be_focused()
        expect(page.locator("#set-relay-result")).to_have_text("")
        page.screenshot(path=str(shots / "settings-error.png"), full_page=True)
        unchanged = _http(station, "GET", "/api/settings", admin)
        assert unchanged["version"] == saved["version"]

        # The rule changed in the screen; the next SVR decision follows it.
        delay.fill("0")
        relay.get_by_label("Why (optional, kept with the version)").fill("county EM asked")
        relay.get_by_role("button", name="Save relay rules").click()
        expect(page.locator("#set-relay-result")).to_contain_text("Saved as version")
        expect(page.locator("#set-relay-delay_s-error")).to_have_text("")
        expect(delay).not_to_have_attribute("aria-invalid", "true")
        found = re.search(r"version (\d+)", page.locator("#set-relay-result").inner_text())
        assert found
        version = int(found.group(1))
        assert version == saved["version"] + 1
        after = _http(station, "GET", "/api/settings", admin)["settings"]["relay"]
        assert after["events"] == ["TOR", "SVR"] and after["delay_s"] == 0
        _wait_for_settings(redis_url, bus_namespace, version)
        views.get_by_role("button", name="Relay").click()
        bus.publish(
            ALERTS_INGESTED,
            ingested_envelope(make_alert(event="Severe Thunderstorm Warning", same_event="SVR")),
        )
        expect(svr).to_have_count(2, timeout=60_000)
        expect(
            svr.first.locator(".pill.state-scheduled, .pill.state-confirmed, .pill.state-aired")
        ).to_have_count(1, timeout=60_000)
        expect(svr.nth(1).locator(".pill.state-ignored")).to_be_visible()

        # The area's county by name, with its SAME code.
        views.get_by_role("button", name="Settings").click()
        place = page.get_by_label("Add a county or a state by name")
        place.fill("lorai")
        choice = "Lorain County, OH (039093)"
        expect(page.locator(f'#set-places option[value="{choice}"]')).to_have_count(1)
        place.fill(choice)
        page.get_by_role("button", name="Add to the area").click()
        area = page.locator("#set-location-same_codes")
        expect(area).to_contain_text("Lorain County, OH 039093")
        expect(area).to_contain_text("039035")
        page.locator("#set-form-location").get_by_role(
            "button", name="Save the station's area"
        ).click()
        expect(page.locator("#set-location-result")).to_contain_text("Saved as version")
        located = _http(station, "GET", "/api/settings", admin)
        assert located["settings"]["location"]["same_codes"] == ["039035", "039093"]

        # History: the relay version's changes, then a rollback to the version before it.
        item = page.locator(f'#settings-versions > li[data-version="{version}"]')
        expect(item).to_contain_text("county EM asked")
        item.get_by_role("button", name=f"Show the changes of version {version}").click()
        expect(item.locator("table.diff")).to_contain_text("relay.events")
        expect(item.locator("table.diff")).to_contain_text('["TOR","SVR"]')
        rows = item.locator("table.diff tbody tr")
        assert rows.count() == 1, rows.all_inner_texts()
        page.screenshot(path=str(shots / "settings-history.png"), full_page=True)
        first = page.locator(f'#settings-versions > li[data-version="{saved["version"]}"]')
        first.get_by_role("button", name=f"Roll back to version {saved['version']}").click()
        expect(page.locator("#settings-result")).to_contain_text(
            f"Version {saved['version']} is current again"
        )
        expect(events).to_have_value("TOR")
        rolled = _http(station, "GET", "/api/settings", admin)
        assert rolled["action"] == "rollback"
        assert rolled["settings"]["relay"]["events"] == ["TOR"]
        assert rolled["settings"]["location"]["same_codes"] == ["039035"]

        # Export; a bad import named at its field, nothing saved.
        exported = page.request.get(
            f"{station.url}{page.locator('#set-export').get_attribute('href')}"
        )
        assert exported.status == 200
        document = exported.json()
        assert document["format"] == "eas-station-settings"
        document["settings"]["identity"]["callsign"] = "TOO-LONG-CALL"
        bad = tmp_path / "bad-settings.json"
        bad.write_text(json.dumps(document))
        page.get_by_label("Settings file to import").set_input_files(str(bad))
        page.get_by_role("button", name="Import this file", exact=True).click()
        expect(page.locator("#set-import-error")).to_contain_text("identity.callsign")
        expect(page.get_by_label("Settings file to import")).to_have_attribute(
            "aria-invalid", "true"
        )
        assert _http(station, "GET", "/api/settings", admin)["version"] == rolled["version"]
        page.screenshot(path=str(shots / "settings.png"), full_page=True)

        # An operator reads the settings and changes nothing: no save, rollback or import,
        # every field disabled; on Playout no output form and no output edit or delete.
        _http(
            station,
            "POST",
            "/api/users",
            admin,
            {"username": "duty", "password": VIEWER_PASSWORD, "role": "operator"},
        )
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        operator = other.new_page()
        operator.on("pageerror", lambda exc: problems.append(f"operator page error: {exc}"))
        operator.set_default_timeout(30_000)
        _sign_in(operator, station.url, "duty", VIEWER_PASSWORD)
        nav = operator.get_by_role("navigation", name="Screens")
        nav.get_by_role("button", name="Settings").click()
        expect(operator.get_by_label("Event codes relayed", exact=False)).to_have_value("TOR")
        expect(operator.get_by_label("Event codes relayed", exact=False)).to_be_disabled()
        expect(operator.locator("#view-settings button:visible", has_text="Save")).to_have_count(0)
        expect(operator.locator("#set-import")).to_be_hidden()
        expect(operator.locator("#settings-versions > li").first).to_be_visible()
        expect(operator.locator("#settings-versions button", has_text="Roll back")).to_have_count(0)
        expect(operator.locator("#set-location-same_codes button")).to_have_count(0)
        expect(operator.get_by_label("Add a county or a state by name")).to_be_hidden()
        nav.get_by_role("button", name="Playout").click()
        expect(operator.locator("#output-list > li").first).to_be_visible()
        expect(operator.locator("#output-form")).to_be_hidden()
        expect(operator.locator("#output-list button", has_text="Edit")).to_have_count(0)
        expect(operator.locator("#output-list button", has_text="Delete")).to_have_count(0)
        other.close()

        violations = _axe_every_screen(browser, station, ("settings",))
        assert not violations, json.dumps(violations, indent=1)
        browser.close()
    assert not problems, problems
    target = os.environ.get("EAS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)


# ---- outputs, recorded narration, resend, user delete ---------------------------------------


def test_console_outputs_recorded_narration_resend_and_user_delete(
    station: GatewayProcess, redis_url: str, bus_namespace: str, tmp_path: Path
) -> None:
    """Outputs added (a bad folder at its field), edited and deleted from the Playout screen; a
    message composed with an uploaded recording, sent, aired and aired again after a second
    question; a user deleted after a second question."""
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    admin = _token(station, ADMIN, PASSWORD)
    saved = _http(
        station,
        "PATCH",
        "/api/settings",
        admin,
        {
            "patch": {
                "identity": {"name": "Console FM", "callsign": "WCON/FM"},
                "location": {"same_codes": ["039035"]},
            }
        },
    )
    _wait_for_settings(redis_url, bus_namespace, saved["version"])
    recording = tmp_path / "narration.wav"
    t = np.arange(22050 * 2) / 22050
    sf.write(recording, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    second = tmp_path / "second-output"
    second.mkdir()
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.set_default_timeout(30_000)
        _sign_in(page, station.url, ADMIN, PASSWORD)
        views = page.get_by_role("navigation", name="Screens")

        # 1. An output: a relative folder refused at its field, then added, edited, deleted.
        views.get_by_role("button", name="Playout").click()
        expect(page.locator("#output-list > li").first).to_be_visible()
        form = page.locator("#output-form")
        form.get_by_label("Output name").fill("second wav")
        form.get_by_label("Type of output").select_option("wav_folder")
        form.get_by_label("Folder on the station (absolute path)").fill("relative/folder")
        form.get_by_role("button", name="Add output").click()
        expect(page.locator("#out-folder-error")).to_contain_text("absolute")
        expect(form.get_by_label("Folder on the station (absolute path)")).to_have_attribute(
            "aria-invalid", "true"
        )
        form.get_by_label("Folder on the station (absolute path)").fill(str(second))
        form.get_by_role("button", name="Add output").click()
        expect(page.locator("#playout-result")).to_have_text("second wav is added.")
        card = page.locator('#output-list > li[data-output="second wav"]')
        expect(card).to_contain_text("wav_folder")
        card.get_by_role("button", name="Edit second wav").click()
        expect(form.get_by_label("Folder on the station (absolute path)")).to_have_value(
            str(second)
        )
        form.get_by_label("Gain (dB, -60 to 20)").fill("-3")
        form.get_by_label("Output enabled").uncheck()
        form.get_by_role("button", name="Save output").click()
        expect(page.locator("#playout-result")).to_have_text("second wav is saved.")
        expect(card).to_contain_text("disabled")
        stored = _http(station, "GET", "/api/audio/outputs/second%20wav", admin)
        assert stored["config"]["gain_db"] == -3 and stored["enabled"] is False
        page.screenshot(path=str(shots / "outputs.png"), full_page=True)
        card.get_by_role("button", name="Delete second wav").click()
        card.get_by_role("button", name="No, keep it").click()
        expect(card).to_be_visible()
        card.get_by_role("button", name="Delete second wav").click()
        card.get_by_role("button", name="Delete second wav").click()
        expect(page.locator("#playout-result")).to_have_text("second wav is deleted.")
        expect(card).to_have_count(0)

        # 2. A message with recorded narration: both a text and a file is refused first.
        views.get_by_role("button", name="Originate").click()
        page.get_by_label("Event", exact=True).select_option("CEM")
        page.get_by_label("County or state").fill("cuyah")
        choice = "Cuyahoga County, OH (039035)"
        expect(page.locator(f'#orig-places option[value="{choice}"]')).to_have_count(1)
        page.get_by_label("County or state").fill(choice)
        page.get_by_role("button", name="Add location").click()
        page.get_by_label("Valid for (HHMM)").select_option("0030")
        recorded = page.get_by_label("Or a recorded narration", exact=False)
        recorded.set_input_files(str(recording))
        page.get_by_label("Narration (spoken", exact=False).fill("spoken too")
        page.get_by_role("button", name="Compose and preview").click()
        expect(page.locator("#orig-audio-error")).to_contain_text("not both")
        page.get_by_label("Narration (spoken", exact=False).fill("")
        page.get_by_role("button", name="Compose and preview").click()
        expect(page.locator("#composed-header")).to_contain_text("-CEM-039035+0030-")
        expect(page.locator("#composed-source")).to_contain_text("the recording you uploaded")
        page.get_by_role("button", name="Send to air").click()
        expect(page.locator("#composed-result")).to_contain_text("Queued for air as item")
        item = re.search(r"item (\d+)", page.locator("#composed-result").inner_text())
        assert item

        # 3. Aired, then aired again after the second question.
        views.get_by_role("button", name="Playout").click()
        output = page.locator("#output-list > li").first
        expect(output).to_contain_text(f"last: item {item.group(1)} aired", timeout=60_000)
        output.get_by_role("button", name=f"Air item {item.group(1)} again").click()
        expect(output).to_contain_text(f"Air item {item.group(1)} again now, on every output?")
        output.get_by_role("button", name="Air it again").click()
        expect(page.locator("#playout-result")).to_contain_text(
            f"Item {item.group(1)} is queued again as item"
        )
        again = re.search(r"again as item (\d+)", page.locator("#playout-result").inner_text())
        assert again and again.group(1) != item.group(1)
        expect(page.locator("#output-list > li").first).to_contain_text(
            f"last: item {again.group(1)} aired", timeout=60_000
        )

        # 4. A user deleted after the second question.
        views.get_by_role("button", name="Users").click()
        page.get_by_label("New user's name").fill("temporary")
        page.get_by_label("Initial password").fill(VIEWER_PASSWORD)
        page.get_by_role("button", name="Create user").click()
        row = page.locator('#user-body tr[data-user="temporary"]')
        expect(row).to_be_visible()
        row.get_by_role("button", name="Delete temporary").click()
        row.get_by_role("button", name="Delete temporary").click()
        expect(page.locator("#users-result")).to_have_text(
            "temporary is deleted; their sessions ended."
        )
        expect(row).to_have_count(0)

        violations = _axe_every_screen(browser, station, ("playout", "originate", "users"))
        assert not violations, json.dumps(violations, indent=1)
        browser.close()
    assert not problems, problems
    target = os.environ.get("EAS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(target) / shot.name)
