"""Each source kind delivers decodable audio: HTTP stream through ffmpeg, TCP, named pipe."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eas_monitor.inputs import PcmPipeConfig, PcmTcpConfig, StreamConfig
from eas_monitor.sources import (
    FfmpegSource,
    PcmPipeSource,
    PcmTcpSource,
    SourceError,
    make_source,
)
from eas_same import SameDecoder, generate, write_wav

from .conftest import RWT


def decode_all(source, limit_s: float = 60.0) -> list[str]:
    decoder = SameDecoder(source.rate)
    got = 0
    texts: list[str] = []
    try:
        while got < source.rate * limit_s:
            chunk = source.read()
            if chunk is None:
                continue
            got += len(chunk)
            texts += [e.text for e in decoder.feed(chunk) if e.type == "header"]
    except SourceError:
        pass  # the far end closed: the audio is over
    texts += [e.text for e in decoder.flush() if e.type == "header"]
    return texts


@pytest.fixture
def http_wav(tmp_path: Path) -> Iterator[str]:
    write_wav(tmp_path / "live.wav", generate(RWT, 16000, attention=1.0), 16000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.wav"
    server.shutdown()


def test_http_stream_through_ffmpeg_is_resampled_and_decoded(http_wav: str):
    source = make_source(
        StreamConfig(url=http_wav, allow_private=True),
        ffmpeg="ffmpeg",
        stream_rate=22050,
        chunk_s=0.1,
    )
    assert isinstance(source, FfmpegSource) and source.rate == 22050
    source.open()
    try:
        assert decode_all(source) == [RWT]
    finally:
        source.close()


def test_ffmpeg_failure_is_a_retryable_error_with_its_message():
    args = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        "/nonexistent.wav",
        "-f",
        "s16le",
        "-",
    ]
    source = FfmpegSource(args, 22050, 0.1, "file test")
    source.open()
    with pytest.raises(SourceError, match="ffmpeg exited"):
        while True:
            source.read()
    source.close()


def _pcm() -> bytes:
    return (generate(RWT, 22050, attention=1.0) * 32767).astype("<i2").tobytes()


def test_tcp_source_reads_pcm_from_a_server():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        data = _pcm()
        for i in range(0, len(data), 4097):  # odd sizes: samples split across reads
            conn.sendall(data[i : i + 4097])
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    source = PcmTcpSource(PcmTcpConfig(host="127.0.0.1", port=port, rate=22050), 0.1)
    source.open()
    try:
        assert decode_all(source) == [RWT]
    finally:
        source.close()
        server.close()


def test_tcp_source_refused_is_a_retryable_error():
    with pytest.raises(SourceError, match="cannot connect"):
        PcmTcpSource(PcmTcpConfig(host="127.0.0.1", port=9, rate=22050), 0.1).open()


def test_named_pipe_source(tmp_path: Path):
    fifo = tmp_path / "pcm"
    os.mkfifo(fifo)
    source = PcmPipeSource(PcmPipeConfig(path=str(fifo), rate=22050), 0.1)
    source.open()  # does not wait for a writer

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(_pcm())

    threading.Thread(target=write, daemon=True).start()
    try:
        assert decode_all(source) == [RWT]
    finally:
        source.close()
