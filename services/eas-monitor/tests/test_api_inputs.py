"""Inputs CRUD: clear 4xx on anything that cannot work; start/stop report what happened."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from eas_monitor import inputs as inputs_mod

BASE = "/api/eas-monitor"


def _file(path: Path, **extra: object) -> dict[str, object]:
    return {"name": "file-1", "config": {"kind": "file", "path": str(path), **extra}}


async def test_create_file_input_then_read_update_delete(client: httpx.AsyncClient, sample_wav):
    made = await client.post(f"{BASE}/inputs", json=_file(sample_wav, loop=True))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["kind"] == "file"
    assert body["config"]["loop"] is True
    assert body["wanted_running"] is False
    assert body["status"]["state"] == "stopped"
    input_id = body["id"]

    listed = await client.get(f"{BASE}/inputs")
    assert [i["id"] for i in listed.json()] == [input_id]
    renamed = await client.patch(f"{BASE}/inputs/{input_id}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    status = await client.get(f"{BASE}/status")
    assert [s["name"] for s in status.json()] == ["renamed"]

    gone = await client.delete(f"{BASE}/inputs/{input_id}")
    assert gone.status_code == 204
    assert (await client.get(f"{BASE}/inputs/{input_id}")).status_code == 404


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"kind": "file", "path": "/nonexistent/x.wav"}, "does not exist"),
        ({"kind": "file", "path": "relative.wav"}, "must be absolute"),
        ({"kind": "stream", "url": "ftp://example.com/a"}, "use http or https"),
        ({"kind": "stream", "url": "file:///etc/passwd"}, "use http or https"),
        ({"kind": "stream", "url": "not a url"}, "URL"),
        ({"kind": "pcm_tcp", "host": "127.0.0.1", "port": 0, "rate": 22050}, "port"),
        ({"kind": "pcm_tcp", "host": "127.0.0.1", "port": 9000}, "rate"),
        ({"kind": "pcm_pipe", "path": "/tmp", "rate": 4000}, "rate"),
        ({"kind": "telepathy"}, "kind"),
        ({"kind": "file", "path": "/x.wav", "volume": 3}, "volume"),
    ],
)
async def test_invalid_configs_are_422_with_the_reason(
    client: httpx.AsyncClient, config: dict[str, object], needle: str
):
    answer = await client.post(f"{BASE}/inputs", json={"name": "bad", "config": config})
    assert answer.status_code == 422, answer.text
    assert needle.lower() in answer.text.lower()


async def test_file_that_is_not_audio_is_rejected(client: httpx.AsyncClient, tmp_path: Path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    answer = await client.post(f"{BASE}/inputs", json=_file(text))
    assert answer.status_code == 422
    assert "not a readable WAV or FLAC" in answer.json()["detail"][0]["msg"]


async def test_named_pipe_must_be_a_fifo(client: httpx.AsyncClient, tmp_path: Path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    cfg = {"kind": "pcm_pipe", "path": str(plain), "rate": 22050}
    answer = await client.post(f"{BASE}/inputs", json={"name": "p", "config": cfg})
    assert answer.status_code == 422
    assert "not a named pipe" in answer.json()["detail"][0]["msg"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cfg["path"] = str(fifo)
    made = await client.post(f"{BASE}/inputs", json={"name": "p", "config": cfg})
    assert made.status_code == 201


async def test_sound_device_on_a_machine_without_one(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(inputs_mod, "ASOUND_CARDS", tmp_path / "no-such-cards")
    answer = await client.post(
        f"{BASE}/inputs", json={"name": "mic", "config": {"kind": "device", "device": "hw:0,0"}}
    )
    assert answer.status_code == 422
    assert "no sound capture device" in answer.json()["detail"][0]["msg"]


async def test_duplicate_name_is_409_and_unknown_ids_404(client: httpx.AsyncClient, sample_wav):
    assert (await client.post(f"{BASE}/inputs", json=_file(sample_wav))).status_code == 201
    again = await client.post(f"{BASE}/inputs", json=_file(sample_wav))
    assert again.status_code == 409
    assert "exists already" in again.json()["detail"]
    for method, path in [
        ("GET", "/inputs/999"),
        ("PATCH", "/inputs/999"),
        ("DELETE", "/inputs/999"),
        ("POST", "/inputs/999/start"),
        ("POST", "/inputs/999/stop"),
        ("GET", "/decodes/999"),
        ("GET", "/clips/" + "0" * 32),
    ]:
        kwargs = {"json": {"name": "x"}} if method == "PATCH" else {}
        answer = await client.request(method, BASE + path, **kwargs)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "does not exist" in answer.json()["detail"]


async def test_changing_the_kind_is_refused(client: httpx.AsyncClient, sample_wav):
    made = (await client.post(f"{BASE}/inputs", json=_file(sample_wav))).json()
    answer = await client.patch(
        f"{BASE}/inputs/{made['id']}",
        json={"config": {"kind": "stream", "url": "http://example.com/live"}},
    )
    assert answer.status_code == 422
    assert "create a new input" in answer.json()["detail"][0]["msg"]
    assert answer.json()["fields"] == ["config.kind"]
    empty = await client.patch(f"{BASE}/inputs/{made['id']}", json={})
    assert empty.status_code == 422


async def test_start_confirms_running_and_stop_confirms_stopped(
    client: httpx.AsyncClient, sample_wav
):
    made = (await client.post(f"{BASE}/inputs", json=_file(sample_wav, loop=True))).json()
    started = await client.post(f"{BASE}/inputs/{made['id']}/start")
    assert started.status_code == 200, started.text
    status = started.json()["status"]
    assert status["state"] == "running" and status["running"] is True and status["pid"]
    assert started.json()["wanted_running"] is True
    pid = status["pid"]

    stopped = await client.post(f"{BASE}/inputs/{made['id']}/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"]["state"] == "stopped"
    assert stopped.json()["status"]["running"] is False
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_start_of_a_file_that_vanished_is_409(client: httpx.AsyncClient, sample_wav):
    made = (await client.post(f"{BASE}/inputs", json=_file(sample_wav))).json()
    sample_wav.unlink()
    answer = await client.post(f"{BASE}/inputs/{made['id']}/start")
    assert answer.status_code == 409
    assert "does not exist" in answer.json()["detail"]


async def test_start_of_an_unreachable_source_is_504_with_the_reason(
    client: httpx.AsyncClient, settings
):
    client.app.state.monitor_service.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"start_timeout_s": 12.0}
    )
    cfg = {"kind": "pcm_tcp", "host": "127.0.0.1", "port": 9, "rate": 22050}
    made = (await client.post(f"{BASE}/inputs", json={"name": "tcp", "config": cfg})).json()
    answer = await client.post(f"{BASE}/inputs/{made['id']}/start")
    assert answer.status_code == 504, answer.text
    assert "not confirmed running" in answer.json()["detail"]
    # the supervisor keeps at it and tells why on the status
    deadline = time.monotonic() + 40
    while True:
        status = (await client.get(f"{BASE}/status")).json()[0]
        if "cannot connect" in (status["last_error"] or ""):
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert status["state"] == "connecting" and status["errors"] >= 1
    assert (await client.post(f"{BASE}/inputs/{made['id']}/stop")).status_code == 200


async def test_decode_filters_are_validated(client: httpx.AsyncClient):
    ok = await client.get(f"{BASE}/decodes", params={"event_code": "RWT", "limit": 5})
    assert ok.status_code == 200 and ok.json() == {"items": [], "next_cursor": None}
    for params, needle in [
        ({"event_code": "ZZZ"}, "not a known SAME event code"),
        ({"event_code": "rwt"}, "pattern"),
        ({"type": "same.nonsense"}, "same.header"),
        ({"since": "2026-01-01T00:00:00"}, "timezone"),
        ({"limit": 0}, "greater than"),
        ({"cursor": "garbage"}, "cursor"),
    ]:
        answer = await client.get(f"{BASE}/decodes", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert needle in answer.text, (params, answer.text)
