"""A real Icecast server (Debian's icecast2) on loopback: the station streams a composed
message to a mount through the stream output (ffmpeg encodes, the sink sends), a listener
reads the mount at the same time, and the SAME header is decoded from what it received."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from audio_control.composer import compose
from audio_control.playout.outputs import OutputError, open_output
from audio_control.playout.store import OutputSpec
from eas_same.decoder import decode_samples
from eas_same.header import SameHeader

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("icecast2") is None, reason="icecast2 is not installed (scripts/setup.sh)"
    ),
]

RATE = 22_050
PASSWORD = "src-7f3e9a"
TO_PCM = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-f", "f32le", "-ar"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def icecast() -> Iterator[str]:
    # Not pytest's tmp_path: its parents are 0700, and icecast2 running as nobody must reach
    # its log folder.
    with tempfile.TemporaryDirectory(prefix="eas-icecast-") as where:
        yield from _icecast(Path(where))


def _icecast(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    logs = tmp_path / "log"
    logs.mkdir()
    # icecast2 refuses to run as root unless told which user to become.
    owner = (
        "<changeowner><user>nobody</user><group>nogroup</group></changeowner>"
        if os.geteuid() == 0
        else ""
    )
    if owner:
        tmp_path.chmod(0o755)
        logs.chmod(0o777)
    conf = tmp_path / "icecast.xml"
    conf.write_text(
        f"""<icecast>
  <limits><sources>2</sources><clients>10</clients><burst-size>0</burst-size></limits>
  <authentication>
    <source-password>{PASSWORD}</source-password>
    <admin-user>admin</admin-user><admin-password>admin-{PASSWORD}</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths><basedir>{tmp_path}</basedir><logdir>{logs}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><errorlog>error.log</errorlog><accesslog>access.log</accesslog>
    <loglevel>3</loglevel></logging>
  <security><chroot>0</chroot>{owner}</security>
</icecast>
"""
    )
    conf.chmod(0o600)  # it holds the passwords (read before icecast drops root)
    said = tmp_path / "stderr.txt"
    with said.open("wb") as err:
        proc = subprocess.Popen(["icecast2", "-c", str(conf)], stdout=err, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/status-json.xsl", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, said.read_text(errors="replace")
            assert time.monotonic() < deadline, "icecast2 did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listen(url: str, into: bytearray, connected: threading.Event) -> None:
    with httpx.stream("GET", url, timeout=httpx.Timeout(30, connect=5)) as r:
        if r.status_code == 200:
            connected.set()
            for chunk in r.iter_bytes():
                into.extend(chunk)


@pytest.mark.parametrize("fmt", ["mp3", "ogg"])
def test_a_message_streamed_to_icecast_decodes_from_the_mount(icecast: str, fmt: str) -> None:
    header = SameHeader.create(
        originator="CIV",
        event="RWT",
        locations=["039035", "039093"],
        duration="0015",
        issued=datetime.now(UTC),
        callsign="WTST/FM",
    )
    samples = compose(header, None, rate=RATE, attention="broadcast", attention_s=8).samples
    mount = f"/eas.{fmt}"
    port = icecast.rsplit(":", 1)[1]
    config = {"kind": "stream", "url": f"icecast://127.0.0.1:{port}{mount}", "format": fmt}
    sink = open_output(OutputSpec(1, "ice", "stream", config, PASSWORD, {}), RATE, "test")
    received = bytearray()
    listening = threading.Event()
    listener: threading.Thread | None = None
    deadline = time.monotonic() + 10
    # The mount exists once the source is connected; a listener retries until it does.
    while not listening.is_set() and time.monotonic() < deadline:
        listener = threading.Thread(
            target=_listen, args=(icecast + mount, received, listening), daemon=True
        )
        listener.start()
        listening.wait(1.0)
    assert listening.is_set(), "the mount never appeared"
    for start in range(0, len(samples), 2205):
        sink.write(samples[start : start + 2205])
    result = sink.finish()
    assert listener is not None
    listener.join(30)  # Icecast ends the listener when the source leaves
    assert result["bytes_sent"] > 0 and PASSWORD not in str(result)
    decoded = subprocess.run(
        [*TO_PCM, str(RATE), "pipe:1"],
        input=bytes(received),
        capture_output=True,
        check=True,
    ).stdout
    audio = np.frombuffer(decoded, dtype="<f4").astype(np.float64)
    events, _ = decode_samples(audio, RATE)
    assert [e.header.raw for e in events if e.type == "header"] == [header.text]
    assert [e.type for e in events][-1] == "eom"


def test_a_wrong_password_is_refused_by_icecast(icecast: str) -> None:
    port = icecast.rsplit(":", 1)[1]
    config = {"kind": "stream", "url": f"icecast://127.0.0.1:{port}/eas.mp3"}
    with pytest.raises(OutputError, match="refused the source user or password") as caught:
        open_output(OutputSpec(1, "ice", "stream", config, "not-it", {}), RATE)
    assert "not-it" not in str(caught.value)
