"""Playout outputs: what a message is played into, one sink per message per output.

An output row (``playout_outputs``) holds its kind, a config validated here (a Pydantic union
on ``kind``), a write-only ``secret`` (the stream password) and its keying. ``open_output``
makes the sink the worker writes float32 blocks into; every sink applies the output's gain,
measures the level of the last block, and either finishes (returning what it did) or aborts.

- ``wav_folder``: one WAV per aired message, written to a dot-file then renamed, so a reader
  of the folder never sees half a message; the name sorts by time and says what aired.
- ``null``: discards and counts (a station with no sound hardware, tests).
- ``device``: a PortAudio output (``sounddevice``), named as PortAudio lists it, by index, or
  by ALSA name (``hw:1,0``, ``plughw:CARD=Device,DEV=0``, ``default``, a PCM of asound.conf).
  Writes wait for room in the device's buffer with a deadline, so a wedged device is an
  error and not a worker stuck for ever.
- ``stream``: Icecast (or any HTTP PUT source endpoint). ffmpeg encodes (MP3 or Ogg Vorbis)
  from its stdin to its stdout; this module sends the encoded bytes to the server itself.
  Why not ffmpeg's ``icecast://`` output: ffmpeg 5.1 (Debian 12) takes the password only in
  the URL or ``-password``, both visible to anyone running ``ps``, and has no way to read an
  option from a file (``-/option`` came in ffmpeg 7). Sending the HTTP ourselves keeps the
  password in this process's memory only; it never reaches a command line, a log or an event.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import math
import os
import re
import select
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal, NamedTuple, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from audio_control.playout.store import OutputSpec

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
SILENT_DBFS = -120.0


class OutputError(OSError):
    """An output that cannot be opened or stopped taking audio; the message names it."""


class OutputStalled(OutputError):
    """The output did not take audio within its write timeout."""


# ---- configs ---------------------------------------------------------------------------------


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_db: float = Field(
        default=0.0, ge=-60.0, le=20.0, description="applied before the output (clipped at 0 dBFS)"
    )


class WavFolderConfig(_Config):
    kind: Literal["wav_folder"] = "wav_folder"
    folder: str = Field(min_length=1, max_length=1024, description="an absolute path")
    subtype: Literal["PCM_16", "FLOAT"] = Field(default="PCM_16", description="WAV sample type")

    @field_validator("folder")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the folder contains a NUL character")
        if not Path(value).is_absolute():
            # A relative folder would depend on where the worker happens to be started.
            raise ValueError("must be an absolute path (e.g. /var/lib/eas-station/aired)")
        return value


class NullConfig(_Config):
    kind: Literal["null"] = "null"
    realtime: bool = Field(
        default=False,
        description="take audio at real time, as a sound card does (timing tests, benchmarks, "
        "a dry run whose interruptions behave as on air)",
    )


# ALSA PCM names: "default", "sysdefault:CARD=PCH", "hw:1,0", "plughw:CARD=Device,DEV=0",
# "front:CARD=1", or a PCM defined in asound.conf. No whitespace (PortAudio names have it).
_ALSA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?::(?P<args>.*))?")
_ALSA_ARG = re.compile(r"(?:[A-Za-z_]+=)?[A-Za-z0-9_\-]+")
_HW_ARGS = re.compile(r"(?:CARD=)?(?P<card>[A-Za-z0-9_]+)(?:,(?:DEV=)?(?P<dev>\d+))?")
_HW_PCMS = {"hw", "plughw"}


def check_device_name(value: str) -> str:
    if not value.strip() or any(ord(c) < 32 for c in value):
        raise ValueError("a device name must be printable and not empty")
    if any(c.isspace() for c in value):
        return value  # a PortAudio device name ("USB Audio Device: - (hw:1,0)"), matched later
    m = _ALSA_NAME.fullmatch(value)
    if m is None:
        raise ValueError(
            f"{value!r} is neither a PortAudio device name nor an ALSA name such as "
            "'default', 'hw:1,0' or 'plughw:CARD=Device,DEV=0'"
        )
    args = m.group("args")
    pcm = value.split(":", 1)[0]
    if args is not None:
        if pcm in _HW_PCMS and _HW_ARGS.fullmatch(args) is None:
            raise ValueError(
                f"unsupported ALSA name {value!r}: {pcm} takes CARD[,DEV], e.g. {pcm}:1,0 or "
                f"{pcm}:CARD=Device,DEV=0"
            )
        parts = args.split(",")
        if len(parts) > 3 or not all(_ALSA_ARG.fullmatch(p) for p in parts):
            raise ValueError(
                f"unsupported ALSA name {value!r}: arguments are up to three comma-separated "
                "values or KEY=value pairs"
            )
    return value


class DeviceConfig(_Config):
    kind: Literal["device"] = "device"
    device: str | Annotated[int, Field(ge=0, le=1023)] = Field(
        description="PortAudio device index, PortAudio name, or ALSA name (hw:1,0, default...)"
    )
    channels: int = Field(default=1, ge=1, le=2, description="mono is copied to both channels")
    latency: Literal["low", "high"] = "high"
    write_timeout_s: float = Field(
        default=5.0, ge=0.5, le=60.0, description="a device not taking audio this long failed"
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | int) -> str | int:
        return check_device_name(value) if isinstance(value, str) else value


class StreamConfig(_Config):
    kind: Literal["stream"] = "stream"
    url: str = Field(
        max_length=1024,
        description="icecast://host:port/mount (or http:// / https://); the password is the "
        "output's secret, never in the URL",
    )
    username: str = Field(default="source", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    format: Literal["mp3", "ogg"] = "mp3"
    bitrate_kbps: int = Field(default=64, ge=16, le=320)
    sample_format: Literal["s16le", "f32le"] = Field(
        default="s16le", description="what is piped into ffmpeg"
    )
    stream_name: str | None = Field(default=None, max_length=200, pattern=r"^[^\r\n]*$")
    public: bool = False
    connect_timeout_s: float = Field(default=5.0, ge=0.5, le=60.0)
    write_timeout_s: float = Field(
        default=5.0, ge=0.5, le=60.0, description="a stream not taking audio this long failed"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("icecast", "http", "https"):
            raise ValueError("the scheme must be icecast, http or https")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError(
                "no user or password in the URL: the user is 'username' and the password is "
                "the output's write-only 'secret'"
            )
        if not parts.hostname:
            raise ValueError("the URL has no host")
        try:
            parts.port  # noqa: B018 - raises for a port out of range
        except ValueError as exc:
            raise ValueError("the URL's port is not a number from 1 to 65535") from exc
        if len(parts.path) < 2 or not re.fullmatch(r"/[A-Za-z0-9_.\-/]+", parts.path):
            raise ValueError("the URL needs a mount point such as /eas.mp3")
        if parts.query or parts.fragment:
            raise ValueError("the URL takes no query or fragment")
        return value


OutputConfig = Annotated[
    WavFolderConfig | NullConfig | DeviceConfig | StreamConfig, Field(discriminator="kind")
]
OUTPUT_CONFIG: TypeAdapter[OutputConfig] = TypeAdapter(OutputConfig)


def parse_config(config: dict[str, Any]) -> OutputConfig:
    return OUTPUT_CONFIG.validate_python(config)


def problems(exc: ValidationError) -> str:
    """What was wrong, by field, without the input (a URL can hold a password)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    )


