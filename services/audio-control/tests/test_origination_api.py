"""Origination through /api/audio: every bad field a 422 naming it; what is made decodes."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from eas_testkit.decoders import multimon_eas
from servicekit.auth.permissions import Role

from .media_helpers import own_decode, speechlike
from .service_helpers import CALLSIGN

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "event_code": "CEM",
    "originator": "CIV",
    "locations": ["039035", "039093"],
    "duration": "0030",
    "text": "This is a test message from the county emergency manager.",
}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"locations": ["039999"]}, "locations.0", "does not exist"),
        ({"locations": ["123"]}, "locations.0", "6 digits"),
        ({"locations": ["039035"] * 2}, "locations", "repeated"),
        ({"locations": [f"0390{n:02d}" for n in range(1, 64, 2)][:32]}, "locations", "31"),
        ({"locations": []}, "locations", "at least 1"),
        ({"event_code": "ZZZ"}, "event_code", "not a SAME event code"),
        ({"event_code": "TO"}, "event_code", "3 letters"),
        ({"duration": "0020"}, "duration", "15-minute step"),
        ({"duration": "0145"}, "duration", "30-minute step"),
        ({"duration": "0000"}, "duration", "15-minute step"),
        ({"duration": "1h"}, "duration", "pattern"),
        ({"text": "   "}, "text", "required"),
        ({"text": None}, "text", "required"),
        ({"narration": "none"}, "text", "would not be heard"),
        ({"text": "x" * 1801}, "text", "1800"),
        ({"text": "bad\x00byte"}, "text", "control characters"),
        ({"originator": "XYZ"}, "originator", "'EAS', 'CIV', 'WXR' or 'PEP'"),
        ({"extra": 1}, "extra", "Extra inputs"),
    ],
)
async def test_each_bad_field_is_a_422_naming_it(
    service: httpx.AsyncClient, change: dict[str, Any], field: str, words: str
) -> None:
    answer = await service.post("/api/audio/originations", json={**GOOD, **change})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert field in body["fields"], body
    assert any(words.lower() in e["msg"].lower() for e in body["detail"]), body


async def test_an_origination_is_composed_and_decodes_exactly(service: httpx.AsyncClient) -> None:
    answer = await service.post("/api/audio/originations", json=GOOD)
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert answer.headers["location"] == f"/api/audio/messages/{message['id']}"
    assert message["kind"] == "origination" and message["created_by"] == "test-operator"
    assert message["header"].startswith("ZCZC-CIV-CEM-039035-039093+0030-")
    assert message["header"].endswith(f"-{CALLSIGN.ljust(8)}-")
    assert message["narration_source"] == "tts" and message["text"] == GOOD["text"]
    wav = await service.get(message["audio_url"])
    samples, rate = sf.read(io.BytesIO(wav.content), dtype="float64")
    assert [e.type for e in own_decode(samples, rate)] == ["header", "attention", "eom"]
    assert multimon_eas(samples, rate) == [message["header"]] + ["NNNN"] * 3
    listed = (await service.get("/api/audio/messages", params={"kind": "origination"})).json()
    assert [m["id"] for m in listed["items"]] == [message["id"]]


async def test_rwt_and_rmt_are_one_call_each(service: httpx.AsyncClient) -> None:
    rwt = await service.post("/api/audio/originations/rwt")
    assert rwt.status_code == 201, rwt.text
    body = rwt.json()
    assert body["header"].startswith("ZCZC-EAS-RWT-039035+0015-")
    # An RWT is header and EOM only: no attention signal, no narration.
    assert body["narration_source"] == "none" and body["tone"] is None
    rmt = await service.post("/api/audio/originations/rmt", json={"duration": "0100"})
    assert rmt.status_code == 201, rmt.text
    assert rmt.json()["header"].startswith("ZCZC-EAS-RMT-039035+0100-")
    assert "Test Station" in rmt.json()["text"] and rmt.json()["narration_source"] == "tts"
    refused = await service.post("/api/audio/originations/rwt", json={"text": "hello"})
    assert refused.status_code == 422 and refused.json()["fields"] == ["text"]


async def test_uploaded_narration(service: httpx.AsyncClient) -> None:
    rate = 22050
    buf = io.BytesIO()
    sf.write(buf, speechlike(3.0, rate), rate, format="WAV", subtype="PCM_16")
    fields = {"event_code": "EVI", "locations": "039035", "duration": "0100"}
    files = {"audio": ("evacuate.wav", buf.getvalue(), "audio/wav")}
    answer = await service.post("/api/audio/originations/upload", data=fields, files=files)
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert message["narration_source"] == "upload"
    assert message["components"]["narration"]["filename"] == "evacuate.wav"
    junk = {"audio": ("notes.wav", b"this is not audio at all", "audio/wav")}
    refused = await service.post("/api/audio/originations/upload", data=fields, files=junk)
    assert refused.status_code == 415, refused.text
    bad = await service.post(
        "/api/audio/originations/upload", data={**fields, "locations": "999999"}, files=files
    )
    assert bad.status_code == 422 and bad.json()["fields"] == ["locations.0"]


async def test_viewers_cannot_originate(service: httpx.AsyncClient, token: Any) -> None:
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    answer = await service.post("/api/audio/originations", json=GOOD, headers=viewer)
    assert answer.status_code == 403


async def test_an_origination_needs_the_station_area_for_tests(
    settings: Any, aredis: Any, bus_namespace: str, token: Any
) -> None:
    from asgi_lifespan import LifespanManager

    from audio_control.app import create_app

    app = create_app(settings)  # no settings document: no area
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as http:
            answer = await http.post(
                "/api/audio/originations/rwt",
                headers={"Authorization": f"Bearer {token(Role.OPERATOR)}"},
            )
    assert answer.status_code == 409 and "location.same_codes" in answer.json()["detail"]


def test_speechlike_is_audio() -> None:
    assert np.max(np.abs(speechlike(0.5, 8000))) > 0.01


async def test_a_broken_multipart_upload_is_a_422_naming_the_body(
    service: httpx.AsyncClient,
) -> None:
    answer = await service.post(
        "/api/audio/originations/upload",
        content=b"--x\r\nnot a part header\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body"] and "multipart" in problem["msg"]
