"""Playout outputs with real files, a real ALSA device (a PCM of a generated asound.conf that
writes what it is given to a file), and real ffmpeg: what goes in comes out and decodes to
its header; bad configs are refused naming the field; a stalled ffmpeg is an error."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from audio_control.composer import compose
from audio_control.playout.outputs import (
    OutputError,
    OutputStalled,
    StreamConfig,
    StreamSink,
    ffmpeg_command,
    open_output,
    parse_config,
    resolve_device,
)
from audio_control.playout.store import OutputSpec
from eas_same.decoder import decode_samples
from eas_same.header import SameHeader

RATE = 22_050


def rwt() -> tuple[str, np.ndarray]:
    header = SameHeader.create(
        originator="CIV",
        event="RWT",
        locations=["039035"],
        duration="0015",
        issued=datetime.now(UTC),
        callsign="WTST/FM",
    )
    return header.text, compose(
        header, None, rate=RATE, attention="broadcast", attention_s=8
    ).samples


def spec(config: dict[str, object], secret: str | None = None) -> OutputSpec:
    return OutputSpec(1, "out", str(config["kind"]), config, secret, {"kind": "none"})


def play(sink: object, samples: np.ndarray, block: int = 2205) -> dict[str, object]:
    for start in range(0, len(samples), block):
        sink.write(samples[start : start + block])  # type: ignore[attr-defined]
    return sink.finish()  # type: ignore[attr-defined,no-any-return]


def headers_in(samples: np.ndarray, rate: int) -> list[str]:
    events, _ = decode_samples(np.asarray(samples, dtype=np.float64), rate)
    return [e.header.raw for e in events if e.type == "header"]


def test_wav_folder_writes_one_file_that_decodes_to_the_header(tmp_path: Path) -> None:
    text, samples = rwt()
    sink = open_output(spec({"kind": "wav_folder", "folder": str(tmp_path)}), RATE, f"item7-{text}")
    # Until it finishes, the folder holds no WAV a reader could take for a message.
    sink.write(samples[:RATE])
    assert list(tmp_path.glob("*.wav")) == []
    for start in range(RATE, len(samples), 4096):
        sink.write(samples[start : start + 4096])
    result = sink.finish()
    (path,) = tmp_path.glob("*.wav")
    assert result["path"] == str(path) and "item7" in path.name and "RWT" in path.name
    assert list(tmp_path.glob(".*")) == []
    import hashlib

    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE and len(audio) == len(samples)
    assert headers_in(audio, rate) == [text]


def test_wav_names_sort_by_time_and_abort_leaves_nothing(tmp_path: Path) -> None:
    cfg = spec({"kind": "wav_folder", "folder": str(tmp_path)})
    names = []
    for label in ("item2-b", "item1-a"):
        sink = open_output(cfg, RATE, label)
        sink.write(np.zeros(100, np.float32))
        names.append(Path(str(sink.finish()["path"])).name)
    assert sorted(names) == names  # written order, whatever the label
    broken = open_output(cfg, RATE, "item3")
    broken.write(np.zeros(100, np.float32))
    broken.abort()
    assert len(list(tmp_path.iterdir())) == 2


def test_null_counts_and_gain_sets_the_level() -> None:
    sink = open_output(spec({"kind": "null", "gain_db": -6.0}), RATE)
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)).astype(np.float32)
    sink.write(tone)
    peak, rms = sink.level()
    assert peak == pytest.approx(20 * np.log10(0.5 * 10 ** (-6 / 20)), abs=0.05)
    assert rms == pytest.approx(peak - 3.01, abs=0.05)
    assert sink.finish() == {"samples": RATE, "seconds": 1.0}
    loud = open_output(spec({"kind": "null", "gain_db": 20.0}), RATE)
    loud.write(tone)
    assert loud.level()[0] == pytest.approx(0.0)  # clipped at full scale, never above


def test_a_realtime_null_output_takes_audio_no_faster_than_it_plays() -> None:
    sink = open_output(spec({"kind": "null", "realtime": True}), RATE)
    block = np.zeros(RATE // 10, np.float32)
    start = time.monotonic()
    for _ in range(5):
        sink.write(block)
    # A lower bound only: sleeping never returns early, however loaded the machine is.
    assert time.monotonic() - start >= 0.4 - 0.01
    assert sink.finish()["seconds"] == 0.5


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"kind": "tape"}, (), "does not match any of the expected tags"),
        ({"kind": "wav_folder", "folder": "aired"}, ("wav_folder", "folder"), "absolute"),
        ({"kind": "device", "device": "hw:1,0;rm"}, ("device", "device"), "hw"),
        ({"kind": "device", "device": "hw:"}, ("device", "device"), "unsupported ALSA"),
        ({"kind": "device", "device": "plughw:x,y"}, ("device", "device"), "CARD[,DEV]"),
        ({"kind": "device", "device": -1}, ("device", "device", "constrained-int"), "greater than"),
        (
            {"kind": "stream", "url": "icecast://source:pw@127.0.0.1:8000/eas.mp3"},
            ("stream", "url"),
            "secret",
        ),
        ({"kind": "stream", "url": "ftp://h/eas"}, ("stream", "url"), "scheme"),
        ({"kind": "stream", "url": "http://h:8000/"}, ("stream", "url"), "mount"),
        ({"kind": "null", "gain_db": 40}, ("null", "gain_db"), "less than"),
        ({"kind": "null", "colour": "red"}, ("null", "colour"), "Extra inputs"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(
    config: dict[str, object], field: tuple[str, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_config(config)
    errors = {tuple(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}
    assert field in errors, errors
    assert words in errors[field]


def test_a_bad_stored_config_fails_the_output_without_repeating_it() -> None:
    bad = {"kind": "stream", "url": "icecast://source:pw@127.0.0.1:8000/eas.mp3"}
    with pytest.raises(OutputError) as caught:
        open_output(spec(bad), RATE)
    assert "url" in str(caught.value) and "pw@" not in str(caught.value)


@pytest.mark.parametrize(
    "name", ["default", "hw:1,0", "plughw:CARD=Device,DEV=0", "sysdefault:CARD=PCH", "eas_out"]
)
def test_alsa_names_are_accepted(name: str) -> None:
    assert parse_config({"kind": "device", "device": name}).device == name  # type: ignore[union-attr]


def test_device_names_resolve_to_portaudio_indexes() -> None:
    devices = [
        {"name": "HDA Intel PCH: ALC892 Analog (hw:0,0)", "max_output_channels": 2},
        {"name": "USB Audio Device: - (hw:1,0)", "max_output_channels": 2},
        {"name": "USB Mic: - (hw:2,0)", "max_output_channels": 0},
        {"name": "default", "max_output_channels": 32},
    ]
    assert resolve_device("hw:1,0", devices) == 1
    assert resolve_device("plughw:0", devices) == 0
    assert resolve_device("default", devices) == 3
    assert resolve_device("usb audio", devices) == 1
    assert resolve_device(0, devices) == 0
    with pytest.raises(OutputError, match="no output device is named 'hw:2,0'"):
        resolve_device("hw:2,0", devices)  # an input only
    with pytest.raises(OutputError, match="matches several"):
        resolve_device("hw:", devices)
    with pytest.raises(OutputError, match="there is no output device 7"):
        resolve_device(7, devices)


_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from audio_control.playout.outputs import open_output, OutputError
    from audio_control.playout.store import OutputSpec
    device, rate, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    samples = np.load(path)
    spec = OutputSpec(1, "dev", "device", {"kind": "device", "device": device}, None, {})
    try:
        sink = open_output(spec, rate)
    except OutputError as exc:
        print(json.dumps({"error": str(exc)}))
        raise SystemExit(0)
    for i in range(0, len(samples), 2205):
        sink.write(samples[i:i + 2205])
    print(json.dumps(sink.finish()))
    """
)


