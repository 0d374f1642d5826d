"""The README's run command, pointed at a folder of CAP files and nothing else configured."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from servicekit.embedded import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap" / "good"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_station_stores_and_serves_a_cap_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cap"
    shutil.copytree(FIXTURES, folder)
    expected = len(list(folder.glob("*.xml")))
    assert expected >= 5
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EAS_", "ALERTS_API_", "POLLERS_"))
    }
    env.update(EAS_CAP_FOLDER=str(folder), EAS_PORT=str(port), EAS_DATA_DIR=str(tmp_path / "var"))
    station = subprocess.Popen(
        [sys.executable, "-m", "eas_station.runner", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        items: list[dict] = []
        while time.monotonic() < deadline:
            try:
                items = _get(f"http://127.0.0.1:{port}/api/alerts?limit=100")["items"]
                if len(items) == expected:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert len(items) == expected, f"got {len(items)} of {expected} alerts"
        assert {i["source"] for i in items} == {"cap-folder"}
        assert (tmp_path / "var" / "eas-station.db").exists()
        geo = _get(f"http://127.0.0.1:{port}/api/alerts?format=geojson&limit=100")
        assert geo["type"] == "FeatureCollection" and len(geo["features"]) == expected
    finally:
        os.killpg(station.pid, signal.SIGTERM)
        try:
            station.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(station.pid, signal.SIGKILL)
            raise
    assert station.returncode == 0
