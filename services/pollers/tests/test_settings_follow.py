"""The pollers follow the station's settings: feeds rebuilt between cycles without a restart,
the environment as default, secrets kept from the environment, idle until a feed exists."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from eas_schemas.events import FeedKind
from eas_schemas.station_settings import (
    CURRENT_SETTINGS_KEY,
    StationSettings,
)
from eas_schemas.streams import SETTINGS_CHANGED
from eas_testkit.factories import current_settings_body, settings_changed_envelope
from pollers.feeds.base import FeedConfigError
from pollers.runner import Pollers
from pollers.settings import PollersSettings
from pollers.station import effective_settings
from servicekit.bus import SyncBus, stream_key

CONTACT = "ops@station.example"


def save(client: redis.Redis, ns: str, version: int, settings: StationSettings) -> None:
    """What station-api does after a commit: announce, then write the current document."""
    SyncBus(client, ns).publish(SETTINGS_CHANGED, settings_changed_envelope(version, ["feeds"]))
    body = current_settings_body(version, settings)
    client.set(stream_key(CURRENT_SETTINGS_KEY, ns), body)


def folders(*paths: Path) -> StationSettings:
    settings = StationSettings()
    settings.feeds.cap_folders = [str(p) for p in paths]
    return settings


def nws(zones: list[str], enabled: bool = True) -> StationSettings:
    settings = StationSettings()
    settings.feeds.nws.enabled = enabled
    settings.feeds.nws.zones = zones
    settings.feeds.nws.contact = CONTACT
    return settings


def wait_until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@contextmanager
def running(app: Pollers) -> Iterator[Pollers]:
    thread = threading.Thread(target=app.run)
    thread.start()
    try:
        yield app
    finally:
        app.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()


# ---- precedence ----------------------------------------------------------------------------


def test_environment_is_the_default_and_configured_parts_win(tmp_path: Path) -> None:
    env = PollersSettings(
        cap_folder=[tmp_path],
        nws_zones=["OHZ014"],
        nws_contact=CONTACT,
        ipaws_url="https://ipaws.example/rest/eas",
        ipaws_pin="secret-pin",
    )
    same, kinds = effective_settings(env, None)
    assert same is env and kinds == env.enabled_feeds()
    # A document whose feeds were never configured (e.g. only the callsign set) changes nothing.
    untouched, kinds = effective_settings(env, StationSettings())
    assert kinds == [FeedKind.NWS, FeedKind.IPAWS, FeedKind.CAP_FOLDER]
    assert untouched.cap_folder == [tmp_path] and untouched.nws_zones == ["OHZ014"]

    doc = StationSettings()
    doc.feeds.cap_folders = ["/srv/cap"]
    doc.feeds.nws.zones = ["OHZ001"]  # configured, but switched off there
    doc.feeds.ipaws.enabled = True
    doc.feeds.ipaws.url = "https://other.example/eas"  # type: ignore[assignment]
    doc.feeds.ipaws.interval_s = 120
    effective, kinds = effective_settings(env, doc)
    assert kinds == [FeedKind.IPAWS, FeedKind.CAP_FOLDER]
    assert effective.cap_folder == [Path("/srv/cap")]
    assert effective.ipaws_url == "https://other.example/eas"
    assert effective.ipaws_interval_s == 120.0
    assert effective.pin() == "secret-pin"  # secrets are never in the document


# ---- feeds rebuilt while running -------------------------------------------------------------


@pytest.mark.integration
def test_changed_cap_folder_is_used_by_the_next_cycle(
    tmp_path: Path, cap_fixtures: Path, redis_url: str, bus_namespace: str, sync_redis_client
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(cap_fixtures / "good" / "national-npt.xml", first / "a.xml")
    shutil.copy(cap_fixtures / "good" / "nws-tor-cuyahoga.xml", second / "b.xml")
    settings = PollersSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        cap_folder=[first],
        cap_folder_interval_s=3600,  # only a rebuild can make a second cycle happen in time
        heartbeat_interval_s=0.2,
        instance="test-follow",
    )
    ingested = f"{bus_namespace}:alerts.ingested"
    with running(Pollers(settings)) as app:
        wait_until(lambda: sync_redis_client.xlen(ingested) == 1)
        assert [f.name for f in app.feeds] == [f"cap-folder:{first}"]
        old_loop = app.loops[0]

        save(sync_redis_client, bus_namespace, 1, folders(second))
        wait_until(lambda: app.settings_version == 1)
        assert [f.name for f in app.feeds] == [f"cap-folder:{second}"]
        wait_until(lambda: sync_redis_client.xlen(ingested) == 2)
        assert old_loop.totals.cycles == 1  # the removed feed stopped after its one cycle

        # The same version again, or a document with the same feeds, rebuilds nothing.
        kept = app.loops[0]
        save(sync_redis_client, bus_namespace, 1, folders(first))
        renamed = folders(second)
        renamed.identity.name = "Renamed"
        save(sync_redis_client, bus_namespace, 2, renamed)
        wait_until(lambda: app.settings_version == 2)
        assert app.loops == [kept]


@pytest.mark.integration
def test_changed_nws_zones_are_asked_for_by_the_next_cycle(
    fake_server, nws_fixtures: Path, redis_url: str, bus_namespace: str, sync_redis_client
) -> None:
    active = (nws_fixtures / "active.json").read_bytes()
    fake_server.responder = lambda seen: (200, {"Content-Type": "application/geo+json"}, active)
    save(sync_redis_client, bus_namespace, 1, nws(["OHZ014"]))
    settings = PollersSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        nws_base_url=fake_server.url,
        allow_private_hosts=["127.0.0.1"],
        heartbeat_interval_s=0.2,
        instance="test-follow-nws",
    )
    with running(Pollers(settings)) as app:
        # The document read at start decides the first cycle: no environment feed is needed.
        wait_until(lambda: len(fake_server.requests) == 1)
        assert fake_server.requests[0].query == {"zone": ["OHZ014"]}
        assert CONTACT in fake_server.requests[0].headers["user-agent"]
        assert app.settings_version == 1

        save(sync_redis_client, bus_namespace, 2, nws(["OHZ015", "OHC035"]))
        wait_until(lambda: len(fake_server.requests) == 2)
        assert fake_server.requests[1].query == {"zone": ["OHZ015,OHC035"]}
        assert app.settings_version == 2

        # Switched off in the document: the feed stops, the runner idles and says so.
        save(sync_redis_client, bus_namespace, 3, nws(["OHZ015"], enabled=False))
        wait_until(lambda: app.settings_version == 3)
        assert app.idle and app.figures()["idle"] == 1.0
        assert "waiting for station settings" in app._healthz()[1]["idle"]


@pytest.mark.integration
def test_idle_without_any_feed_until_settings_add_one(
    tmp_path: Path, cap_fixtures: Path, redis_url: str, bus_namespace: str, sync_redis_client
) -> None:
    settings = PollersSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        heartbeat_interval_s=0.2,
        instance="test-idle",
    )
    with pytest.raises(FeedConfigError, match="no feed configured"):
        Pollers(settings)  # `pollers once`: nothing to do is a configuration error
    shutil.copy(cap_fixtures / "good" / "national-npt.xml", tmp_path / "a.xml")
    beats = f"{bus_namespace}:service.heartbeat"
    with running(Pollers(settings, idle_ok=True)) as app:
        assert app.idle
        wait_until(lambda: sync_redis_client.xlen(beats) >= 1)
        save(sync_redis_client, bus_namespace, 1, folders(tmp_path))
        wait_until(lambda: sync_redis_client.xlen(f"{bus_namespace}:alerts.ingested") == 1)
        assert not app.idle and app.figures()["settings_version"] == 1.0
