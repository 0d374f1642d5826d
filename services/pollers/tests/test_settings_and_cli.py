from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest

from eas_schemas.events import FeedKind
from pollers.__main__ import main
from pollers.feeds.base import FeedConfigError
from pollers.runner import Pollers, build_feeds
from pollers.settings import PollersSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("POLLERS_", "EAS_")) and not name.startswith("EAS_TEST_"):
            monkeypatch.delenv(name)


def test_prefixed_variable_wins_over_station_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAS_REDIS_URL", "redis://station:6379/0")
    monkeypatch.setenv("EAS_BUS_NAMESPACE", "station")
    monkeypatch.setenv("POLLERS_BUS_NAMESPACE", "pollers-only")
    monkeypatch.setenv("EAS_CAP_FOLDER", "/srv/cap,/srv/more")
    monkeypatch.setenv("POLLERS_NWS_ZONES", "OHZ014, OHC035")
    monkeypatch.setenv("POLLERS_NWS_AREAS", '["OH"]')
    monkeypatch.setenv("POLLERS_IPAWS_PIN", "hunter2")
    settings = PollersSettings()
    assert settings.redis_url == "redis://station:6379/0"
    assert settings.bus_namespace == "pollers-only"
    assert settings.cap_folder == [Path("/srv/cap"), Path("/srv/more")]
    assert settings.nws_zones == ["OHZ014", "OHC035"] and settings.nws_areas == ["OH"]
    assert "hunter2" not in repr(settings) and settings.pin() == "hunter2"
    assert settings.enabled_feeds() == [FeedKind.NWS, FeedKind.CAP_FOLDER]
    assert settings.nws_interval_s == 60 and settings.ipaws_interval_s == 60
    assert settings.cap_folder_interval_s == 10 and settings.max_document_bytes == 1_048_576


def test_explicit_feed_list_and_unknown_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLLERS_FEEDS", "cap-folder")
    monkeypatch.setenv("POLLERS_NWS_ZONES", "OHZ014")
    assert PollersSettings().enabled_feeds() == [FeedKind.CAP_FOLDER]
    monkeypatch.setenv("POLLERS_FEEDS", "cap-folder,radio")
    with pytest.raises(ValueError, match="unknown feed"):
        PollersSettings()


def test_nws_without_contact_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sync_redis_client
) -> None:
    monkeypatch.setenv("POLLERS_NWS_ZONES", "OHZ014")
    with pytest.raises(FeedConfigError, match="POLLERS_NWS_CONTACT"):
        build_feeds(PollersSettings(), sync_redis_client, sleep=lambda s: False)
    assert main(["once"]) == 2
    assert "POLLERS_NWS_CONTACT" in capsys.readouterr().err


def test_nothing_configured_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["once"]) == 2
    assert "no feed configured" in capsys.readouterr().err


@pytest.mark.integration
def test_run_until_stopped_with_health(
    tmp_path: Path, cap_fixtures: Path, redis_url: str, bus_namespace: str, sync_redis_client
) -> None:
    shutil.copy(cap_fixtures / "good" / "national-npt.xml", tmp_path / "npt.xml")
    settings = PollersSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        cap_folder=[tmp_path],
        health_port=0,
        heartbeat_interval_s=0.2,
    )
    stop = threading.Event()
    app = Pollers(settings, stop=stop)
    from pollers.health import HealthServer

    health = HealthServer("127.0.0.1", 0, app._healthz, app._readyz)
    health.start()
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        key = f"{bus_namespace}:alerts.ingested"
        beat = f"{bus_namespace}:service.heartbeat"
        deadline = threading.Event()
        for _ in range(200):  # poll with a deadline (~10 s), never a fixed sleep
            if sync_redis_client.xlen(key) >= 1 and sync_redis_client.xlen(beat) >= 1:
                break
            deadline.wait(0.05)
        assert sync_redis_client.xlen(key) == 1 and sync_redis_client.xlen(beat) >= 1
        with urllib.request.urlopen(f"http://127.0.0.1:{health.port}/healthz") as resp:
            body = json.load(resp)
        assert body["status"] == "ok" and f"cap-folder:{tmp_path}" in body["feeds"]
        with urllib.request.urlopen(f"http://127.0.0.1:{health.port}/readyz") as resp:
            assert json.load(resp)["ready"] is True
    finally:
        stop.set()
        runner.join(timeout=10)
        health.stop()
    assert not runner.is_alive()
