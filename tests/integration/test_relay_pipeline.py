"""CAP to air, across services on real Redis and PostgreSQL: a CAP Tornado Warning for the
station's county goes through alerts-api (stored, announced with its CAP document) to
audio-control, which decides to relay it with every reason and composes a message whose
audio both decoders read as exactly its header and three EOMs; and the same alert delivered
twice to alerts-api is still one decision."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from asgi_lifespan import LifespanManager

from eas_same.decoder import decode_samples
from eas_schemas.envelope import decode_entry, encode_entry
from eas_schemas.relay_events import RELAY_DECISION_TYPE, RelayDecisionEvent
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings
from eas_schemas.streams import ALERTS_INGESTED, RELAY_DECISIONS
from eas_testkit.decoders import multimon_eas
from eas_testkit.factories import current_settings_body, ingested_envelope, make_alert
from eas_testkit.services import Resources, build_app
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key

pytestmark = pytest.mark.integration

STATION = StationSettings.model_validate(
    {
        "identity": {"name": "Pipeline FM", "callsign": "WPIP/FM", "timezone": "America/New_York"},
        "location": {"same_codes": ["039035"]},
        "relay": {"enabled": True, "events": ["TOR"]},
    }
)


async def test_cap_tornado_warning_from_ingest_to_a_decoded_message(
    database_url: str, redis_url: str, bus_namespace: str, tmp_path: Path, aredis: Any
) -> None:
    resources = Resources(database_url, redis_url, bus_namespace, tmp_path)
    await aredis.set(f"{bus_namespace}:{CURRENT_SETTINGS_KEY}", current_settings_body(1, STATION))
    alerts = await build_app("alerts-api", resources)
    audio = await build_app("audio-control", resources)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(LifespanManager(alerts))
        audio_running = await stack.enter_async_context(LifespanManager(audio))
        cap = make_alert()
        envelope = ingested_envelope(cap)
        key = stream_key(ALERTS_INGESTED, bus_namespace)
        # Delivered twice (a poller restarted): stored once, decided once.
        await aredis.xadd(key, encode_entry(envelope))
        await aredis.xadd(key, encode_entry(envelope))

        decisions = stream_key(RELAY_DECISIONS, bus_namespace)
        deadline = time.monotonic() + 60
        final: RelayDecisionEvent | None = None
        seen: list[RelayDecisionEvent] = []
        while time.monotonic() < deadline:
            seen = [
                RelayDecisionEvent.model_validate(decode_entry(f).data)
                for _, f in await aredis.xrange(decisions)
                if f.get("type") == RELAY_DECISION_TYPE
            ]
            final = next((d for d in reversed(seen) if d.message_id), None)
            if final is not None:
                break
            await asyncio.sleep(0.1)
        assert final is not None, seen
        assert {d.decision_id for d in seen} == {final.decision_id}
        assert final.state.value == "scheduled" and final.alert_identifier == cap.identifier
        location = next(c for c in final.checks if c.rule == "location")
        assert location.passed and "039035" in location.detail

        token = resources.token(Role.VIEWER)
        transport = httpx.ASGITransport(app=audio_running.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://audio",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            message = (await http.get(f"/api/audio/messages/{final.message_id}")).json()
            wav = (await http.get(message["audio_url"])).content
    samples, rate = sf.read(io.BytesIO(wav), dtype="float64")
    header = final.header
    assert header is not None and header.startswith("ZCZC-CIV-TOR-039035+0100-")
    assert header.endswith("-WPIP/FM -")
    events, _ = decode_samples(samples, rate)
    assert [e.type for e in events] == ["header", "attention", "eom"]
    assert next(e for e in events if e.type == "header").text == header
    assert multimon_eas(samples, rate) == [header, "NNNN", "NNNN", "NNNN"]
