"""SAME audio in, through eas-monitor's worker processes, to same.* events in real Redis,
decode history and clips over the API; two inputs hearing one transmission give one event.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis
import soundfile as sf
from asgi_lifespan import LifespanManager

from eas_monitor.app import create_app
from eas_monitor.migrate import upgrade_url
from eas_monitor.settings import EasMonitorSettings
from eas_same import generate, write_wav
from eas_schemas.envelope import decode_entry
from eas_schemas.streams import AUDIO_METRICS, MONITOR_STATUS, SAME_EVENTS
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair
from servicekit.bus import stream_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = "/api/eas-monitor"
SAMPLES = Path("/work/shared/samples/same")
REAL = "eas-rwt-wjontv-16k.wav"
REAL_HEADER = "ZCZC-EAS-RWT-042001-042071-042133+0300-3040858-WJON/TV -"
MADE_HEADER = "ZCZC-WXR-TOR-039035-039093+0030-1181322-KCLE/NWS-"


@pytest.fixture
async def monitor(
    database_url: str, redis_url: str, bus_namespace: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    private, public = generate_keypair()
    await upgrade_url(database_url)
    settings = EasMonitorSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        auth_public_key=public,
        data_dir=tmp_path / "data",
        instance="it-1",
        start_timeout_s=60.0,
        startup_grace_s=60.0,
        stall_timeout_s=30.0,
        aggregation_window_s=1.5,
        progress_interval_s=0.25,
        reconcile_interval_s=0.5,
        consumer_min_idle_ms=1000,
    )
    app = create_app(settings)
    token = TokenSigner(private).mint("it-operator", Role.OPERATOR)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://monitor",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client,
    ):
        yield client


async def same_events(
    aredis: aioredis.Redis, ns: str, want: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Poll same.events until ``want`` is satisfied; returns every envelope seen."""
    deadline = time.monotonic() + timeout
    while True:
        entries = await aredis.xrange(stream_key(SAME_EVENTS, ns))
        envs = [decode_entry(fields).model_dump(mode="json") for _id, fields in entries]
        if want(envs):
            return envs
        assert time.monotonic() < deadline, f"events seen: {[e['type'] for e in envs]}"
        await asyncio.sleep(0.2)


def of_type(envs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in envs if e["type"] == kind]


