"""CAP folder -> `pollers once` -> ``alerts.ingested`` and ``poller.status`` in real Redis.

Run in-process and as a separate process (``uv run --frozen pollers once``) configured only
through environment variables, the way a station runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from eas_schemas.envelope import decode_entry
from eas_schemas.events import ALERT_INGESTED_TYPE, POLLER_STATUS_TYPE
from eas_schemas.streams import ALERTS_INGESTED, POLLER_STATUS
from pollers.runner import Pollers
from pollers.settings import PollersSettings
from servicekit.bus import stream_key

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CAP = REPO / "tests" / "fixtures" / "cap"

OID = "urn:oid:2.49.0.1.840.0."
GOOD = {
    "nws-tor-cuyahoga.xml": OID + "7a1c2e0f4b9d4b1e8f3a6c5d2e1f0a9b8c7d6e5f.001.1",
    "bilingual-en-es-pr.xml": OID + "3e5f7a9b1c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f.001.1",
    "statewide-ohio-cem.xml": "OHEMA-2026-03-0042",
    "national-npt.xml": "NPT-2026-10-01-1420",
}
BAD = {
    "billion-laughs.xml": "XML entity declarations are forbidden",
    "xxe-etc-passwd.xml": "XML external entity 'xxe' is forbidden",
    "truncated.xml": "malformed XML",
    "missing-sent.xml": "missing <sent>",
    "wrong-namespace.xml": "not a CAP 1.2/1.1 alert",
}


@pytest.fixture
def cap_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cap"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(CAP / "good" / name, folder / name)
    for name in BAD:
        shutil.copy(CAP / "bad" / name, folder / name)
    return folder


@pytest.fixture
def client(redis_url: str) -> Any:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def _envelopes(client: redis.Redis, namespace: str, spec: Any) -> list[dict[str, Any]]:
    rows: Any = client.xrange(stream_key(spec, namespace))
    return [decode_entry(fields).model_dump(mode="json") for _id, fields in rows]


def _check_first_run(client: redis.Redis, namespace: str, folder: Path) -> None:
    alerts = _envelopes(client, namespace, ALERTS_INGESTED)
    assert {a["type"] for a in alerts} == {ALERT_INGESTED_TYPE}
    assert sorted(a["data"]["alert"]["identifier"] for a in alerts) == sorted(GOOD.values())
    for envelope in alerts:
        alert = envelope["data"]["alert"]
        assert envelope["subject"].startswith(f"{alert['sender']}/{alert['identifier']}/")
        assert envelope["data"]["feed"] == f"cap-folder:{folder}"
    (status,) = _envelopes(client, namespace, POLLER_STATUS)
    assert status["type"] == POLLER_STATUS_TYPE
    data = status["data"]
    assert data["feed_kind"] == "cap-folder" and data["ok"] is True
    assert data["fetched"] == len(GOOD) + len(BAD) and data["new"] == len(GOOD)
    assert len(data["rejected"]) == len(BAD)
    for name, reason in BAD.items():
        assert any(r.startswith(f"{name}: ") and reason in r for r in data["rejected"]), name


def _check_second_run(client: redis.Redis, namespace: str) -> None:
    assert len(_envelopes(client, namespace, ALERTS_INGESTED)) == len(GOOD)
    statuses = _envelopes(client, namespace, POLLER_STATUS)
    assert len(statuses) == 2
    second = statuses[1]["data"]
    assert second["new"] == 0 and second["fetched"] == 0 and second["not_modified"] is True


def test_pollers_once_in_process(
    cap_folder: Path, redis_url: str, bus_namespace: str, client: redis.Redis
) -> None:
    settings = PollersSettings(
        redis_url=redis_url, bus_namespace=bus_namespace, cap_folder=[cap_folder]
    )
    (status,) = Pollers(settings).once()
    assert status.new == len(GOOD) and len(status.rejected) == len(BAD)
    _check_first_run(client, bus_namespace, cap_folder)
    (again,) = Pollers(settings).once()
    assert again.new == 0
    _check_second_run(client, bus_namespace)


def _pollers_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    command = (
        [uv, "run", "--frozen", "pollers", "once"]
        if uv
        else [sys.executable, "-m", "pollers", "once"]
    )
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_pollers_once_as_a_process(
    cap_folder: Path, redis_url: str, bus_namespace: str, client: redis.Redis
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLLERS_", "EAS_"))}
    env |= {
        "EAS_REDIS_URL": redis_url,
        "EAS_BUS_NAMESPACE": bus_namespace,
        "POLLERS_CAP_FOLDER": str(cap_folder),
    }
    first = _pollers_once(env)
    assert first.returncode == 0, first.stderr
    (line,) = first.stdout.strip().splitlines()
    assert json.loads(line)["new"] == len(GOOD)
    # Every rejection is logged with its reason (JSON logs on stderr).
    logged = [json.loads(x) for x in first.stderr.splitlines() if x.startswith("{")]
    rejected_logs = [x["message"] for x in logged if "rejected document" in x["message"]]
    assert len(rejected_logs) == len(BAD)
    _check_first_run(client, bus_namespace, cap_folder)

    second = _pollers_once(env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.strip())["new"] == 0
    _check_second_run(client, bus_namespace)