# ---- what every sink shares -----------------------------------------------------------------


class Level(NamedTuple):
    """The last block's level; the worker reads it as ``peak, rms = sink.level()``."""

    peak_dbfs: float
    rms_dbfs: float


def dbfs(value: float) -> float:
    return max(SILENT_DBFS, 20 * math.log10(value)) if value > 0 else SILENT_DBFS


class _Sink:
    def __init__(self, gain_db: float, rate: int) -> None:
        self.rate = rate
        self.gain = 10 ** (gain_db / 20)
        self.samples = 0
        self._level = Level(SILENT_DBFS, SILENT_DBFS)

    def _prepare(self, block: FloatArray) -> FloatArray:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.gain != 1.0:
            x = np.clip(x * np.float32(self.gain), -1.0, 1.0).astype(np.float32)
        if len(x):
            peak = float(np.max(np.abs(x)))
            rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
            self._level = Level(dbfs(peak), dbfs(rms))
        self.samples += len(x)
        return x

    def level(self) -> Level:
        return self._level

    def _figures(self) -> dict[str, Any]:
        return {"samples": self.samples, "seconds": round(self.samples / self.rate, 3)}


class OutputSink(Protocol):
    rate: int
    samples: int

    def write(self, block: FloatArray) -> None: ...
    def finish(self) -> dict[str, Any]: ...
    def abort(self) -> None: ...
    def level(self) -> Level: ...


# ---- wav_folder -----------------------------------------------------------------------------


def file_label(label: str) -> str:
    """What aired, as it can stand in a file name on any file system."""
    cleaned = re.sub(r"[^A-Za-z0-9+\-]+", "_", label).strip("_")
    return cleaned[:160] or "message"


