"""The dashboard shows a database outage, and clears it when the database returns.

The station is the one-port gateway (every service and the dashboard) on the test Redis (its
own namespace) and a throwaway PostgreSQL cluster of its own (``LocalPostgres``), which the
test stops as an outage does. In headless Chromium the banner appears, driven by what the
station really says: the services' heartbeats over /ws name the failed dependency (the checks
/readyz makes), and an API read answers 503 with servicekit's DATABASE_UNAVAILABLE. An alert
that arrives on the bus meanwhile is stored once the database is back, and shows on the board;
the banner goes away.

Needs Debian's Chromium at /usr/bin/chromium; without it the test fails, it does not skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from eas_schemas.streams import ALERTS_INGESTED
from eas_testkit.factories import ingested_envelope, make_alert
from eas_testkit.servers import LocalPostgres
from eas_testkit.station import GatewayProcess, gateway_env
from servicekit.bus import SyncBus
from servicekit.errors import DATABASE_UNAVAILABLE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
# Bounds for what the page must come to show (a shared 2-core machine); none is a timing claim.
WAIT_MS = 30_000


@pytest.fixture
def postgres() -> Iterator[LocalPostgres]:
    cluster = LocalPostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.dir, ignore_errors=True)


@pytest.fixture
def gateway(
    tmp_path: Path, postgres: LocalPostgres, redis_url: str, bus_namespace: str
) -> Iterator[GatewayProcess]:
    env = gateway_env(tmp_path, postgres.url, redis_url, bus_namespace, anonymous_read=True)
    process = GatewayProcess(env, tmp_path / "gateway.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_the_dashboard_shows_a_database_outage_until_it_ends(
    gateway: GatewayProcess,
    postgres: LocalPostgres,
    redis_url: str,
    bus_namespace: str,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium")
    answers: list[tuple[str, int]] = []
    problems: list[str] = []
    client = redis.Redis.from_url(redis_url)
    bus = SyncBus(client, bus_namespace)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "response",
            lambda r: answers.append((r.url, r.status)) if "/api/" in r.url else None,
        )
        banner = page.locator("#outage")
        try:
            page.goto(gateway.url)
            expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
            # The services beat with their database check passing: no banner.
            expect(page.locator("#health-list")).to_contain_text("alerts-api", timeout=WAIT_MS)
            pill = page.locator("#health-list li", has_text="alerts-api").locator(".pill")
            expect(pill).to_have_text("ready", timeout=WAIT_MS)
            expect(banner).to_be_hidden(timeout=WAIT_MS)

            # 1. The database stops: the heartbeats (the bus is up) say which services lost it.
            postgres.stop_fast()
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(banner).to_contain_text("The database is unavailable", timeout=WAIT_MS)
            expect(banner).to_contain_text("wait on the station's bus", timeout=WAIT_MS)
            expect(page.locator("#outage-who")).to_contain_text("alerts-api", timeout=WAIT_MS)
            # The playout worker too: it cannot claim or record an airing, and says so.
            expect(page.locator("#outage-who")).to_contain_text(
                "audio-control-playout", timeout=WAIT_MS
            )
            expect(page.locator("#outage-who")).to_contain_text("cannot reach it", timeout=WAIT_MS)
            expect(banner).to_have_attribute("data-sources", "heartbeat", timeout=WAIT_MS)
            expect(pill).to_have_text("not ready", timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "outage.png"), full_page=True)

            # 2. An API read during the outage answers 503 with the message: the page that
            # loads now shows the banner from that answer too.
            read = httpx.get(f"{gateway.url}/api/alerts", params={"limit": 5}, timeout=30)
            assert read.status_code == 503, read.text
            assert read.json() == {"detail": DATABASE_UNAVAILABLE}
            page.reload()
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(banner).to_have_attribute("data-sources", "heartbeat rest", timeout=WAIT_MS)
            assert any("/api/alerts" in url and status == 503 for url, status in answers), answers

            # 3. An alert arrives meanwhile: it waits on the bus.
            alert = make_alert(event="Tornado Warning")
            bus.publish(ALERTS_INGESTED, ingested_envelope(alert))

            # 4. The database returns: the banner goes, the waiting alert is stored and shown.
            postgres.start()
            expect(banner).to_be_hidden(timeout=60_000)
            expect(page.locator("#alert-list li", has_text="Tornado Warning")).to_be_visible(
                timeout=60_000
            )
            stored = httpx.get(f"{gateway.url}/api/alerts", params={"limit": 5}, timeout=30)
            assert [i["identifier"] for i in stored.json()["items"]] == [alert.identifier]
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(gateway.log())
            raise
        finally:
            browser.close()
            client.close()
    assert problems == [], problems
