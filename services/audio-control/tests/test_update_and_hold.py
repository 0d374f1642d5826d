"""CAP Updates and times as real feeds send them (issue 11): an Update that moves the area
away from the station withdraws the earlier decision (its queued item leaves the queue, the
change is announced and logged); an alert not yet in effect is queued for its time, not now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from audio_control.app import create_app
from audio_control.settings import AudioControlSettings
from eas_schemas.cap import CapMsgType, CapReference
from eas_schemas.envelope import decode_entry
from eas_schemas.playout_events import PLAYOUT_CANCELLED_TYPE, PLAYOUT_QUEUED_TYPE, PlayoutEvent
from eas_schemas.relay_events import RelayDecisionEvent
from eas_schemas.streams import ALERT_EVENTS, PLAYOUT_EVENTS
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key

from .service_helpers import set_station, station
from .test_service import created, decisions_seen, latest, now_cap, publish

pytestmark = pytest.mark.integration


async def _playout(aredis: Any, namespace: str, etype: str, timeout_s: float = 30) -> list[Any]:
    """The playout events of one type, polled until one is there (generous bound)."""
    deadline = time.monotonic() + timeout_s
    key = stream_key(PLAYOUT_EVENTS, namespace)
    while True:
        envelopes = [decode_entry(f) for _, f in await aredis.xrange(key)]
        got = [PlayoutEvent.model_validate(e.data) for e in envelopes if e.type == etype]
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def _has_message(decision_id: int) -> Any:
    def done(es: list[RelayDecisionEvent]) -> bool:
        d = latest(es).get(decision_id)
        return d is not None and d.message_id is not None

    return done


async def test_update_that_leaves_the_area_withdraws_the_queued_relay(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    original = now_cap(identifier="svr-1", event="Severe Thunderstorm Warning", same_event="SVR")
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(original, alert_id=11))
    (first,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    assert first.state.value == "scheduled"
    assert not any(c.rule == "feed_deviation" for c in first.checks)  # a conformant document
    await decisions_seen(aredis, bus_namespace, _has_message(first.decision_id))
    (queued,) = await _playout(aredis, bus_namespace, PLAYOUT_QUEUED_TYPE)
    assert queued.decision_id == first.decision_id

    # The NWS re-draws the warning: the Update now covers only the next county (039055).
    update = now_cap(
        identifier="svr-2",
        event="Severe Thunderstorm Warning",
        same_event="SVR",
        codes=("039055",),
        msg_type=CapMsgType.UPDATE,
    ).model_copy(
        update={
            "references": [
                CapReference(
                    sender=original.sender, identifier=original.identifier, sent=original.sent
                )
            ]
        }
    )
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(update, alert_id=12))

    def settled(es: list[RelayDecisionEvent]) -> bool:
        states = {d.alert_id: d.state.value for d in latest(es).values()}
        return states.get(11) == "withdrawn" and 12 in states

    by_alert = {
        d.alert_id: d for d in latest(await decisions_seen(aredis, bus_namespace, settled)).values()
    }
    withdrawn = by_alert[11]
    assert withdrawn.state.value == "withdrawn"
    assert "svr-2 no longer includes the station's area" in withdrawn.reason
    assert "039035" in withdrawn.reason  # the station's code, named
    assert by_alert[12].state.value == "ignored"  # the Update itself is not for this station
    (cancelled,) = await _playout(aredis, bus_namespace, PLAYOUT_CANCELLED_TYPE)
    assert cancelled.item_id == queued.item_id and cancelled.state.value == "cancelled"
    log = (await service.get("/api/audio/log", params={"kind": "decision"})).json()["items"]
    assert any(
        e["decision_id"] == first.decision_id and e["decision_state"] == "withdrawn" for e in log
    ), log


async def test_update_still_in_the_area_supersedes(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    original = now_cap(identifier="tor-1")
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(original, alert_id=21))
    await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    update = now_cap(
        identifier="tor-2", codes=("039035", "039055"), msg_type=CapMsgType.UPDATE
    ).model_copy(
        update={
            "references": [
                CapReference(
                    sender=original.sender, identifier=original.identifier, sent=original.sent
                )
            ]
        }
    )
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(update, alert_id=22))

    def settled(es: list[RelayDecisionEvent]) -> bool:
        states = {d.alert_id: d.state.value for d in latest(es).values()}
        return states.get(21) == "superseded" and states.get(22) == "scheduled"

    by_alert = {
        d.alert_id: d for d in latest(await decisions_seen(aredis, bus_namespace, settled)).values()
    }
    assert by_alert[21].state.value == "superseded" and "tor-2" in by_alert[21].reason


async def test_alert_effective_later_is_held_until_then(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    effective = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=90)
    # No expires either: the station's default duration counts from when it takes effect,
    # not from sent (which would make it expire before it may air).
    cap = now_cap(identifier="later-1", effective=effective, expires_in=None)
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(cap, alert_id=31))
    (decision,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    assert decision.state.value == "scheduled"
    assert decision.relay_at is not None and decision.relay_at >= effective
    held = next(c for c in decision.checks if c.rule == "not_yet_effective")
    assert held.passed
    await decisions_seen(aredis, bus_namespace, _has_message(decision.decision_id))
    (queued,) = await _playout(aredis, bus_namespace, PLAYOUT_QUEUED_TYPE)
    assert queued.air_at is not None and queued.air_at >= effective
    assert decision.purge_at is not None and decision.purge_at > effective
    duration = next(c for c in decision.checks if c.rule == "duration")
    assert duration.passed and "from effective" in duration.detail


async def test_bilingual_alert_is_relayed_in_the_station_language(
    settings: AudioControlSettings,
    aredis: Any,
    bus_namespace: str,
    token: Callable[[Role], str],
) -> None:
    english = now_cap(identifier="tor-bilingual-1")
    (en,) = english.infos
    es = en.model_copy(
        update={
            "language": "es-US",
            "event": "Aviso de Tornado",
            "headline": "Aviso de tornado para el condado de Cuyahoga",
            "description": "Se observó un tornado cerca de Parma.",
        }
    )
    bilingual = english.model_copy(update={"infos": [en, es]})
    await set_station(aredis, bus_namespace, station(language="es-US"))
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        await publish(aredis, bus_namespace, ALERT_EVENTS, created(bilingual, alert_id=41))
        (decision,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
        info = next(c for c in decision.checks if c.rule == "info")
        assert info.passed and info.values["used"] == "es-US"
        final = latest(
            await decisions_seen(aredis, bus_namespace, _has_message(decision.decision_id))
        )[decision.decision_id]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audio") as http:
            headers = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
            message = (
                await http.get(f"/api/audio/messages/{final.message_id}", headers=headers)
            ).json()
    assert "Se observó un tornado cerca de Parma" in message["text"]
    assert "A tornado was observed" not in message["text"]


async def test_feed_deviations_are_shown_on_the_decision(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    envelope = created(now_cap(identifier="svr-old-api"), alert_id=51)
    envelope.data.alert.deviations = ["sender_held_name", "sender_assumed_nws"]
    await publish(aredis, bus_namespace, ALERT_EVENTS, envelope)
    (decision,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    check = next(c for c in decision.checks if c.rule == "feed_deviation")
    assert check.passed and "sender_held_name, sender_assumed_nws" in check.detail
    assert decision.state.value == "scheduled"  # repaired, not held
