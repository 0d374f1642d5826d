"""One-machine mode under ``kill -9``: the whole station (``eas-station run``: runner, gateway
with every service, pollers, playout worker, embedded Redis) is SIGKILLed as a process group
while CAP files flow in from its folder, started again on the same data folder (SQLite store,
the embedded Redis's append-only file), and SIGKILLed again while a relayed message is on air.

Counted as the scaled fault run counts (``eas_testkit.counts``): every alert stored once,
announced (``alert.created``) once and decided once; nothing aired twice on an output; no dead
letters. The message cut by the kill is not aired again: on restart the playout worker sends
the EOM on the output it was cut on (receivers downstream leave alert mode) and records the
airing as interrupted, which the station log shows (docs/operations.md says why)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from eas_schemas.streams import SERVICE_HEARTBEAT
from eas_testkit import counts
from eas_testkit.scaled import once_each, stream_envelopes, write_cap_files
from eas_testkit.station import StationProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

OTHER_COUNTY = ("039093", "OHC093")  # Lorain: stored and decided (not relayed)
INGESTED = 60
NS = ""  # the one-machine station's bus has no namespace
SETTINGS = {
    "identity": {"callsign": "WKIL/FM", "timezone": "America/New_York"},
    "location": {"same_codes": ["039035"], "ugc_codes": ["OHC035"]},
    "relay": {"enabled": True, "events": ["TOR"], "delay_s": 0, "require_confirmation": []},
}
# A sound card's pace: the message takes its real length to play, so a kill lands mid-message.
AIR = {"name": "air", "config": {"kind": "null", "realtime": True}, "keying": {"kind": "none"}}


async def until(what: str, check: Callable[[], Awaitable[Any]], bound_s: float = 60) -> Any:
    deadline = time.monotonic() + bound_s
    while True:
        with contextlib.suppress(OSError, httpx.HTTPError):
            found = await check()
            if found:
                return found
        assert time.monotonic() < deadline, f"no {what} within {bound_s:.0f} s"
        await asyncio.sleep(0.1)


def clients(station: StationProcess) -> tuple[aioredis.Redis, httpx.AsyncClient]:
    """The bus (a new URL each start) and the API, as an admin."""
    bus = aioredis.Redis.from_url(station.redis_url, decode_responses=True)
    headers = {"Authorization": f"Bearer {station.token()}"}
    return bus, httpx.AsyncClient(base_url=station.url, headers=headers, timeout=30)


async def configure(http: httpx.AsyncClient) -> None:
    saved = await http.patch("/api/settings", json={"patch": SETTINGS, "comment": "kill test"})
    assert saved.status_code == 200, saved.text
    # The station's first output (a WAV folder, written faster than real time) becomes a
    # real-time null output.
    put = await http.put("/api/audio/outputs/wav-folder", json=AIR)
    assert put.status_code == 200, put.text


async def kill_mid_ingest(station: StationProcess, cap: Path) -> tuple[list[str], str]:
    bus, http = clients(station)
    try:
        await configure(http)
        written = write_cap_files(cap, INGESTED, prefix="kill-ingest", area=OTHER_COUNTY)
        # The first alert stored and announced: the others are being read, stored, decided.
        await until("first alert.created", lambda: counts.created(bus, NS), 60)
        created = len(await counts.created(bus, NS))
        decided = len(await counts.decisions(bus, NS))
    finally:
        await bus.aclose()
        await http.aclose()
    old_redis = station.embedded_redis_pid()
    station.kill9()
    note = f"killed with {created} announced, {decided} decided of {INGESTED}"
    return written, f"{note}; embedded Redis pid {old_redis}"


async def redis_gone(station: StationProcess) -> bool:
    return station.embedded_redis_pid() is None


async def kill_mid_playout(station: StationProcess, cap: Path, ingested: list[str]) -> str:
    bus, http = clients(station)
    try:
        await until(
            "every alert decided after the restart",
            lambda: _all_in(ingested, counts.decisions(bus, NS)),
            90,
        )
        [local] = write_cap_files(cap, 1, prefix="kill-playout")

        async def on_air() -> Any:
            return next(
                (
                    e
                    for e in await counts.playout(bus, NS)
                    if e.type == "playout.started" and e.data.get("output") == "air"
                ),
                None,
            )

        started = await until("the relayed message on air", on_air, 90)
        # A second of audio out: the header is going out when the station dies.
        await asyncio.sleep(1.0)
        settled = await counts.messages_settled(bus, NS)
        assert started.data["message_id"] not in settled, "the message ended before the kill"
    finally:
        await bus.aclose()
        await http.aclose()
    station.kill9()
    return local


async def _all_in(expected: list[str], found: Awaitable[Any]) -> bool:
    return set(expected) <= set(await found)


async def worker_cycled_after(bus: aioredis.Redis, after: datetime) -> bool:
    """Two playout-worker heartbeats sent after ``after``: the worker beats only between items,
    so a second beat means it looked for the next item and either found none or aired it."""
    beats = [
        e
        for e in await stream_envelopes(bus, SERVICE_HEARTBEAT, NS)
        if e.data.get("service") == "audio-control-playout" and e.time > after
    ]
    return len(beats) >= 2


def test_kill_9_mid_ingest_and_mid_playout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cap = tmp_path / "cap"
    cap.mkdir()
    station = StationProcess(tmp_path / "var", cap)
    began = time.monotonic()
    notes: list[str] = []

    def mark(what: str) -> None:
        notes.append(f"{time.monotonic() - began:5.1f}s {what}")

    try:
        station.start()
        mark("station ready")
        ingested, note = asyncio.run(kill_mid_ingest(station, cap))
        mark(note)
        # The bus dies with the station (it is the station's own): nothing is left holding
        # the data folder's Redis files when the station starts again.
        asyncio.run(until("the embedded Redis gone", lambda: redis_gone(station), 15))
        station.start()
        mark("restarted")
        local = asyncio.run(kill_mid_playout(station, cap, ingested))
        mark("killed while the relayed message was on air")
        station.start()
        mark("restarted")
        asyncio.run(check_counts(station, ingested, local, notes))
        mark("counted")
    finally:
        code = station.stop()
        with capsys.disabled():
            print("\n" + "\n".join(notes) + f"\nelapsed {time.monotonic() - began:.0f}s")
    assert code == 0, station.log()


async def check_counts(
    station: StationProcess, ingested: list[str], local: str, notes: list[str]
) -> None:
    bus, http = clients(station)
    written = [*ingested, local]
    try:
        decisions = await until("every alert decided", lambda: _decided(bus, written), 60)
        [decision] = decisions[local]

        async def cut() -> Any:
            return next(
                (
                    e
                    for e in await counts.playout(bus, NS)
                    if e.type == "playout.interrupted" and e.data.get("output") == "air"
                ),
                None,
            )

        interrupted = await until("the cut airing recorded", cut, 60)
        await until(
            "the worker's next cycles",
            lambda: worker_cycled_after(bus, interrupted.time),
            30,
        )
        stored = await counts.stored(http, len(written))
        created = await counts.created(bus, NS)
        started = await counts.airings_started(bus, NS)
        dead = await counts.dead_letters(bus, NS)
        events = [e for e in await counts.playout(bus, NS) if e.data.get("output") == "air"]
        log = (await http.get("/api/audio/log", params={"kind": "playout"})).json()
    finally:
        await bus.aclose()
        await http.aclose()
    notes += [
        f"alerts stored: {len(set(stored) & set(written))} of {len(written)} "
        f"(twice: {len(once_each(stored))}); alert.created: {len(created)} "
        f"(twice: {len(once_each(created))})",
        f"decisions: {len(decisions)} alerts decided (more than one: "
        f"{sum(len(d) != 1 for d in decisions.values())})",
        f"airings started: {started} (twice: {len(once_each(started))})",
        f"the cut airing: {interrupted.data['reason']}",
        f"dead letters: {dead}",
    ]
    assert sorted(stored) == sorted(written)
    assert sorted(created) == sorted(written)
    assert set(decisions) >= set(written)
    assert all(len(d) == 1 for d in decisions.values()), decisions
    assert once_each(started) == {} and len(started) == 1, started
    assert [e.type for e in events] == ["playout.started", "playout.interrupted"], [
        (e.type, e.data["reason"]) for e in events
    ]
    assert "EOM sent on restart" in interrupted.data["reason"]
    assert decision and dead == []
    # What went out is in the station log: the airing that was cut, and why.
    reasons = " | ".join(str(item) for item in log["items"])
    assert "stopped while it was on air" in reasons, reasons


async def _decided(bus: aioredis.Redis, written: list[str]) -> dict[str, set[str]] | None:
    found = await counts.decisions(bus, NS)
    return found if set(written) <= set(found) else None
