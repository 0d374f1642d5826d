"""The embedded Redis of the one-machine station does not outlive a station killed with
``kill -9``, and a server a killed station left on its data folder is stopped before a new
one opens the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from servicekit.children import alive
from servicekit.embedded import EmbeddedRedis

HOLDER = """
import sys, time
from pathlib import Path
from servicekit.embedded import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]), die_with_parent=sys.argv[2] == "1")
print(server.start(), flush=True)
time.sleep(120)
"""


def _station(data: Path, die_with_parent: bool) -> tuple[subprocess.Popen[bytes], str, int]:
    """A process that starts an embedded server and holds it, as the runner does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), "1" if die_with_parent else "0"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert holder.stdout is not None
    url = holder.stdout.readline().decode().strip()
    pid = int((data / "server.pid").read_text().split()[0])
    return holder, url, pid


def _kill9(holder: subprocess.Popen[bytes]) -> None:
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)


def _gone_within(pid: int, bound_s: float) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_server_dies_with_the_station_that_started_it(tmp_path: Path) -> None:
    holder, url, pid = _station(tmp_path / "redis", die_with_parent=True)
    redis.Redis.from_url(url).set("kept", "yes")
    _kill9(holder)
    assert _gone_within(pid, 15), "the embedded server outlived its station"
    # A clean shutdown (SIGTERM from the kernel): what was written is in the append-only file.
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        assert redis.Redis.from_url(server.start()).get("kept") == b"yes"
    finally:
        server.stop()


def test_a_server_left_on_the_data_folder_is_stopped_before_a_new_one(tmp_path: Path) -> None:
    holder, url, pid = _station(tmp_path / "redis", die_with_parent=False)
    redis.Redis.from_url(url).set("kept", "yes")
    _kill9(holder)
    assert alive(pid), "without die_with_parent the server lives on in its own session"
    server = EmbeddedRedis(tmp_path / "redis")
    assert server.stale_pid() == pid
    try:
        client = redis.Redis.from_url(server.start())
        assert not alive(pid)
        assert client.get("kept") == b"yes"
        assert server.stale_pid() is None  # the running server is this object's own
    finally:
        server.stop()
