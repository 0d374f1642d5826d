"""Audio sources for a worker: each yields mono int16 chunks at a known rate.

A source is opened, read until it ends or fails, and closed; the worker's capture thread
reopens retryable sources with exponential backoff. ``SourceEnded`` means the audio ended
normally (a file that is not looped); ``SourceError`` is a failure worth retrying;
``SourceConfigError`` can never work as configured (not retried).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import numpy.typing as npt
import soundfile as sf

from eas_monitor.httpstream import OpenStream, StreamOpenError, ffmpeg_pipe_args, open_stream
from eas_monitor.inputs import (
    DeviceConfig,
    FileConfig,
    InputConfig,
    PcmPipeConfig,
    PcmTcpConfig,
    StreamConfig,
)
from servicekit.outbound import redact, strip_userinfo

Chunk = npt.NDArray[np.int16]


class SourceError(Exception):
    """The source failed; reopening may help."""


class SourceEnded(Exception):
    """The audio ended normally."""


class SourceConfigError(Exception):
    """The source can never work as configured."""


class Source(Protocol):
    rate: int

    def open(self) -> None: ...

    def read(self) -> Chunk | None:
        """The next chunk; None when nothing arrived within the read timeout."""
        ...

    def close(self) -> None: ...

    @property
    def retry(self) -> bool: ...


def to_int16_mono(block: npt.NDArray[np.int16]) -> Chunk:
    if block.ndim == 2:
        block = block.mean(axis=1).astype(np.int16) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(block, dtype=np.int16)


class FileSource:
    """WAV/FLAC file, optionally looped, optionally paced at real time."""

    retry = False

    def __init__(self, cfg: FileConfig, chunk_s: float) -> None:
        self.cfg = cfg
        self.chunk_s = chunk_s
        self.rate = 0
        self._file: sf.SoundFile | None = None
        self._started = 0.0
        self._read = 0

    def open(self) -> None:
        try:
            self._file = sf.SoundFile(self.cfg.path)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise SourceConfigError(f"cannot open {self.cfg.path}: {exc}") from exc
        self.rate = int(self._file.samplerate)
        self._started = time.monotonic()
        self._read = 0

    def read(self) -> Chunk | None:
        assert self._file is not None
        n = max(1, round(self.rate * self.chunk_s))
        if self.cfg.realtime:
            # Pace by the total read so far, so timing errors never accumulate.
            ahead = self._read / self.rate - (time.monotonic() - self._started)
            if ahead > 0:
                time.sleep(ahead)
        block = self._file.read(n, dtype="int16", always_2d=True)
        if len(block) == 0:
            if not self.cfg.loop:
                raise SourceEnded(f"end of {self.cfg.path}")
            self._file.seek(0)
            block = self._file.read(n, dtype="int16", always_2d=True)
            if len(block) == 0:
                raise SourceEnded(f"{self.cfg.path} is empty")
        self._read += len(block)
        return to_int16_mono(block)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _ByteStream:
    """s16le bytes to int16 chunks, keeping an odd trailing byte for the next read."""

    def __init__(self) -> None:
        self._rest = b""

    def convert(self, data: bytes) -> Chunk:
        data = self._rest + data
        even = len(data) - (len(data) % 2)
        self._rest = data[even:]
        return np.frombuffer(data[:even], dtype="<i2").astype(np.int16)


class PcmPipeSource:
    """Raw s16le mono from a named pipe; a writer closing it is an error (reopened)."""

    retry = True

    def __init__(self, cfg: PcmPipeConfig, chunk_s: float) -> None:
        self.cfg = cfg
        self.rate = cfg.rate
        self.nbytes = 2 * max(1, round(cfg.rate * chunk_s))
        self._fd: int | None = None
        self._conv = _ByteStream()
        self._got_data = False

    def open(self) -> None:
        path = Path(self.cfg.path)
        if not path.exists():
            raise SourceError(f"named pipe {path} does not exist")
        # O_NONBLOCK: open does not hang waiting for a writer; reads poll below.
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._got_data = False

    def read(self) -> Chunk | None:
        assert self._fd is not None
        ready, _, _ = select.select([self._fd], [], [], 0.5)
        if not ready:
            return None
        try:
            data = os.read(self._fd, self.nbytes)
        except BlockingIOError:
            return None
        if not data:
            if self._got_data:
                raise SourceError(f"writer closed {self.cfg.path}")
            time.sleep(0.2)  # no writer yet: a FIFO reads EOF until one opens it
            return None
        self._got_data = True
        return self._conv.convert(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PcmTcpSource:
    """Raw s16le mono from a TCP server (we connect to host:port)."""

    retry = True

    def __init__(self, cfg: PcmTcpConfig, chunk_s: float) -> None:
        self.cfg = cfg
        self.rate = cfg.rate
        self.nbytes = 2 * max(1, round(cfg.rate * chunk_s))
        self._sock: socket.socket | None = None
        self._conv = _ByteStream()

    def open(self) -> None:
        try:
            self._sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=5)
        except OSError as exc:
            raise SourceError(f"cannot connect to {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        self._sock.settimeout(0.5)

    def read(self) -> Chunk | None:
        assert self._sock is not None
        try:
            data = self._sock.recv(self.nbytes)
        except TimeoutError:
            return None
        except OSError as exc:
            raise SourceError(f"connection to {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        if not data:
            raise SourceError(f"{self.cfg.host}:{self.cfg.port} closed the connection")
        return self._conv.convert(data)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


class FfmpegSource:
    """Anything ffmpeg can read (HTTP/Icecast stream, ALSA device), as s16le mono."""

    retry = True

    def __init__(self, args: list[str], rate: int, chunk_s: float, what: str) -> None:
        self.args = args
        self.rate = rate
        self.what = what
        self.nbytes = 2 * max(1, round(rate * chunk_s))
        self._proc: subprocess.Popen[bytes] | None = None
        self._conv = _ByteStream()
        self._stderr: deque[str] = deque(maxlen=8)

    def open(self) -> None:
        try:
            self._proc = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise SourceConfigError(f"cannot run {self.args[0]}: {exc}") from exc
        assert self._proc.stderr is not None
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        # ffmpeg's stderr must be read, or it blocks once the pipe buffer is full.
        for line in stream:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    def read(self) -> Chunk | None:
        assert self._proc is not None and self._proc.stdout is not None
        data = self._proc.stdout.read1(self.nbytes)  # type: ignore[attr-defined]
        if not data:
            self._proc.wait(timeout=5)
            tail = " | ".join(list(self._stderr)[-2:]) or "no output"
            raise SourceError(f"{self.what}: ffmpeg exited ({self._proc.returncode}): {tail}")
        return self._conv.convert(data)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None


class StreamSource(FfmpegSource):
    """An HTTP(S) stream: we fetch it (eas_monitor.httpstream), ffmpeg decodes it from a pipe,
    so the URL and its credentials never reach ffmpeg's command line. A dropped connection
    ends ffmpeg's input; the worker's backoff loop reconnects."""

    def __init__(self, cfg: StreamConfig, ffmpeg: str, rate: int, chunk_s: float) -> None:
        super().__init__([], rate, chunk_s, f"stream {strip_userinfo(str(cfg.url))}")
        self.cfg = cfg
        self.ffmpeg = ffmpeg
        self._stream: OpenStream | None = None

    def open(self) -> None:
        try:
            self._stream = open_stream(str(self.cfg.url), allow_private=self.cfg.allow_private)
        except StreamOpenError as exc:
            raise SourceError(str(exc)) from None
        self.args = ffmpeg_pipe_args(self.ffmpeg, self._stream.demuxer, self.rate)
        try:
            self._proc = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            self._stream.close()
            raise SourceConfigError(f"cannot run {self.args[0]}: {exc}") from exc
        assert self._proc.stderr is not None and self._proc.stdin is not None
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()
        threading.Thread(
            target=self._pump, args=(self._stream, self._proc.stdin), daemon=True
        ).start()

    def _pump(self, stream: OpenStream, sink: IO[bytes]) -> None:
        try:
            while True:
                data = stream.response.read1(65536)
                if not data:
                    break
                sink.write(data)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._stderr.append(f"stream read failed: {redact(str(exc)) or type(exc).__name__}")
        finally:
            with contextlib.suppress(OSError, ValueError):
                sink.close()
            stream.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def ffmpeg_device_args(ffmpeg: str, device: str, rate: int) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "alsa", "-i", device, "-f", "s16le", "-ac", "1", "-ar", str(rate), "-",
    ]  # fmt: skip


def make_source(cfg: InputConfig, *, ffmpeg: str, stream_rate: int, chunk_s: float) -> Source:
    if isinstance(cfg, FileConfig):
        return FileSource(cfg, chunk_s)
    if isinstance(cfg, PcmPipeConfig):
        return PcmPipeSource(cfg, chunk_s)
    if isinstance(cfg, PcmTcpConfig):
        return PcmTcpSource(cfg, chunk_s)
    if isinstance(cfg, StreamConfig):
        return StreamSource(cfg, ffmpeg, stream_rate, chunk_s)
    if isinstance(cfg, DeviceConfig):
        args = ffmpeg_device_args(ffmpeg, cfg.device, cfg.rate)
        return FfmpegSource(args, cfg.rate, chunk_s, f"device {cfg.device}")
    raise SourceConfigError(f"unsupported input {cfg!r}")
