"""Where the tests' Redis and PostgreSQL come from, in this order (DESIGN.md, Tests):

1. connection URLs in the environment (``EAS_TEST_REDIS_URL``, ``EAS_TEST_DATABASE_URL``), or
   the machine's default servers on 127.0.0.1 when they answer;
2. testcontainers, where a Docker engine answers;
3. an embedded Redis-compatible server, and a throwaway PostgreSQL cluster from local binaries.

Never a silent skip: if none works the session fails with the reasons.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import redis

from servicekit.embedded import EmbeddedRedis, free_port

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"


def _redis_ok(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _tcp_ok(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _docker_ok() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


class Servers:
    """Owns whatever servers it had to start; ``close`` stops them."""

    def __init__(self) -> None:
        self._cleanups: list[object] = []
        self.notes: list[str] = []

    def redis_url(self) -> str:
        url = os.environ.get("EAS_TEST_REDIS_URL", DEFAULT_REDIS)
        if _redis_ok(url):
            self.notes.append(f"redis: {url}")
            return url
        if _docker_ok():
            from testcontainers.redis import RedisContainer

            container = RedisContainer("redis:7")
            container.start()
            self._cleanups.append(container.stop)
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            self.notes.append("redis: testcontainers")
            return f"redis://{host}:{port}/0"
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="eas-test-redis-")), persist=False)
        url = embedded.start()
        self._cleanups.append(embedded.stop)
        self.notes.append(f"redis: embedded {url}")
        return url

    def database_url(self) -> str:
        url = os.environ.get("EAS_TEST_DATABASE_URL", DEFAULT_DATABASE)
        host_port = url.split("@")[-1].split("/")[0]
        host, _, port = host_port.partition(":")
        if _tcp_ok(host or "127.0.0.1", int(port or 5432)):
            self.notes.append(f"postgres: {url}")
            return url
        if _docker_ok():
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:16", driver=None)
            container.start()
            self._cleanups.append(container.stop)
            self.notes.append("postgres: testcontainers")
            return str(container.get_connection_url())
        cluster = LocalPostgres()
        url = cluster.start()
        self._cleanups.append(cluster.stop)
        self.notes.append(f"postgres: local cluster {url}")
        return url

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with suppress(Exception):
                cleanup()  # type: ignore[operator]


def postgres_bin_dir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb) found for a throwaway cluster")


class LocalPostgres:
    """A throwaway PostgreSQL cluster on a free port, for tests that stop or break the server."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="eas-test-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root; use the postgres system user when there is one.
            shutil.chown(self.dir, "postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout_s: float = 30) -> str:
        data = self.dir / "data"
        if not self._initialised:
            subprocess.run(
                [
                    *self._run_as,
                    str(self.bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
            )
            self._initialised = True
        self.process = subprocess.Popen(
            [
                *self._run_as,
                str(self.bin / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _tcp_ok("127.0.0.1", self.port):
                time.sleep(0.2)
                return self.url
            time.sleep(0.1)
        raise RuntimeError("throwaway PostgreSQL did not start")

    def stop_fast(self, timeout_s: float = 30) -> None:
        """Stop as an outage does: open sessions are cut (``pg_ctl stop -m fast``: SIGINT to
        the postmaster), not waited for as a plain stop (SIGTERM, "smart") would; the data
        stays, ``start()`` brings the same cluster back."""
        pid_file = self.dir / "data" / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("throwaway PostgreSQL did not stop")
        if self.process is not None:
            self.process.wait(timeout=timeout_s)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
