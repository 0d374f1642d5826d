"""The README's demo, as a newcomer runs it: `eas-station run --demo`, nothing else configured
(embedded Redis, SQLite), offline. A CAP Tornado Warning and an on-air Severe Thunderstorm
Warning must each be decided, aired into the demo's WAV folder and logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from eas_same.decoder import decode_samples
from servicekit.embedded import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_the_demo_airs_and_logs_a_cap_and_an_on_air_alert(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EAS_", "ALERTS_API_", "POLLERS_", "AUDIO_CONTROL_", "STATION_API_"))
    }
    env.update(EAS_PORT=str(port), EAS_DATA_DIR=str(tmp_path / "var"))
    station = subprocess.Popen(
        [sys.executable, "-m", "eas_station.runner", "run", "--demo"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    aired = tmp_path / "var" / "demo" / "aired"
    try:
        deadline = time.monotonic() + 300
        files: list[Path] = []
        relayed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            files = sorted(aired.glob("*.wav")) if aired.exists() else []
            try:
                log = _get(f"http://127.0.0.1:{port}/api/audio/log?kind=relayed")
                relayed = log["items"]
            except OSError:
                pass
            if len(files) >= 2 and len(relayed) >= 2:
                break
            time.sleep(0.5)
        assert len(files) >= 2 and len(relayed) >= 2, (files, relayed)
        assert _get(f"http://127.0.0.1:{port}/api/audio/log/verify")["intact"] is True
    finally:
        os.killpg(station.pid, signal.SIGTERM)
        try:
            station.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(station.pid, signal.SIGKILL)
            raise
    headers = set()
    for path in files:
        samples, rate = sf.read(path, dtype="float64")
        events, _ = decode_samples(samples, rate)
        headers.add(next(e.text for e in events if e.type == "header"))
    events_aired = {h.split("-")[2] for h in headers}
    assert events_aired == {"TOR", "SVR"}, headers
    assert all(h.endswith("-DEMO/FM -") for h in headers), headers
