"""``eas-station run`` (the README's one-machine mode) as a real process for tests: started in
a session of its own, so the whole station (the runner, the gateway with every service, the
pollers, the playout worker) can be killed at once with ``kill -9`` on its process group and
started again on the same data folder: the same SQLite store, the same embedded Redis files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, write_keypair
from servicekit.embedded import EmbeddedRedis, free_port

# Every setting a test's own environment might carry: the station must see only its own.
_PREFIXES = (
    "EAS_",
    "ALERTS_API_",
    "POLLERS_",
    "AUDIO_CONTROL_",
    "STATION_API_",
    "WS_BROADCASTER_",
)
# Only waiting gets faster: the folder is read every second, a killed consumer's entries are
# claimed after 5 s instead of a minute, heartbeats come every second.
FAST = {
    "POLLERS_CAP_FOLDER_INTERVAL_S": "1",
    "ALERTS_API_CONSUMER_MIN_IDLE_MS": "5000",
    "AUDIO_CONTROL_CONSUMER_MIN_IDLE_MS": "5000",
    "EAS_HEARTBEAT_INTERVAL_S": "1",
    "EAS_LOG_JSON": "false",
}


class _ChildStation:
    """A station process in a session of its own, waited for until ``/readyz`` answers 200."""

    url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None

    def _launch(
        self, argv: list[str], what: str, timeout_s: float, cwd: Path | None = None
    ) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=self.env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the {what} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=5)
                if answer.status_code == 200:
                    return
                last = answer.text[:500]
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(f"the {what} was not ready in {timeout_s:.0f}s ({last}):\n{self.log()}")

    def stop(self) -> int | None:
        """SIGTERM to the group, as a service manager stops it; SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


class StationProcess(_ChildStation):
    def __init__(
        self,
        data_dir: Path,
        cap_folder: Path,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
        self.env.update(FAST)
        self.env.update(
            EAS_CAP_FOLDER=str(cap_folder),
            EAS_PORT=str(self.port),
            EAS_DATA_DIR=str(data_dir),
        )
        self.env.update(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 90) -> None:
        """Start and wait until the gateway answers ready (every hosted service ready)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n---- start {self.starts + 1}\n".encode())
        self.starts += 1
        self._launch(
            [sys.executable, "-m", "eas_station.runner", "run"],
            "station",
            timeout_s,
            cwd=self.data_dir.parent,
        )

    def kill9(self) -> None:
        """SIGKILL to the station's whole process group, as ``kill -9 -PGID`` does."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        # Every process of the group is gone before the next start (the kernel reaps them
        # asynchronously): a survivor would still hold the port or the output's lease.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError("processes of the killed station's group are still alive")

    @property
    def redis_url(self) -> str:
        """The embedded bus of this start (its password changes with every start)."""
        return (self.data_dir / "redis" / "url").read_text().strip()

    def embedded_redis_pid(self) -> int | None:
        """The embedded Redis still running on the data folder, when no station is."""
        return EmbeddedRedis(self.data_dir / "redis").stale_pid()

    def token(self, role: Role = Role.ADMIN) -> str:
        key = (self.data_dir / "keys" / "signing.pem").read_text()
        return TokenSigner(key).mint("station-test", role, ttl_s=3600)


def gateway_env(
    work: Path, database_url: str, redis_url: str, namespace: str, anonymous_read: bool = True
) -> dict[str, str]:
    """The one-port gateway's environment on a given database and bus (the dashboard tests):
    fresh signing keys, fast heartbeats, no setting inherited from the test's environment."""
    private, public = write_keypair(work / "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.update(
        EAS_REDIS_URL=redis_url,
        EAS_BUS_NAMESPACE=namespace,
        EAS_DATABASE_URL=database_url,
        EAS_AUTH_PUBLIC_KEY_FILE=str(public),
        EAS_AUTH_SIGNING_KEY_FILE=str(private),
        EAS_ANONYMOUS_READ="true" if anonymous_read else "false",
        EAS_LOG_JSON="false",
        EAS_HEARTBEAT_INTERVAL_S="1",
        ALERTS_API_STATION_SAME_CODES="039035",
        ALERTS_API_OUTBOX_INTERVAL_S="0.3",
        EAS_MONITOR_DATA_DIR=str(work / "eas-monitor"),
        AUDIO_CONTROL_AIRED_DIR=str(work / "aired"),
    )
    return env


class GatewayProcess(_ChildStation):
    """``python -m eas_station.gateway serve`` (every service and the dashboard on one port)
    as a child process in its own session."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        self._launch(
            [sys.executable, "-m", "eas_station.gateway", "serve", "--port", str(self.port)],
            "gateway",
            timeout_s,
        )
