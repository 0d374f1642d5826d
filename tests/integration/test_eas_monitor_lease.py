"""eas-monitor is single per input: two copies started on one station (same database, same
bus) do not both decode. Each is a real ``eas-monitor serve`` process; the input is a looped
WAV file. The first holds the input's lease and runs its worker; the second stands by (says so
in its API, publishes nothing for the input, refuses to start it with a 409 naming the
holder); when the first is SIGKILLed, the second takes the input over, and the first's orphaned
worker goes away on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf

from eas_schemas.monitor_events import MONITOR_STATUS_TYPE
from eas_schemas.streams import MONITOR_STATUS
from eas_testkit.scaled import stream_envelopes
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner
from servicekit.embedded import free_port

pytestmark = pytest.mark.integration

BOUND_S = 60.0


def poll(check: Any, what: str, bound_s: float = BOUND_S) -> Any:
    deadline = time.monotonic() + bound_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {bound_s:.0f} s (last: {last!r})")


class Monitor:
    def __init__(self, name: str, env: dict[str, str], cwd: Path, migrate: bool) -> None:
        self.name = name
        self.port = free_port()
        argv = [sys.executable, "-m", "eas_monitor", "serve", "--port", str(self.port)]
        if not migrate:
            argv.append("--no-migrate")
        cwd.mkdir(parents=True, exist_ok=True)
        self.log = (cwd / "log").open("wb")
        self.process = subprocess.Popen(
            argv,
            env={**env, "EAS_INSTANCE": name},
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def monitor_env(
    tmp_path: Path, database_url: str, redis_url: str, bus_namespace: str, keypair: Any
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "EAS_DATABASE_URL": database_url,
        "EAS_REDIS_URL": redis_url,
        "EAS_BUS_NAMESPACE": bus_namespace,
        "EAS_AUTH_PUBLIC_KEY": keypair[1],
        "EAS_LOG_JSON": "true",
        "EAS_MONITOR_DATA_DIR": str(tmp_path / "monitor-data"),
        "EAS_MONITOR_INPUT_LEASE_TTL_S": "2",
        "EAS_MONITOR_RECONCILE_INTERVAL_S": "0.5",
        "EAS_MONITOR_PROGRESS_INTERVAL_S": "0.5",
        "EAS_HEARTBEAT_INTERVAL_S": "1",
    }


@pytest.fixture
def monitors(tmp_path: Path, monitor_env: dict[str, str]) -> Iterator[list[Monitor]]:
    started: list[Monitor] = []
    try:
        yield started
    finally:
        for m in started:
            m.stop()


def statuses(redis_url: str, ns: str) -> list[Any]:
    import redis.asyncio as aioredis

    async def read() -> list[Any]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return [
                e
                for e in await stream_envelopes(client, MONITOR_STATUS, ns)
                if e.type == MONITOR_STATUS_TYPE
            ]
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_a_second_eas_monitor_stands_by_and_takes_over(
    tmp_path: Path,
    monitor_env: dict[str, str],
    monitors: list[Monitor],
    keypair: Any,
    redis_url: str,
    bus_namespace: str,
) -> None:
    wav = tmp_path / "tone.wav"
    rate = 22050
    t = np.arange(rate * 2) / rate
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate)
    token = TokenSigner(keypair[0]).mint("lease-admin", Role.ADMIN, ttl_s=600)
    auth = {"Authorization": f"Bearer {token}"}

    first = Monitor("monitor-a", monitor_env, tmp_path / "a", migrate=True)
    monitors.append(first)
    poll(first.ready, "the first eas-monitor ready")
    made = httpx.post(
        f"{first.url}/api/eas-monitor/inputs",
        json={"name": "air", "config": {"kind": "file", "path": str(wav), "loop": True}},
        headers=auth,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    input_id = made.json()["id"]
    started = httpx.post(
        f"{first.url}/api/eas-monitor/inputs/{input_id}/start", headers=auth, timeout=60
    )
    assert started.status_code == 200, started.text
    first_worker = started.json()["status"]["pid"]
    assert first_worker is not None

    second = Monitor("monitor-b", monitor_env, tmp_path / "b", migrate=False)
    monitors.append(second)
    poll(second.ready, "the second eas-monitor ready")

    def state_on(m: Monitor) -> str:
        answer = httpx.get(f"{m.url}/api/eas-monitor/inputs/{input_id}", headers=auth, timeout=10)
        return str(answer.json()["status"]["state"])

    poll(lambda: state_on(second) == "standby", "the second copy standing by")
    refused = httpx.post(
        f"{second.url}/api/eas-monitor/inputs/{input_id}/start", headers=auth, timeout=60
    )
    assert refused.status_code == 409, refused.text
    assert "monitor-a" in refused.json()["detail"]
    # Only the holder acts: every status on the bus is its own.
    poll(
        lambda: (
            sum(1 for e in statuses(redis_url, bus_namespace) if e.data["state"] == "running") >= 1
        ),
        "the holder reporting its input running",
    )
    assert state_on(first) == "running" and state_on(second) == "standby"
    sources = {e.source for e in statuses(redis_url, bus_namespace)}
    assert sources == {"eas-monitor/monitor-a"}, sources

    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    poll(lambda: state_on(second) == "running", "the second copy taking the input over")
    # The killed copy's worker notices its supervisor is gone and stops by itself.
    poll(lambda: not psutil.pid_exists(first_worker) or _zombie(first_worker), "orphan gone")
    running = [e for e in statuses(redis_url, bus_namespace) if e.source == "eas-monitor/monitor-b"]
    assert any(e.data["state"] == "running" for e in running)
    assert all(e.data["state"] != "standby" for e in running)  # standby is never published


def _zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