class WavFolderSink(_Sink):
    def __init__(self, config: WavFolderConfig, rate: int, label: str) -> None:
        super().__init__(config.gain_db, rate)
        folder = Path(config.folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"the folder {folder} cannot be created: {exc.strerror}") from exc
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.path = folder / f"{stamp}-{file_label(label)}.wav"
        self._tmp = folder / f".{self.path.name}.part"
        try:
            self._file: sf.SoundFile | None = sf.SoundFile(
                self._tmp, "w", samplerate=rate, channels=1, format="WAV", subtype=config.subtype
            )
        except (OSError, RuntimeError) as exc:
            raise OutputError(f"cannot write in {folder}: {exc}") from exc

    def write(self, block: FloatArray) -> None:
        if self._file is None:
            raise OutputError("the WAV file is already closed")
        self._file.write(self._prepare(block))

    def finish(self) -> dict[str, Any]:
        if self._file is None:
            raise OutputError("the WAV file is already closed")
        self._file.close()
        self._file = None
        digest = hashlib.sha256()
        with open(self._tmp, "rb+") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                digest.update(chunk)
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)
        return {"path": str(self.path), "sha256": digest.hexdigest(), **self._figures()}

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---- null -----------------------------------------------------------------------------------


class NullSink(_Sink):
    def __init__(self, config: NullConfig, rate: int) -> None:
        super().__init__(config.gain_db, rate)
        self.realtime = config.realtime
        self._started: float | None = None

    def write(self, block: FloatArray) -> None:
        self._prepare(block)
        if self.realtime:
            now = time.monotonic()
            if self._started is None:
                self._started = now
            # Block until the card would have played it: the worker sees the same back
            # pressure as on a device, and a stop lands mid-message.
            due = self._started + self.samples / self.rate
            if due > now:
                time.sleep(due - now)

    def finish(self) -> dict[str, Any]:
        return self._figures()

    def abort(self) -> None:
        pass


# ---- device ---------------------------------------------------------------------------------


def _sd() -> Any:
    """sounddevice, imported when a device output is used: it loads PortAudio (Debian
    package libportaudio2), which a station without sound hardware need not have."""
    try:
        import sounddevice
    except OSError as exc:
        raise OutputError(
            "PortAudio is not installed (Debian package libportaudio2): no sound device can be used"
        ) from exc
    return sounddevice


def _card_index(card: str) -> str:
    """ALSA's card id ("PCH") as its index ("0"), via /proc/asound/<id> -> card<N>."""
    if card.isdigit():
        return card
    with contextlib.suppress(OSError):
        target = os.readlink(f"/proc/asound/{card}")
        if target.startswith("card"):
            return target.removeprefix("card")
    return card


