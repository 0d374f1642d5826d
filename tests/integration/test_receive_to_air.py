"""Receive to air, every service real on real Redis and PostgreSQL: a CAP Tornado Warning for
the station's county (through alerts-api) and, separately, a Required Weekly Test heard on an
audio input (through eas-monitor's decoder) that waits for an operator's confirmation. Each is
decided by audio-control, composed, and played by the playout worker into a WAV-folder output
whose transmitter is keyed through gpiozero (mock pins). Checked: the aired files decode, by
eas-same and by multimon-ng, to the expected re-encoded header and three EOMs; the keying
line was up before the first sample and down after the last; the station log holds each step
and its chain verifies; a ``/ws`` client saw every decision and playout event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from asgi_lifespan import LifespanManager
from gpiozero.pins.mock import MockFactory
from websockets.asyncio.client import connect

from audio_control.playout.keying import keying_for
from audio_control.playout.outputs import open_output
from audio_control.playout.store import OutputSpec
from audio_control.playout.worker import PlayoutWorker
from audio_control.settings import AudioControlSettings
from eas_same import generate, write_wav
from eas_same.decoder import decode_samples
from eas_same.header import SameHeader
from eas_schemas.envelope import encode_entry
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings
from eas_schemas.streams import ALERTS_INGESTED
from eas_testkit.decoders import multimon_eas
from eas_testkit.factories import current_settings_body, ingested_envelope, make_alert
from eas_testkit.services import Resources, build_app
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key
from ws_broadcaster.server import StandaloneServer
from ws_broadcaster.settings import WsBroadcasterSettings
from ws_broadcaster.testing import subscribe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PIN = 17
STATION = StationSettings.model_validate(
    {
        "identity": {"name": "Air FM", "callsign": "WAIR/FM", "timezone": "America/New_York"},
        "location": {"same_codes": ["039035"]},
        "relay": {
            "enabled": True,
            "events": ["TOR", "RWT"],
            "originators": ["PEP", "CIV", "WXR", "EAS"],
            "require_confirmation": ["RWT"],
            "confirmation_timeout_s": 600,
            "delay_s": 0,
        },
    }
)


class KeyedAir:
    """The real outputs and keyers, watched: where the line was at each output's first and
    last sample, and when it went up and down."""

    def __init__(self) -> None:
        self.factory = MockFactory()
        self.lock = threading.Lock()
        self.marks: list[tuple[str, str, float]] = []  # (label, what, monotonic)

    def line(self) -> int:
        return int(self.factory.pin(PIN).state)

    def mark(self, label: str, what: str) -> None:
        with self.lock:
            self.marks.append((label, what, time.monotonic()))

    def sink(self, output: OutputSpec, rate: int, label: str = "") -> Any:
        real = open_output(output, rate, label)
        air = self

        class Watched:
            first = True

            def write(self, block: Any) -> None:
                if self.first:
                    air.mark(label, f"first sample, line {air.line()}")
                    self.first = False
                real.write(block)

            def finish(self) -> Any:
                air.mark(label, f"last sample, line {air.line()}")
                return real.finish()

            def abort(self) -> None:
                real.abort()

            def level(self) -> Any:
                return real.level()

        return Watched()

    def keyer(self, output: OutputSpec) -> Any:
        real = keying_for(output.keying, pin_factory=self.factory)
        air = self

        class Watched:
            pre_roll_s = real.pre_roll_s
            post_roll_s = real.post_roll_s

            def key(self, max_s: float) -> Any:
                got = real.key(max_s)
                air.mark(output.name, f"keyed, line {air.line()}")
                return got

            def unkey(self) -> Any:
                got = real.unkey()
                air.mark(output.name, f"unkeyed, line {air.line()}")
                return got

            def close(self) -> None:
                real.close()

        return Watched()


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        await asyncio.sleep(0.2)


def decoded(path: Path) -> tuple[str, list[str]]:
    samples, rate = sf.read(path, dtype="float64")
    events, _ = decode_samples(samples, rate)
    assert [e.type for e in events] == ["header", "attention", "eom"], path.name
    header = next(e for e in events if e.type == "header").text
    assert header is not None
    return header, multimon_eas(samples, rate)


async def test_cap_and_heard_alerts_are_aired_keyed_logged_and_seen(
    database_url: str, redis_url: str, bus_namespace: str, tmp_path: Path, aredis: Any
) -> None:
    resources = Resources(database_url, redis_url, bus_namespace, tmp_path)
    await aredis.set(f"{bus_namespace}:{CURRENT_SETTINGS_KEY}", current_settings_body(1, STATION))
    aired = tmp_path / "aired"
    alerts = await build_app("alerts-api", resources)
    audio = await build_app("audio-control", resources)
    monitor = await build_app(
        "eas-monitor",
        resources,
        data_dir=tmp_path / "monitor",
        start_timeout_s=60.0,
        startup_grace_s=60.0,
        stall_timeout_s=30.0,
        aggregation_window_s=1.5,
    )
    ws_settings = WsBroadcasterSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        host="127.0.0.1",
        port=0,
        auth_public_key=resources.public_key_pem,
        anonymous_read=False,
        heartbeat_interval_s=3600.0,
    )
    air = KeyedAir()
    stop = threading.Event()
    worker_settings = AudioControlSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        instance="it-playout",
        lease_ttl_s=2.0,
        playout_block_s=0.05,
        heartbeat_interval_s=60,
    )
    seen: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(LifespanManager(alerts))
        audio_on = await stack.enter_async_context(LifespanManager(audio))
        monitor_on = await stack.enter_async_context(
            LifespanManager(monitor, startup_timeout=60, shutdown_timeout=60)
        )
        server = await stack.enter_async_context(StandaloneServer(ws_settings))

        def client(app: Any, role: Role, base: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app.app),
                base_url=base,
                headers={"Authorization": f"Bearer {resources.token(role)}"},
                timeout=60,
            )

        admin = await stack.enter_async_context(client(audio_on, Role.ADMIN, "http://audio"))
        operator = await stack.enter_async_context(client(audio_on, Role.OPERATOR, "http://audio"))
        mon = await stack.enter_async_context(client(monitor_on, Role.OPERATOR, "http://mon"))

        # One output on air: the WAV folder, its transmitter keyed on GPIO17 with pre-/post-roll.
        for out in (await admin.get("/api/audio/outputs")).json():
            assert (await admin.delete(f"/api/audio/outputs/{out['name']}")).status_code == 204
        made = await admin.post(
            "/api/audio/outputs",
            json={
                "name": "air",
                "config": {"kind": "wav_folder", "folder": str(aired)},
                "keying": {"kind": "gpio", "pin": PIN, "pre_roll_s": 0.3, "post_roll_s": 0.3},
            },
        )
        assert made.status_code == 201, made.text

        ws = await stack.enter_async_context(
            connect(f"ws://127.0.0.1:{server.port}/ws?token={resources.token(Role.VIEWER)}")
        )
        await subscribe(ws, ["relay", "playout"])

        async def listen() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") == "event":
                    seen.append(message)

        listener = asyncio.create_task(listen())
        worker = PlayoutWorker(worker_settings, air.sink, air.keyer)
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            # 1. A CAP Tornado Warning through alerts-api.
            cap = make_alert()
            await aredis.xadd(
                stream_key(ALERTS_INGESTED, bus_namespace), encode_entry(ingested_envelope(cap))
            )
            tor = await until("an aired TOR", lambda: _aired(aired, "TOR"))

            # 2. A Required Weekly Test heard on an audio input, confirmed by an operator.
            rwt = SameHeader.create(
                originator="EAS",
                event="RWT",
                locations=["039035"],
                duration="0015",
                issued=datetime.now(UTC),
                callsign="WXYZ/FM",
            )
            heard_wav = tmp_path / "heard-rwt.wav"
            write_wav(heard_wav, generate(rwt, 22050, attention=None, eom=True), 22050)
            made = await mon.post(
                "/api/eas-monitor/inputs",
                json={
                    "name": "fm1",
                    "config": {"kind": "file", "path": str(heard_wav), "realtime": False},
                },
            )
            assert made.status_code == 201, made.text
            started = await mon.post(f"/api/eas-monitor/inputs/{made.json()['id']}/start")
            assert started.is_success, started.text

            async def pending() -> Any:
                waiting = (await operator.get("/api/audio/confirmations")).json()
                return next((d for d in waiting if d["event_code"] == "RWT"), None)

            try:
                decision = await until("an RWT waiting for confirmation", pending, 60)
            except AssertionError:
                decisions = (await operator.get("/api/audio/decisions")).json()
                raise AssertionError(f"decisions: {decisions}") from None
            assert not list(aired.glob("*RWT*")), "an RWT aired before it was confirmed"
            confirmed = await operator.post(
                f"/api/audio/confirmations/{decision['decision_id']}/confirm"
            )
            assert confirmed.status_code == 200, confirmed.text
            test = await until("an aired RWT", lambda: _aired(aired, "RWT"))

            async def logged() -> Any:
                page = (await operator.get("/api/audio/log", params={"limit": 200})).json()
                relayed = [e for e in page["items"] if e["kind"] == "relayed"]
                return page["items"] if len(relayed) >= 2 else None

            entries = await until("both relays in the station log", logged)
            verify = (await operator.get("/api/audio/log/verify")).json()
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    # What aired: each file decodes (both decoders) to the header re-encoded with our callsign.
    tor_header, tor_multimon = decoded(tor)
    assert tor_header.startswith("ZCZC-CIV-TOR-039035+") and tor_header.endswith("-WAIR/FM -")
    assert tor_multimon == [tor_header, "NNNN", "NNNN", "NNNN"]
    rwt_header, rwt_multimon = decoded(test)
    assert rwt_header == rwt.text.replace("WXYZ/FM ", "WAIR/FM ")
    assert rwt_multimon == [rwt_header, "NNNN", "NNNN", "NNNN"]

    # The transmitter: keyed before each message's first sample, unkeyed after its last.
    whats = [what for _, what, _ in air.marks]
    assert (
        whats
        == [
            "keyed, line 1",
            "first sample, line 1",
            "last sample, line 1",
            "unkeyed, line 0",
        ]
        * 2
    ), air.marks
    assert air.line() == 0

    # The station log: received, decided, confirmed by whom, played, relayed; the chain holds.
    kinds = {e["kind"] for e in entries}
    assert {"received_cap", "received_air", "decision", "operator", "playout", "relayed"} <= kinds
    assert any(e["kind"] == "operator" and e["actor"] == "test-operator" for e in entries)
    assert verify["intact"] is True, verify

    # A /ws client saw both decisions' changes and both messages on air.
    types = [(m["topic"], m["envelope"]["type"]) for m in seen]
    assert types.count(("playout", "playout.started")) >= 2, types
    assert types.count(("playout", "playout.finished")) >= 2, types
    decided = {m["envelope"]["data"]["event_code"] for m in seen if m["topic"] == "relay"}
    assert decided >= {"TOR", "RWT"}, types
    states = [
        m["envelope"]["data"]["state"]
        for m in seen
        if m["topic"] == "relay" and m["envelope"]["data"]["event_code"] == "RWT"
    ]
    assert "pending_confirmation" in states and "confirmed" in states and "aired" in states


async def _aired(folder: Path, event: str) -> Path | None:
    found = sorted(folder.glob(f"*-{event}-*.wav"))
    return found[0] if found else None
