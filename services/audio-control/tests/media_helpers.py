"""Shared test helpers for message audio: reference decoders, a loopback HTTP server, ffmpeg
encoding of test files."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from audio_control.audio_files import wav_bytes
from eas_same.decoder import Event, decode_samples


def own_decode(x: np.ndarray, rate: int) -> list[Event]:
    events, _ = decode_samples(x, rate)
    return events


def ffmpeg_encode(samples: np.ndarray, rate: int, fmt: str, *extra: str) -> bytes:
    """``samples`` (mono float) encoded by ffmpeg to ``fmt`` (mp3, flac, ogg, wav ...)."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "wav",
            "-i",
            "pipe:0",
            *extra,
            "-f",
            fmt,
            "pipe:1",
        ],
        input=wav_bytes(samples, rate),
        capture_output=True,
        check=True,
    )
    return proc.stdout


def ffmpeg_lavfi(
    source: str, seconds: float, fmt: str, *extra: str, seekable_dir: Path | None = None
) -> bytes:
    """A lavfi source rendered by ffmpeg. Written to a pipe, FLAC and Ogg cannot go back to
    fill in their length; ``seekable_dir``: write a file there instead, so the container
    declares its length (as a file made by an attacker would, to the value they choose)."""
    target = "pipe:1" if seekable_dir is None else str(seekable_dir / f"lavfi.{fmt}")
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-t",
            str(seconds),
            *extra,
            "-f",
            fmt,
            target,
        ],
        capture_output=True,
        check=True,
    )
    return proc.stdout if seekable_dir is None else Path(target).read_bytes()


def speechlike(seconds: float, rate: int, level: float = 0.3, seed: int = 1) -> np.ndarray:
    """Syllable-rate modulated harmonics: level-measurable audio with speech's pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    voice = sum(
        np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k
        for k, f in enumerate((140.0, 280.0, 420.0, 700.0, 1100.0), start=1)
    )
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    x = voice * envelope
    return (level * x / np.max(np.abs(x))).astype(np.float32)


def band_power(x: np.ndarray, rate: int, freq: float) -> float:
    """Power of ``x`` at ``freq`` (projection on a complex exponential), per sample."""
    t = np.arange(len(x)) / rate
    return float(np.abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) ** 2 / len(x) ** 2)


# ---- loopback HTTP server ------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True
    chunk: int = 1 << 16
    delay_first_s: float = 0.0  # before the status line
    delay_chunk_s: float = 0.0  # between body chunks
    repeat: bool = False  # a never-ending stream: the body again and again


@dataclass
class LoopbackServer:
    base: str
    routes: dict[str, Route]
    hits: list[str]

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)


def _handler(routes: dict[str, Route], hits: list[str], stop: threading.Event) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            route = routes.get(self.path)
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.delay_first_s and stop.wait(route.delay_first_s):
                return
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            if route.content_length and not route.repeat:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            try:
                while True:
                    for i in range(0, len(route.body), route.chunk):
                        self.wfile.write(route.body[i : i + route.chunk])
                        self.wfile.flush()
                        if route.delay_chunk_s and stop.wait(route.delay_chunk_s):
                            return
                    if not route.repeat or stop.is_set():
                        break
            except (BrokenPipeError, ConnectionResetError):
                return
            if not route.content_length or route.repeat:
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving the :class:`Route` s put in it."""
    routes: dict[str, Route] = {}
    hits: list[str] = []
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, hits, stop))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{server.server_port}", routes, hits)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed (run scripts/setup.sh)")
    return exe
