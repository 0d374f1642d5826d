"""CAP audio resources fetched from a real HTTP server on loopback: types, sizes, time limits,
redirects, digests, bombs, and the CAP audio -> TTS -> none fallback."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from audio_control.audio_files import TARGET_RMS_DBFS, wav_bytes
from audio_control.narration import (
    CapAudioDetail,
    CapAudioResource,
    NarrationConfig,
    NarrationError,
    fetch_cap_audio,
    narrate_cap_alert,
)

from .media_helpers import (
    LoopbackServer,
    Route,
    ffmpeg_encode,
    ffmpeg_lavfi,
    loopback_server,
    speechlike,
    tool,
)

RATE = 22050
CONFIG = NarrationConfig(rate=RATE)
TEXT = "A civil authority has issued a shelter in place warning. *** Stay indoors."


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    return speechlike(4.0, RATE, level=0.2)


@pytest.fixture(scope="module")
def voice_wav(voice: np.ndarray) -> bytes:
    return wav_bytes(voice, RATE)


@pytest.fixture(scope="module")
def voice_mp3(voice: np.ndarray) -> bytes:
    tool("ffmpeg")
    # ECIG 3.5.2: MP3 mono 64 kbit/s 22.05 kHz
    return ffmpeg_encode(voice, RATE, "mp3", "-c:a", "libmp3lame", "-b:a", "64k")


async def failure(resource: CapAudioResource, client: httpx.AsyncClient, **cfg: float) -> str:
    config = NarrationConfig(rate=RATE, **cfg)  # type: ignore[arg-type]
    with pytest.raises(NarrationError) as info:
        await fetch_cap_audio(resource, client=client, config=config)
    assert info.value.failure.source == "cap_audio"
    return f"{info.value.failure.reason}: {info.value.failure.message}"


async def test_wav_resource(http_server: LoopbackServer, client, voice_wav: bytes) -> None:
    url = http_server.serve(
        "/alert.wav", Route(voice_wav, headers={"Content-Type": "audio/x-ipaws-audio-wav"})
    )
    digest = hashlib.sha1(voice_wav).hexdigest().upper()
    res = CapAudioResource(mime_type="audio/x-ipaws-audio-wav", uri=url, digest=digest)
    narration = await fetch_cap_audio(res, client=client, config=CONFIG)
    assert narration.source == "cap_audio" and narration.rate == RATE
    assert narration.duration_s == pytest.approx(4.0, abs=0.01)
    assert narration.levels.rms_dbfs == pytest.approx(TARGET_RMS_DBFS, abs=0.2)
    detail = narration.detail
    assert isinstance(detail, CapAudioDetail)
    assert detail.digest_checked and detail.format == "wav" and detail.size_bytes == len(voice_wav)
    assert detail.sha256 == hashlib.sha256(voice_wav).hexdigest()
    assert detail.content_type == "audio/x-ipaws-audio-wav" and not detail.streaming

    bad = CapAudioResource(mime_type="audio/wav", uri=url, digest="0" * 40)
    assert (await failure(bad, client)).startswith("digest_mismatch")


@pytest.mark.parametrize("served_as", ["audio/mpeg", "audio/x-ipaws-audio-mp3", "audio/mp3"])
async def test_mp3_resource(
    http_server: LoopbackServer, client, voice_mp3: bytes, served_as: str
) -> None:
    url = http_server.serve(
        "/alert.mp3", Route(voice_mp3, headers={"Content-Type": f"{served_as}; charset=binary"})
    )
    res = CapAudioResource(mime_type="audio/x-ipaws-audio-mp3", uri=url)
    narration = await fetch_cap_audio(res, client=client, config=NarrationConfig(rate=16000))
    assert narration.rate == 16000
    assert isinstance(narration.detail, CapAudioDetail) and narration.detail.format == "mp3"
    assert narration.duration_s == pytest.approx(4.0, abs=0.1)
    assert not narration.detail.digest_checked


async def test_mp3_and_wav_air_at_one_loudness(
    http_server: LoopbackServer, client, voice: np.ndarray
) -> None:
    quiet = ffmpeg_encode(voice * 0.05, RATE, "mp3", "-c:a", "libmp3lame", "-b:a", "64k")
    loud = wav_bytes(voice * 4.0, RATE)  # clipped in the file itself: peaks at full scale
    a = http_server.serve("/q.mp3", Route(quiet, headers={"Content-Type": "audio/mpeg"}))
    b = http_server.serve("/l.wav", Route(loud, headers={"Content-Type": "audio/wav"}))
    na = await fetch_cap_audio(CapAudioResource("audio/mpeg", a), client=client, config=CONFIG)
    nb = await fetch_cap_audio(CapAudioResource("audio/wav", b), client=client, config=CONFIG)
    assert na.levels.rms_dbfs == pytest.approx(TARGET_RMS_DBFS, abs=0.3)
    assert nb.levels.rms_dbfs == pytest.approx(TARGET_RMS_DBFS, abs=0.3)


async def test_wrong_types(http_server: LoopbackServer, client, voice_wav: bytes) -> None:
    url = http_server.serve("/page", Route(voice_wav, headers={"Content-Type": "text/html"}))
    reason = await failure(CapAudioResource("audio/wav", url), client)
    assert reason.startswith("wrong_type") and "text/html" in reason
    none = http_server.serve("/untyped", Route(voice_wav))
    assert (await failure(CapAudioResource("audio/wav", none), client)).startswith("wrong_type")
    hits = len(http_server.hits)
    # A declared type that is not EAS audio is refused without fetching anything.
    reason = await failure(CapAudioResource("video/mp4", url), client)
    assert reason.startswith("wrong_type") and len(http_server.hits) == hits
    # Audio type, content that is not audio.
    fake = http_server.serve(
        "/fake.wav", Route(b"<html>not found</html>", headers={"Content-Type": "audio/wav"})
    )
    assert (await failure(CapAudioResource("audio/wav", fake), client)).startswith(
        "unsupported_format"
    )
    missing = http_server.url("/missing.wav")
    assert "HTTP 404" in await failure(CapAudioResource("audio/wav", missing), client)


async def test_oversized(http_server: LoopbackServer, client, voice_wav: bytes) -> None:
    cap = 64 * 1024
    assert len(voice_wav) > cap
    declared = http_server.serve(
        "/big.wav", Route(voice_wav, headers={"Content-Type": "audio/wav"})
    )
    reason = await failure(CapAudioResource("audio/wav", declared), client, cap_audio_max_bytes=cap)
    assert reason.startswith("too_big") and str(len(voice_wav)) in reason
    chunked = http_server.serve(
        "/big-chunked.wav",
        Route(voice_wav, headers={"Content-Type": "audio/wav"}, content_length=False),
    )
    reason = await failure(CapAudioResource("audio/wav", chunked), client, cap_audio_max_bytes=cap)
    assert reason.startswith("too_big")
    b64 = base64.b64encode(voice_wav).decode()
    reason = await failure(
        CapAudioResource("audio/wav", deref_uri=b64), client, cap_audio_max_bytes=cap
    )
    assert reason.startswith("too_big")


async def test_download_time_limit(http_server: LoopbackServer, client, voice_wav: bytes) -> None:
    slow = http_server.serve(
        "/slow.wav",
        Route(voice_wav, headers={"Content-Type": "audio/wav"}, chunk=4096, delay_chunk_s=0.2),
    )
    reason = await failure(CapAudioResource("audio/wav", slow), client, download_timeout_s=0.5)
    assert reason.startswith("timeout") and "download within 0.5 s" in reason
    late = http_server.serve(
        "/late.wav", Route(voice_wav, headers={"Content-Type": "audio/wav"}, delay_first_s=5)
    )
    reason = await failure(CapAudioResource("audio/wav", late), client, download_timeout_s=0.3)
    assert reason.startswith("timeout")


async def test_streaming_time_limits(http_server: LoopbackServer, client, voice_mp3: bytes) -> None:
    mime = "audio/x-ipaws-streaming-audio-mp3"
    # A stream that does not start within the streaming limit falls back.
    late = http_server.serve(
        "/late-stream", Route(voice_mp3, headers={"Content-Type": "audio/mpeg"}, delay_first_s=5)
    )
    reason = await failure(
        CapAudioResource(mime, late), client, streaming_timeout_s=0.3, download_timeout_s=3
    )
    assert reason.startswith("timeout") and "start streaming within 0.3 s" in reason
    # A live stream that never ends: what arrived by the download limit is the narration.
    live = http_server.serve(
        "/live",
        Route(
            voice_mp3,
            headers={"Content-Type": "audio/mpeg"},
            chunk=2048,
            delay_chunk_s=0.02,
            repeat=True,
        ),
    )
    config = NarrationConfig(rate=RATE, streaming_timeout_s=1.0, download_timeout_s=1.5)
    narration = await fetch_cap_audio(CapAudioResource(mime, live), client=client, config=config)
    assert isinstance(narration.detail, CapAudioDetail)
    assert narration.detail.streaming and narration.detail.stream_cut
    assert narration.duration_s > 1.0


async def test_schemes_and_redirects(http_server: LoopbackServer, client, voice_wav: bytes) -> None:
    for uri in ["file:///etc/passwd", "ftp://127.0.0.1/a.wav", "data:audio/wav;base64,UklGRg=="]:
        reason = await failure(CapAudioResource("audio/wav", uri), client)
        assert reason.startswith("scheme_not_allowed"), reason
    assert http_server.hits == []
    for target in ["file:///etc/passwd", "ftp://example.invalid/x.wav"]:
        hop = http_server.serve(
            "/hop", Route(status=302, headers={"Location": target}, content_length=True)
        )
        reason = await failure(CapAudioResource("audio/wav", hop), client)
        assert reason.startswith("scheme_not_allowed") and "redirect from" in reason
    good = http_server.serve("/real.wav", Route(voice_wav, headers={"Content-Type": "audio/wav"}))
    http_server.serve("/r1", Route(status=301, headers={"Location": "/r2"}))
    http_server.serve("/r2", Route(status=307, headers={"Location": good}))
    narration = await fetch_cap_audio(
        CapAudioResource("audio/wav", http_server.url("/r1")), client=client, config=CONFIG
    )
    assert isinstance(narration.detail, CapAudioDetail) and narration.detail.final_uri == good
    http_server.serve("/loop", Route(status=302, headers={"Location": "/loop"}))
    reason = await failure(CapAudioResource("audio/wav", http_server.url("/loop")), client)
    assert reason.startswith("redirect")


async def test_deref_uri(client, voice_mp3: bytes) -> None:
    b64 = base64.encodebytes(voice_mp3).decode()  # with line breaks, as XML carries it
    res = CapAudioResource("audio/x-ipaws-audio-mp3", uri="http://unused.invalid/", deref_uri=b64)
    narration = await fetch_cap_audio(res, client=client, config=CONFIG)
    assert narration.duration_s == pytest.approx(4.0, abs=0.1)
    bad = await failure(CapAudioResource("audio/mpeg", deref_uri="not base64 !!"), client)
    assert bad.startswith("bad_deref")


async def test_decompression_bombs(http_server: LoopbackServer, client, tmp_path: Path) -> None:
    tool("ffmpeg")
    # 8 channels x 48 kHz x 10 minutes: 230 million samples in about 200 kB of FLAC that says
    # so in its header. Refused from the probe, before a single frame is decoded.
    flac = ffmpeg_lavfi(
        "anullsrc=r=48000:cl=7.1", 600, "flac", "-c:a", "flac", seekable_dir=tmp_path
    )
    assert len(flac) < 1_000_000
    url = http_server.serve("/bomb.wav", Route(flac, headers={"Content-Type": "audio/wav"}))
    reason = await failure(CapAudioResource("audio/wav", url), client, narration_max_s=120)
    assert reason.startswith("too_big") and "refused before decoding" in reason
    assert "600 s x 8 channels" in reason

    # The same bomb written to a pipe declares no length: the decoder is stopped at the limit
    # instead, and the narration holds the first narration_max_s seconds (here a tone, then
    # nine minutes of silence that are never decoded).
    piped = ffmpeg_lavfi("sine=f=440:r=48000:d=11,apad", 600, "flac", "-ac", "8", "-c:a", "flac")
    assert len(piped) < 1_000_000
    url = http_server.serve("/piped.flac", Route(piped, headers={"Content-Type": "audio/wav"}))
    config = NarrationConfig(rate=8000, narration_max_s=10)
    narration = await fetch_cap_audio(
        CapAudioResource("audio/wav", url), client=client, config=config
    )
    assert narration.duration_s == pytest.approx(10.0) and narration.source_truncated
    assert isinstance(narration.detail, CapAudioDetail) and narration.detail.format == "flac"

    # Ogg Vorbis on a pipe: the same cut.
    ogg = ffmpeg_lavfi("sine=f=440:r=8000", 60, "ogg", "-c:a", "libvorbis")
    url = http_server.serve("/long.ogg", Route(ogg, headers={"Content-Type": "audio/wav"}))
    narration = await fetch_cap_audio(
        CapAudioResource("audio/wav", url), client=client, config=config
    )
    assert narration.duration_s == pytest.approx(10.0) and narration.source_truncated


async def test_fallback_to_tts_then_none(http_server: LoopbackServer, client) -> None:
    tool("espeak-ng")
    bad = CapAudioResource("audio/wav", "file:///etc/passwd")
    choice = await narrate_cap_alert(bad, TEXT, client=client, config=CONFIG)
    assert choice.source == "tts"
    assert [(f.source, f.reason) for f in choice.failures] == [("cap_audio", "scheme_not_allowed")]
    assert choice.to_dict()["narration"]["text"] == TEXT

    choice = await narrate_cap_alert(None, TEXT, client=client, config=CONFIG)
    assert choice.source == "tts" and choice.failures[0].reason == "absent"

    no_engine = NarrationConfig(rate=RATE, tts_engine="festival")
    choice = await narrate_cap_alert(bad, TEXT, client=client, config=no_engine)
    assert choice.narration is None and choice.source == "none"
    assert [(f.source, f.reason) for f in choice.failures] == [
        ("cap_audio", "scheme_not_allowed"),
        ("tts", "tts_failed"),
    ]
    assert "installed" in choice.failures[1].message

    choice = await narrate_cap_alert(None, "  ", client=client, config=CONFIG)
    assert choice.source == "none"
    assert [f.reason for f in choice.failures] == ["absent", "absent"]