def _alsa(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An ALSA configuration with one PCM, eas_capture, that writes what it plays to a file
    (ALSA's file plugin over its null PCM): a sound device without sound hardware."""
    raw = tmp_path / "played.raw"
    conf = tmp_path / "asound.conf"
    conf.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        'pcm.eas_capture {\n  type file\n  slave.pcm "null"\n'
        f'  file "{raw}"\n  format "raw"\n}}\n'
    )
    return {**os.environ, "ALSA_CONFIG_PATH": str(conf)}, raw


def _run_device(tmp_path: Path, device: str, samples: np.ndarray) -> dict[str, object]:
    env, _ = _alsa(tmp_path)
    np.save(tmp_path / "in.npy", samples)
    done = subprocess.run(
        [sys.executable, "-c", _DEVICE_SCRIPT, device, str(RATE), str(tmp_path / "in.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(
    not Path("/usr/share/alsa/alsa.conf").exists(), reason="no ALSA configuration (libasound2)"
)
def test_device_plays_through_alsa_and_the_audio_decodes(tmp_path: Path) -> None:
    text, samples = rwt()
    result = _run_device(tmp_path, "eas_capture", samples)
    assert result["device"] == "eas_capture" and result["samples"] == len(samples)
    played = np.fromfile(tmp_path / "played.raw", dtype="<f4")
    # ALSA writes whole periods: what it played starts with the message, padded with silence.
    assert len(played) >= len(samples)
    assert np.allclose(played[: len(samples)], samples)
    assert headers_in(played, RATE) == [text]


def test_a_missing_device_is_a_clear_error(tmp_path: Path) -> None:
    result = _run_device(tmp_path, "hw:9,0", np.zeros(10, np.float32))
    assert "no output device is named 'hw:9,0'" in str(result["error"])
    assert "eas_capture" in str(result["error"])  # it says what there is


# ---- stream: ffmpeg and the HTTP source connection ---------------------------------------


class SourceServer:
    """A server that takes a source's PUT like Icecast (100 Continue) and keeps what it gets
    (or, ``read=False``, reads nothing more: a stalled network)."""

    def __init__(self, status: str = "100 Continue", read: bool = True) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.status, self.read = status, read
        self.request = b""
        self.body = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(1024)
            self.request, _, rest = self.request.partition(b"\r\n\r\n")
            self.body += rest
            conn.sendall(f"HTTP/1.1 {self.status}\r\n\r\n".encode())
            while self.read and (got := conn.recv(65536)):
                self.body += got
            if not self.read:
                self.thread_event = threading.Event()
                self.thread_event.wait(60)

    def close(self) -> None:
        self.listener.close()


def test_stream_sends_mp3_with_the_password_only_in_the_connection(tmp_path: Path) -> None:
    server = SourceServer()
    _, samples = rwt()
    cfg = {"kind": "stream", "url": f"http://127.0.0.1:{server.port}/eas.mp3", "format": "mp3"}
    sink = open_output(spec(cfg, "hunter2-pw"), RATE)
    assert isinstance(sink, StreamSink)
    # ps shows ffmpeg's command line: the password is not on it.
    cmdline = Path(f"/proc/{sink.process.pid}/cmdline").read_bytes()
    assert b"hunter2" not in cmdline and b"127.0.0.1" not in cmdline
    assert b"hunter2" not in Path(f"/proc/{sink.process.pid}/environ").read_bytes()
    result = play(sink, samples[: RATE * 2])
    server.thread.join(10)
    assert b"PUT /eas.mp3 HTTP/1.1" in server.request
    assert b"Authorization: Basic " in server.request and b"audio/mpeg" in server.request
    assert "hunter2" not in json.dumps(result)
    assert result["bytes_sent"] == len(server.body) > 0
    mp3 = tmp_path / "got.mp3"
    mp3.write_bytes(bytes(server.body))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", mp3],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "mp3"


def test_a_refused_password_is_an_error_that_does_not_repeat_it() -> None:
    server = SourceServer(status="401 Unauthorized", read=False)
    cfg = {"kind": "stream", "url": f"icecast://127.0.0.1:{server.port}/eas.ogg", "format": "ogg"}
    with pytest.raises(OutputError) as caught:
        open_output(spec(cfg, "wrong-pw"), RATE)
    assert "refused the source user or password" in str(caught.value)
    assert "wrong-pw" not in str(caught.value)


def test_a_stalled_ffmpeg_is_detected_by_the_write_timeout() -> None:
    server = SourceServer()
    cfg = {
        "kind": "stream",
        "url": f"http://127.0.0.1:{server.port}/eas.mp3",
        "write_timeout_s": 1.0,
        "sample_format": "f32le",
    }
    sink = open_output(spec(cfg), RATE)
    assert isinstance(sink, StreamSink)
    os.kill(sink.process.pid, signal.SIGSTOP)  # ffmpeg stops taking audio
    try:
        with pytest.raises(OutputStalled, match="stalled"):
            for _ in range(600):  # at most 60 s of audio: the pipe fills long before
                sink.write(np.zeros(RATE // 10, np.float32))
    finally:
        os.kill(sink.process.pid, signal.SIGCONT)
        sink.abort()
    assert sink.process.poll() is not None


def test_ffmpeg_is_asked_to_encode_only() -> None:
    config = parse_config({"kind": "stream", "url": "icecast://h/eas.ogg", "format": "ogg"})
    assert isinstance(config, StreamConfig)
    cmd = ffmpeg_command(config, 8000)
    assert cmd[-1] == "pipe:1" and "libvorbis" in cmd and not any("://" in c for c in cmd)
