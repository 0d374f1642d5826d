"""Permissions on every route (401/403), and decoding uploaded files (413/415/422)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from eas_same import generate
from servicekit.auth.permissions import Role

from .conftest import RWT, auth

BASE = "/api/eas-monitor"
READS = [
    ("GET", "/status"),
    ("GET", "/inputs"),
    ("GET", "/inputs/1"),
    ("GET", "/decodes"),
    ("GET", "/decodes/1"),
    ("GET", "/clips/" + "a" * 32),
]
# What a viewer gets from each read on an empty station: allowed (not 401/403), and exactly
# the answer the route gives, so a route that stops finding what exists shows up here.
VIEWER_READS = {
    "/status": 200,
    "/inputs": 200,
    "/inputs/1": 404,
    "/decodes": 200,
    "/decodes/1": 404,
    "/clips/" + "a" * 32: 404,
}
WRITES = [
    ("POST", "/inputs"),
    ("PATCH", "/inputs/1"),
    ("DELETE", "/inputs/1"),
    ("POST", "/inputs/1/start"),
    ("POST", "/inputs/1/stop"),
    ("POST", "/decode"),
]


@pytest.mark.parametrize(("method", "path"), READS + WRITES)
async def test_no_token_is_401(client: httpx.AsyncClient, method: str, path: str):
    answer = await client.request(method, BASE + path, headers={"Authorization": ""})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_viewer_cannot_write(client: httpx.AsyncClient, token, method: str, path: str):
    answer = await client.request(method, BASE + path, headers=auth(token(Role.VIEWER)))
    assert answer.status_code == 403
    assert "monitor:write" in answer.json()["detail"]


@pytest.mark.parametrize(("method", "path"), READS)
async def test_viewer_can_read(client: httpx.AsyncClient, token, method: str, path: str):
    answer = await client.request(method, BASE + path, headers=auth(token(Role.VIEWER)))
    assert answer.status_code == VIEWER_READS[path], answer.text


async def test_expired_token_is_401(client: httpx.AsyncClient, token):
    expired = token(Role.ADMIN, ttl_s=60, now=time.time() - 3600)
    answer = await client.get(f"{BASE}/status", headers=auth(expired))
    assert answer.status_code == 401


def _audio(fmt: str, rate: int = 22050, channels: int = 1) -> bytes:
    x = generate(RWT, rate, attention=1.5)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "channels"), [("WAV", 1), ("FLAC", 1), ("WAV", 2)])
async def test_upload_decodes_header_tone_and_eom(client: httpx.AsyncClient, fmt, channels):
    files = {"file": (f"msg.{fmt.lower()}", _audio(fmt, channels=channels), "audio/wav")}
    answer = await client.post(f"{BASE}/decode", files=files)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["format"] == fmt and body["rate"] == 22050 and body["channels"] == channels
    kinds = [e["type"] for e in body["events"]]
    assert kinds == ["header", "attention", "eom"]
    header = body["events"][0]
    assert header["text"] == RWT
    assert header["location_names"][1] == "Lancaster County, PA"
    assert "Required Weekly Test" in header["description"]


async def test_upload_of_a_real_recording(client: httpx.AsyncClient):
    sample = Path("/work/shared/samples/same/eas-rwt-wjontv-16k.wav")
    if not sample.exists():
        pytest.fail(f"sample recording missing: {sample}")
    files = {"file": ("rec.wav", sample.read_bytes(), "audio/wav")}
    body = (await client.post(f"{BASE}/decode", files=files)).json()
    assert [e["text"] for e in body["events"] if e["type"] == "header"] == [RWT]


async def test_upload_that_is_not_audio_is_415(client: httpx.AsyncClient):
    files = {"file": ("x.wav", b"RIFF but not really a wave file at all", "audio/wav")}
    answer = await client.post(f"{BASE}/decode", files=files)
    assert answer.status_code == 415
    assert "WAV or FLAC" in answer.json()["detail"]


async def test_upload_of_other_audio_formats_is_415(client: httpx.AsyncClient):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(22050), 22050, format="AIFF", subtype="PCM_16")
    files = {"file": ("x.aiff", buf.getvalue(), "audio/aiff")}
    answer = await client.post(f"{BASE}/decode", files=files)
    assert answer.status_code == 415
    assert "AIFF" in answer.json()["detail"]


async def test_upload_empty_low_rate_and_missing_are_422(client: httpx.AsyncClient):
    empty = await client.post(f"{BASE}/decode", files={"file": ("x.wav", b"", "audio/wav")})
    assert (
        empty.status_code == 422
        and "empty" in empty.json()["detail"][0]["msg"]
        and empty.json()["fields"] == ["file"]
    )
    buf = io.BytesIO()
    sf.write(buf, np.zeros(4000), 4000, format="WAV", subtype="PCM_16")
    low = await client.post(f"{BASE}/decode", files={"file": ("x.wav", buf.getvalue())})
    assert low.status_code == 422 and "6000 Hz" in low.json()["detail"][0]["msg"]
    missing = await client.post(f"{BASE}/decode")
    assert missing.status_code == 422


async def test_upload_over_the_limit_is_413(client: httpx.AsyncClient):
    svc = client.app.state.monitor_service  # type: ignore[attr-defined]
    svc.settings = svc.settings.model_copy(update={"upload_max_bytes": 1000})
    files = {"file": ("x.wav", _audio("WAV"), "audio/wav")}
    answer = await client.post(f"{BASE}/decode", files=files)
    assert answer.status_code == 413
    assert "limit" in answer.json()["detail"]


async def test_request_body_over_the_edge_limit_is_413(client: httpx.AsyncClient, settings):
    big = b"\0" * (settings.max_request_bytes + 10)
    answer = await client.post(f"{BASE}/decode", files={"file": ("x.wav", big)})
    assert answer.status_code == 413


async def test_openapi_and_health(client: httpx.AsyncClient):
    doc = (await client.get("/openapi.json")).json()
    assert f"{BASE}/inputs/{{input_id}}/start" in doc["paths"]
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert "http_requests_total" in (await client.get("/metrics")).text


def _silent_flac(seconds: float, rate: int = 48_000, channels: int = 2) -> bytes:
    buf = io.BytesIO()
    sf.write(
        buf,
        np.zeros((int(seconds * rate), channels), dtype=np.int16),
        rate,
        format="FLAC",
        subtype="PCM_16",
    )
    return buf.getvalue()


async def test_upload_declaring_too_much_audio_is_413_before_decoding(client: httpx.AsyncClient):
    svc = client.app.state.monitor_service  # type: ignore[attr-defined]
    svc.settings = svc.settings.model_copy(update={"upload_max_samples": 48_000 * 2 * 5})
    data = _silent_flac(6.0)
    assert len(data) < 100_000  # compressed silence: a tiny file, a lot of audio
    answer = await client.post(f"{BASE}/decode", files={"file": ("x.flac", data)})
    assert answer.status_code == 413, answer.text
    assert "frames x channels" in answer.json()["detail"]
    # Just under the bound decodes.
    ok = await client.post(f"{BASE}/decode", files={"file": ("x.flac", _silent_flac(4.0))})
    assert ok.status_code == 200 and ok.json()["duration_s"] == 4.0


def test_upload_decode_memory_is_a_block_not_the_file(client: httpx.AsyncClient):
    import tracemalloc

    svc = client.app.state.monitor_service  # type: ignore[attr-defined]
    data = _silent_flac(30.0)  # 2.88 M samples: 11 MiB as float32, 23 MiB as float64
    tracemalloc.start()
    try:
        body = svc.decode_upload(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body["duration_s"] == 30.0 and body["events"] == []
    assert peak < 8 * 1024 * 1024, peak


def test_a_lying_header_is_caught_while_reading(tmp_path: Path):
    from eas_same.audiofile import TooMuchAudio, mono_blocks

    class Lying:
        channels = 2
        frames = 0  # "unknown length", as a streamed FLAC may say

        def __init__(self) -> None:
            self.left = 10

        def read(self, frames: int, dtype: str, always_2d: bool) -> np.ndarray:
            self.left -= 1
            return np.zeros((frames if self.left >= 0 else 0, 2), dtype=np.float32)

    blocks = mono_blocks(Lying(), max_samples=3 * 1024, block_samples=1024)  # type: ignore[arg-type]
    assert [len(b) for b in (next(blocks), next(blocks), next(blocks))] == [512, 512, 512]
    with pytest.raises(TooMuchAudio):
        next(blocks)