async def stored_decode(client: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        page = (await client.get(f"{BASE}/decodes", params={"type": "same.header"})).json()
        for item in page["items"]:
            if item["event_id"] == event_id:
                return item
        assert time.monotonic() < deadline, page
        await asyncio.sleep(0.2)


async def add_and_start(client: httpx.AsyncClient, name: str, config: dict[str, Any]) -> int:
    made = await client.post(f"{BASE}/inputs", json={"name": name, "config": config})
    assert made.status_code == 201, made.text
    input_id = int(made.json()["id"])
    started = await client.post(f"{BASE}/inputs/{input_id}/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"]["state"] in ("running", "finished")
    return input_id


@pytest.mark.parametrize("source", ["generated", "recording"])
async def test_wav_input_to_same_events_decode_history_and_clip(
    monitor: httpx.AsyncClient, aredis: aioredis.Redis, bus_namespace: str, tmp_path: Path, source
):
    if source == "generated":
        wav = tmp_path / "tor.wav"
        write_wav(wav, generate(MADE_HEADER, 22050, attention=3.0), 22050)
        expected = MADE_HEADER
    else:
        assert (SAMPLES / REAL).exists(), f"missing sample {SAMPLES / REAL}"
        wav = tmp_path / REAL
        shutil.copy(SAMPLES / REAL, wav)
        expected = REAL_HEADER
    input_id = await add_and_start(
        monitor, "wav-1", {"kind": "file", "path": str(wav), "realtime": False}
    )
    envs = await same_events(
        aredis,
        bus_namespace,
        lambda es: bool(of_type(es, "same.header")) and bool(of_type(es, "same.eom")),
        timeout=90,
    )
    (header,) = of_type(envs, "same.header")
    assert len(of_type(envs, "same.eom")) == 1
    data = header["data"]
    assert header["subject"] == expected and data["text"] == expected
    assert data["bursts"] == 3 and data["confidence"] >= 0.9
    assert [h["input_id"] for h in data["inputs"]] == [input_id]
    assert data["header"]["event_code"] == expected.split("-")[2]
    assert data["header"]["locations"][0]["name"]
    assert data["description"].endswith(".")
    assert data["header"]["purge_at"] > data["header"]["issued"]
    if source == "generated":
        (tone,) = of_type(envs, "same.attention_tone")
        assert tone["data"]["kind"] == "broadcast"
        assert tone["data"]["duration_s"] == pytest.approx(3.0, abs=0.2)

    # the decode is kept, filterable, and its clip is served
    item = await stored_decode(monitor, header["id"])
    assert item["input_ids"] == [input_id] and item["clip_url"]
    code = expected.split("-")[2]
    by_code = await monitor.get(f"{BASE}/decodes", params={"event_code": code})
    assert [i["event_id"] for i in by_code.json()["items"]] == [header["id"]]
    other = await monitor.get(f"{BASE}/decodes", params={"event_code": "EAN"})
    assert other.json()["items"] == []
    clip = await monitor.get(item["clip_url"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(clip.content), dtype="int16")
    assert 3.0 < len(audio) / rate <= 15.0

    # the worker said it was running, then finished (a file that is not looped)
    statuses = [
        decode_entry(f).data
        for _i, f in await aredis.xrange(stream_key(MONITOR_STATUS, bus_namespace))
    ]
    states = [s["state"] for s in statuses if s["input_id"] == input_id]
    assert "running" in states
    deadline = time.monotonic() + 30
    while states[-1] != "finished":
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.2)
        states = [s["state"] for s in (await monitor.get(f"{BASE}/status")).json()]
    assert await aredis.xlen(stream_key(AUDIO_METRICS, bus_namespace)) >= 1


def _feed(path: Path, data: bytes) -> None:
    with open(path, "wb") as fifo:  # blocks until the worker has the pipe open
        for i in range(0, len(data), 8820):  # 0.2 s of 22.05 kHz s16le per write
            fifo.write(data[i : i + 8820])
            time.sleep(0.05)  # faster than real time, but in steps, as a live feed


async def test_two_inputs_hearing_one_transmission_give_one_header(
    monitor: httpx.AsyncClient, aredis: aioredis.Redis, bus_namespace: str, tmp_path: Path
):
    audio = generate(MADE_HEADER, 22050, attention=2.0, tail=3.0)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    pipes = [tmp_path / "rx-a", tmp_path / "rx-b"]
    ids = []
    for i, pipe in enumerate(pipes):
        os.mkfifo(pipe)
        cfg = {"kind": "pcm_pipe", "path": str(pipe), "rate": 22050}
        ids.append(await add_and_start(monitor, f"receiver-{i}", cfg))
    # the same transmission reaches both receivers at the same time
    feeders = [threading.Thread(target=_feed, args=(p, pcm), daemon=True) for p in pipes]
    for t in feeders:
        t.start()
    envs = await same_events(
        aredis, bus_namespace, lambda es: len(of_type(es, "same.eom")) >= 1, timeout=90
    )
    # Barriers instead of "wait and see if anything late shows up": every byte was written,
    # both workers have taken in every sample, and both were stopped. A stopping worker
    # publishes (or finds already published) everything it still holds before it exits, and
    # stop answers once the worker is gone: whatever either could still add is on the stream.
    for t in feeders:
        t.join(60)
        assert not t.is_alive()
    samples = len(pcm) // 2
    deadline = time.monotonic() + 60
    while True:
        taken = {
            s["input_id"]: s["samples_total"] for s in (await monitor.get(f"{BASE}/status")).json()
        }
        if all(taken.get(i, 0) >= samples for i in ids):
            break
        assert time.monotonic() < deadline, (taken, samples)
        await asyncio.sleep(0.2)
    for input_id in ids:
        stopped = await monitor.post(f"{BASE}/inputs/{input_id}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"]["state"] == "stopped"
    envs = await same_events(aredis, bus_namespace, lambda es: True, timeout=1)
    headers = of_type(envs, "same.header")
    assert len(headers) == 1, [h["data"]["inputs"] for h in headers]
    assert sorted(h["input_id"] for h in headers[0]["data"]["inputs"]) == sorted(ids)
    assert len(of_type(envs, "same.eom")) == 1
    assert len(of_type(envs, "same.attention_tone")) == 1
    item = await stored_decode(monitor, headers[0]["id"])
    assert sorted(item["input_ids"]) == sorted(ids)
    for input_id in ids:
        listed = await monitor.get(f"{BASE}/decodes", params={"input_id": input_id})
        assert headers[0]["id"] in [i["event_id"] for i in listed.json()["items"]]
    for t in feeders:
        t.join(timeout=10)