def resolve_device(device: str | int, devices: list[dict[str, Any]]) -> int:
    """The PortAudio index of an output device named by index, name or ALSA name."""
    outputs = [(i, d) for i, d in enumerate(devices) if int(d.get("max_output_channels", 0)) > 0]
    if isinstance(device, int):
        if any(i == device for i, _ in outputs):
            return device
        raise OutputError(f"there is no output device {device}; {_listing(outputs)}")
    exact = [i for i, d in outputs if d["name"] == device]
    if exact:
        return exact[0]
    pcm, _, args = device.partition(":")
    m = _HW_ARGS.fullmatch(args) if pcm in _HW_PCMS else None
    if m is not None:
        hw = f"(hw:{_card_index(m.group('card'))},{m.group('dev') or 0})"
        by_hw = [i for i, d in outputs if hw in d["name"]]
        if len(by_hw) == 1:
            return by_hw[0]
    found = [i for i, d in outputs if device.lower() in str(d["name"]).lower()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(repr(devices[i]["name"]) for i in found)
        raise OutputError(f"the device name {device!r} matches several devices: {names}")
    raise OutputError(f"no output device is named {device!r}; {_listing(outputs)}")


def _listing(outputs: list[tuple[int, dict[str, Any]]]) -> str:
    if not outputs:
        return "this machine has no output device PortAudio can see"
    return "output devices: " + ", ".join(f"{i}: {d['name']!r}" for i, d in outputs)


class DeviceSink(_Sink):
    def __init__(self, config: DeviceConfig, rate: int) -> None:
        super().__init__(config.gain_db, rate)
        sd = _sd()
        self.config = config
        self.index = resolve_device(config.device, list(sd.query_devices()))
        self.name = str(sd.query_devices(self.index)["name"])
        self.underflows = 0
        try:
            sd.check_output_settings(
                device=self.index, channels=config.channels, dtype="float32", samplerate=rate
            )
            self._stream: Any = sd.OutputStream(
                device=self.index,
                samplerate=rate,
                channels=config.channels,
                dtype="float32",
                latency=config.latency,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise OutputError(
                f"the device {self.name!r} cannot play {config.channels} channel(s) at {rate} "
                f"Hz: {exc} (an ALSA 'plughw:' or 'default' name converts rates and channels)"
            ) from exc

    def write(self, block: FloatArray) -> None:
        x = self._prepare(block)
        frames = np.repeat(x[:, None], self.config.channels, axis=1) if len(x) else x
        done = 0
        deadline = time.monotonic() + self.config.write_timeout_s
        while done < len(frames):
            room = int(self._stream.write_available)
            if room <= 0:
                if time.monotonic() > deadline:
                    raise OutputStalled(
                        f"the device {self.name!r} took no audio for "
                        f"{self.config.write_timeout_s:g} s"
                    )
                time.sleep(0.005)
                continue
            # Never more than there is room for: the write returns at once, so the deadline
            # above is what bounds a device that stopped playing.
            part = frames[done : done + room]
            if self._stream.write(np.ascontiguousarray(part)):
                self.underflows += 1
            done += len(part)
            deadline = time.monotonic() + self.config.write_timeout_s

    def finish(self) -> dict[str, Any]:
        self._stream.stop()  # returns once what was written has played
        self._stream.close()
        return {"device": self.name, "underflows": self.underflows, **self._figures()}

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.abort()
            self._stream.close()


# ---- stream ---------------------------------------------------------------------------------

_CONTENT_TYPES = {"mp3": "audio/mpeg", "ogg": "application/ogg"}
_CODECS = {"mp3": ("libmp3lame", "mp3"), "ogg": ("libvorbis", "ogg")}
# How far the sink writes ahead of real time: enough for ffmpeg's encoder delay, little
# enough that a stop or an EAN takes effect on the stream within about a second.
STREAM_LEAD_S = 0.5


def ffmpeg_command(config: StreamConfig, rate: int) -> list[str]:
    """ffmpeg encodes only: raw PCM on stdin, MP3 or Ogg on stdout (no URL, no password)."""
    codec, muxer = _CODECS[config.format]
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        config.sample_format,
        "-ar",
        str(rate),
        "-ac",
        "1",
        "-i",
        "pipe:0",
        "-c:a",
        codec,
        "-b:a",
        f"{config.bitrate_kbps}k",
        "-flush_packets",
        "1",
        "-f",
        muxer,
        "pipe:1",
    ]


def redacted_url(config: StreamConfig) -> str:
    return config.url  # validated to hold no user-info: safe to report as is


def _connect(config: StreamConfig, secret: str | None) -> socket.socket:
    """A source connection to the mount: HTTP PUT (Icecast >= 2.4), authenticated."""
    parts = urlsplit(config.url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 8000 if parts.scheme == "icecast" else 80)
    try:
        sock = socket.create_connection((host, port), timeout=config.connect_timeout_s)
    except OSError as exc:
        raise OutputError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    if tls:
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    headers = [
        f"PUT {parts.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "User-Agent: eas-station-playout",
        f"Content-Type: {_CONTENT_TYPES[config.format]}",
        f"Ice-Public: {1 if config.public else 0}",
        "Expect: 100-continue",
    ]
    if config.stream_name:
        headers.append(f"Ice-Name: {config.stream_name}")
    if secret is not None:
        token = base64.b64encode(f"{config.username}:{secret}".encode()).decode()
        headers.append(f"Authorization: Basic {token}")
    try:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 8192:
            got = sock.recv(1024)
            if not got:
                break
            answer += got
    except OSError as exc:
        sock.close()
        raise OutputError(f"{host}:{port} did not answer the source request: {exc}") from exc
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/\d\.\d (\d{3})", status_line)
    status = int(m.group(1)) if m else 0
    if status in (100, 200):
        sock.settimeout(config.write_timeout_s)
        return sock
    sock.close()
    why = {
        401: "the server refused the source user or password (the output's secret)",
        403: "the server refused the mount (in use by another source, or not allowed)",
        0: "the server did not answer as HTTP",
    }.get(status, f"the server answered {status_line!r}")
    raise OutputError(f"streaming to {redacted_url(config)} refused: {why}")


class StreamSink(_Sink):
    """ffmpeg on a pipe, paced to real time; its output pumped to the server by a thread."""

    def __init__(self, config: StreamConfig, secret: str | None, rate: int) -> None:
        super().__init__(config.gain_db, rate)
        self.config = config
        self.sent_bytes = 0
        self._error: str | None = None
        self._sock = _connect(config, secret)
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - as long as the sink
        try:
            self.process = subprocess.Popen(
                ffmpeg_command(config, rate),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as exc:
            self._sock.close()
            raise OutputError(f"ffmpeg could not be started: {exc.strerror or exc}") from exc
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin.fileno()
        os.set_blocking(self._stdin, False)
        self._pump = threading.Thread(target=self._send, name="stream-pump", daemon=True)
        self._pump.start()
        self._t0: float | None = None

    def _send(self) -> None:
        assert self.process.stdout is not None
        out = self.process.stdout.fileno()
        try:
            while chunk := os.read(out, 16384):
                self._sock.sendall(chunk)
                self.sent_bytes += len(chunk)
        except TimeoutError:
            self._error = f"the server took no data for {self.config.write_timeout_s:g} s (stalled)"
        except OSError as exc:
            self._error = f"the connection to the server broke: {exc.strerror or exc}"
        if self._error is not None:
            with contextlib.suppress(OSError):
                self.process.kill()

    def _pcm(self, x: FloatArray) -> bytes:
        if self.config.sample_format == "f32le":
            return x.astype("<f4").tobytes()
        return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()

    def _check(self) -> None:
        if self._error is not None:
            raise OutputError(self._error)
        code = self.process.poll()
        if code is not None:
            raise OutputError(f"ffmpeg exited ({code}): {self._ffmpeg_said()}")

    def write(self, block: FloatArray) -> None:
        self._check()
        before = self.samples
        data = self._pcm(self._prepare(block))
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        # Pace to real time: listeners (and Icecast's per-client queue) expect it, and a
        # stop must not find the whole message already sent.
        due = self._t0 + before / self.rate - STREAM_LEAD_S
        if due > now:
            time.sleep(due - now)
        view = memoryview(data)
        deadline = time.monotonic() + self.config.write_timeout_s
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OutputStalled(
                    f"ffmpeg took no audio for {self.config.write_timeout_s:g} s (the stream "
                    "is stalled)"
                )
            _, ready, _ = select.select([], [self._stdin], [], min(left, 0.25))
            if not ready:
                self._check()
                continue
            try:
                n = os.write(self._stdin, view)
            except BlockingIOError:
                continue
            except BrokenPipeError as exc:
                raise OutputError(f"ffmpeg stopped reading: {self._ffmpeg_said()}") from exc
            view = view[n:]
            deadline = time.monotonic() + self.config.write_timeout_s

    def finish(self) -> dict[str, Any]:
        self._check()
        assert self.process.stdin is not None
        self.process.stdin.close()
        grace = self.config.write_timeout_s + 5.0
        try:
            code = self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired as exc:
            self.abort()
            raise OutputStalled(f"ffmpeg did not finish within {grace:g} s") from exc
        self._pump.join(grace)
        if self._pump.is_alive():
            self.abort()
            raise OutputStalled("the server did not take the end of the stream")
        self._close_socket()
        if self._error is not None:
            raise OutputError(self._error)
        if code != 0:
            raise OutputError(f"ffmpeg exited ({code}): {self._ffmpeg_said()}")
        return {
            "url": redacted_url(self.config),
            "format": self.config.format,
            "bytes_sent": self.sent_bytes,
            **self._figures(),
        }

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self._close_socket()

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()

    def _ffmpeg_said(self) -> str:
        with contextlib.suppress(OSError):
            self._stderr.seek(0)
            text = self._stderr.read()[-500:].decode("utf-8", "replace").strip()
            return text or "nothing on stderr"
        return "stderr unreadable"


# ---- the factory ----------------------------------------------------------------------------


def open_output(spec: OutputSpec, rate: int, label: str = "message") -> OutputSink:
    """The sink for one message (``label`` says which, for names) on one output."""
    try:
        config = parse_config({**spec.config, "kind": spec.kind})
    except ValidationError as exc:
        raise OutputError(f"the output's config is invalid: {problems(exc)}") from None
    if isinstance(config, WavFolderConfig):
        return WavFolderSink(config, rate, label)
    if isinstance(config, NullConfig):
        return NullSink(config, rate)
    if isinstance(config, DeviceConfig):
        return DeviceSink(config, rate)
    return StreamSink(config, spec.secret, rate)
