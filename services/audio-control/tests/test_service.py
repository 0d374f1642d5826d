"""audio-control as a service on real Redis and PostgreSQL: decisions made once from the bus,
announced with their reasons, operators' actions, and the composed messages."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from asgi_lifespan import LifespanManager

from audio_control.app import create_app
from audio_control.settings import AudioControlSettings
from eas_schemas.cap import CapAlert, CapMsgType, CapReference
from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.events import AlertEventType, AlertLifecycle, AlertState, AlertSummary, FeedKind
from eas_schemas.monitor_events import SAME_HEADER_TYPE, SameHeaderEvent
from eas_schemas.relay_events import RELAY_DECISION_TYPE, RelayDecisionEvent
from eas_schemas.streams import ALERT_EVENTS, AUDIT_RECORDS, RELAY_DECISIONS, SAME_EVENTS
from eas_testkit.decoders import multimon_eas
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key

from .conftest import cap_alert, heard_event
from .media_helpers import own_decode
from .service_helpers import CALLSIGN, set_station, station

pytestmark = pytest.mark.integration

# ---- bus helpers ---------------------------------------------------------------------------


def created(cap: CapAlert, alert_id: int = 1, age_s: float = 0) -> EventEnvelope[AlertLifecycle]:
    info = cap.infos[0]
    summary = AlertSummary(
        id=alert_id,
        identifier=cap.identifier,
        sender=cap.sender,
        sent=cap.sent,
        status=cap.status,
        msg_type=cap.msg_type,
        state=AlertState.ACTIVE,
        source=FeedKind.CAP_FOLDER,
        event=info.event,
        same_event=info.same_event_code(),
        severity=info.severity,
        urgency=info.urgency,
        certainty=info.certainty,
        headline=info.headline,
        area_desc=info.areas[0].area_desc,
        same_codes=cap.same_codes(),
        ugc_codes=cap.ugc_codes(),
        onset=info.onset,
        expires=info.expires,
        relevant=True,
        relevance_reason="test",
    )
    return EventEnvelope[AlertLifecycle](
        type=AlertEventType.CREATED.value,
        source="alerts-api/test",
        time=datetime.now(UTC) - timedelta(seconds=age_s),
        data=AlertLifecycle(alert=summary, reason="received", cap=cap),
    )


def lifecycle(
    etype: AlertEventType, cap: CapAlert, alert_id: int, state: AlertState, reason: str
) -> EventEnvelope[AlertLifecycle]:
    base = created(cap, alert_id)
    summary = base.data.alert.model_copy(update={"state": state})
    return EventEnvelope[AlertLifecycle](
        type=etype.value,
        source="alerts-api/test",
        data=AlertLifecycle(alert=summary, reason=reason, previous_state=AlertState.ACTIVE),
    )


def heard(event: SameHeaderEvent) -> EventEnvelope[SameHeaderEvent]:
    return EventEnvelope[SameHeaderEvent](
        type=SAME_HEADER_TYPE, source="eas-monitor/test", data=event
    )


async def publish(aredis: Any, namespace: str, stream: Any, envelope: EventEnvelope[Any]) -> None:
    await aredis.xadd(stream_key(stream, namespace), encode_entry(envelope))


async def decisions_seen(
    aredis: Any,
    namespace: str,
    until: Callable[[list[RelayDecisionEvent]], bool],
    timeout_s: float = 30,
) -> list[RelayDecisionEvent]:
    """Every relay.decision announced, polled until ``until`` holds (generous bound)."""
    key = stream_key(RELAY_DECISIONS, namespace)
    deadline = time.monotonic() + timeout_s
    while True:
        got = [
            RelayDecisionEvent.model_validate(decode_entry(f).data)
            for _, f in await aredis.xrange(key)
            if f.get("type") == RELAY_DECISION_TYPE
        ]
        if until(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def latest(events: list[RelayDecisionEvent]) -> dict[int, RelayDecisionEvent]:
    out: dict[int, RelayDecisionEvent] = {}
    for e in events:
        if e.decision_id not in out or e.revision > out[e.decision_id].revision:
            out[e.decision_id] = e
    return out


def now_cap(identifier: str = "NWS-TEST-1", **kw: Any) -> CapAlert:
    sent = datetime.now(UTC).replace(microsecond=0)
    return cap_alert(sent=sent, **kw).model_copy(update={"identifier": identifier})


# ---- CAP ------------------------------------------------------------------------------------


async def test_cap_tornado_warning_is_decided_announced_and_composed(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    cap = now_cap()
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(cap, alert_id=41))
    events = await decisions_seen(aredis, bus_namespace, lambda es: any(e.message_id for e in es))
    first, final = events[0], latest(events)[events[0].decision_id]
    assert first.state.value == "scheduled" and first.revision == 1
    assert first.alert_id == 41 and first.source.value == "cap"
    assert first.header is not None and first.header.startswith("ZCZC-WXR-TOR-039035+0100-")
    assert first.header.endswith(f"-{CALLSIGN.ljust(8)}-")
    rules = {c.rule: c for c in first.checks}
    assert rules["location"].passed and rules["event"].passed and rules["relay_enabled"].passed
    assert "039035" in rules["location"].detail
    assert final.message_id is not None and final.revision == 2

    detail = (await service.get(f"/api/audio/decisions/{first.decision_id}")).json()
    assert detail["message_id"] == final.message_id and detail["state"] == "scheduled"
    message = (await service.get(f"/api/audio/messages/{final.message_id}")).json()
    assert message["header"] == first.header and message["narration_source"] == "tts"
    assert message["tone"] == "broadcast" and "TORNADO WARNING" in message["text"]
    kinds = [c["kind"] for c in message["components"]["components"] if c["kind"] != "silence"]
    assert kinds == ["header"] * 3 + ["attention", "narration"] + ["eom"] * 3
    wav = await service.get(message["audio_url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(wav.content), dtype="float32")
    x = np.asarray(samples, dtype=np.float64)
    events_heard = own_decode(x, rate)
    assert [e.type for e in events_heard] == ["header", "attention", "eom"]
    assert events_heard[0].text == first.header
    assert multimon_eas(x, rate) == [first.header, "NNNN", "NNNN", "NNNN"]


async def test_the_same_event_delivered_twice_makes_one_decision(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    envelope = created(now_cap(), alert_id=7)
    await publish(aredis, bus_namespace, ALERT_EVENTS, envelope)
    await publish(aredis, bus_namespace, ALERT_EVENTS, envelope)
    await decisions_seen(aredis, bus_namespace, lambda es: any(e.message_id for e in es))
    page = (await service.get("/api/audio/decisions")).json()
    assert len(page["items"]) == 1
    consumers = service.app.state.consumers  # type: ignore[attr-defined]
    assert consumers[0].stats.handled == 2  # both read, the second changed nothing


async def test_a_fresh_station_relays_nothing(
    settings: AudioControlSettings, aredis: Any, bus_namespace: str, token: Callable[[Role], str]
) -> None:
    # No settings document at all: the built-in defaults, relay off.
    app = create_app(settings)
    async with LifespanManager(app):
        await publish(aredis, bus_namespace, ALERT_EVENTS, created(now_cap(), alert_id=3))
        (event,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    assert event.state.value == "ignored" and event.message_id is None
    relay_check = next(c for c in event.checks if c.rule == "relay_enabled")
    assert not relay_check.passed and "off" in relay_check.detail


async def test_an_old_alert_caught_up_on_is_not_relayed(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(now_cap(), alert_id=5, age_s=3600))
    (event,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    assert event.state.value == "ignored"
    assert not next(c for c in event.checks if c.rule == "stale").passed


async def test_cancel_withdraws_and_update_supersedes(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    first, second = now_cap(), now_cap(identifier="second")
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(first, alert_id=1))
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(second, alert_id=2))
    await decisions_seen(aredis, bus_namespace, lambda es: len(latest(es)) == 2)
    await publish(
        aredis,
        bus_namespace,
        ALERT_EVENTS,
        lifecycle(AlertEventType.CANCELLED, first, 1, AlertState.CANCELLED, "cancelled by x"),
    )
    update = now_cap(identifier="second-update", msg_type=CapMsgType.UPDATE).model_copy(
        update={
            "references": [
                CapReference(sender=second.sender, identifier=second.identifier, sent=second.sent)
            ]
        }
    )
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(update, alert_id=3))

    def settled(es: list[RelayDecisionEvent]) -> bool:
        states = {d.alert_id: d.state.value for d in latest(es).values()}
        return states.get(1) == "withdrawn" and states.get(2) == "superseded" and 3 in states

    final = latest(await decisions_seen(aredis, bus_namespace, settled))
    by_alert = {d.alert_id: d for d in final.values()}
    assert by_alert[1].state.value == "withdrawn" and "cancelled" in by_alert[1].reason
    assert by_alert[2].state.value == "superseded" and "second-update" in by_alert[2].reason
    assert by_alert[3].state.value == "scheduled"
    # The alert.updated that alerts-api also announces for the replaced alert changes nothing.
    await publish(
        aredis,
        bus_namespace,
        ALERT_EVENTS,
        lifecycle(AlertEventType.UPDATED, second, 2, AlertState.UPDATED, "superseded"),
    )
    # The barrier instead of a sleep: alert events are handled one at a time, in order, each
    # publishing its decisions before the next is read; so once the decision on a marker
    # alert sent after the alert.updated is out, anything that update caused is out too.
    await publish(
        aredis, bus_namespace, ALERT_EVENTS, created(now_cap(identifier="marker"), alert_id=4)
    )

    def marker_decided(es: list[RelayDecisionEvent]) -> bool:
        return any(d.alert_id == 4 for d in es)

    again = latest(await decisions_seen(aredis, bus_namespace, marker_decided))
    assert any(d.alert_id == 4 for d in again.values())
    assert again[by_alert[2].decision_id].revision == by_alert[2].revision
    assert again[by_alert[2].decision_id].state.value == "superseded"


# ---- on air ---------------------------------------------------------------------------------


async def test_heard_rwt_waiting_for_confirmation_is_confirmed_and_gets_its_message(
    settings: AudioControlSettings,
    aredis: Any,
    bus_namespace: str,
    token: Callable[[Role], str],
) -> None:
    await set_station(aredis, bus_namespace, station(require_confirmation=["RWT"]))
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audio") as http:
            issued = datetime.now(UTC).replace(second=0, microsecond=0)
            rwt = heard_event(event="RWT", originator="WXR", duration="0015", issued=issued)
            await publish(aredis, bus_namespace, SAME_EVENTS, heard(rwt))
            events = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
            pending = events[0]
            assert pending.state.value == "pending_confirmation" and pending.source.value == "air"
            assert pending.confirm_by is not None
            waiting = next(c for c in pending.checks if c.rule == "confirmation")
            assert not waiting.passed and "RWT" in waiting.detail

            listed = (
                await http.get("/api/audio/confirmations", headers=_auth(token, Role.VIEWER))
            ).json()
            assert [d["decision_id"] for d in listed] == [pending.decision_id]
            path = f"/api/audio/confirmations/{pending.decision_id}/confirm"
            refused = await http.post(path, headers=_auth(token, Role.VIEWER))
            assert refused.status_code == 403
            answer = await http.post(path, headers=_auth(token, Role.OPERATOR))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["state"] == "confirmed" and body["actor"] == "test-operator"
            again = await http.post(path, headers=_auth(token, Role.OPERATOR))
            assert again.status_code == 409 and "confirmed" in again.json()["detail"]

            def composed(es: list[RelayDecisionEvent]) -> bool:
                d = latest(es).get(pending.decision_id)
                return d is not None and d.message_id is not None and d.state.value == "confirmed"

            final = latest(await decisions_seen(aredis, bus_namespace, composed))[
                pending.decision_id
            ]
            message = (
                await http.get(
                    f"/api/audio/messages/{final.message_id}", headers=_auth(token, Role.VIEWER)
                )
            ).json()
            assert message["header"].startswith("ZCZC-WXR-RWT-039035+0015-")
            assert message["header"].endswith(f"-{CALLSIGN.ljust(8)}-")
    audits = await aredis.xrange(stream_key(AUDIT_RECORDS, bus_namespace))
    actions = [decode_entry(f).data["action"] for _, f in audits]
    assert actions.count("relay.confirm") == 1


def _auth(token: Callable[[Role], str], role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


async def test_the_same_transmission_from_cap_and_air_is_one_decision(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    sent = datetime.now(UTC).replace(second=0, microsecond=0)
    cap = cap_alert(sent=sent)
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(cap, alert_id=9))
    await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
    copy = heard_event(event="TOR", originator="WXR", issued=sent + timedelta(minutes=1))
    await publish(aredis, bus_namespace, SAME_EVENTS, heard(copy))

    def merged(es: list[RelayDecisionEvent]) -> bool:
        return any(e.also_received for e in es)

    final = latest(await decisions_seen(aredis, bus_namespace, merged))
    assert len(final) == 1
    (decision,) = final.values()
    assert decision.source.value == "cap" and decision.also_received[0].source.value == "air"
    assert decision.also_received[0].header == copy.text


async def test_a_pending_confirmation_that_times_out_expires_and_can_be_forwarded(
    settings: AudioControlSettings, aredis: Any, bus_namespace: str, token: Callable[[Role], str]
) -> None:
    await set_station(
        aredis, bus_namespace, station(require_confirmation=["SVR"], confirmation_timeout_s=30)
    )
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        await publish(
            aredis,
            bus_namespace,
            ALERT_EVENTS,
            created(now_cap(event="Severe Thunderstorm Warning", same_event="SVR"), alert_id=12),
        )
        (pending,) = await decisions_seen(aredis, bus_namespace, lambda es: bool(es))
        assert pending.state.value == "pending_confirmation"
        relay = app.state.relay_service
        # The sweep, asked about a moment past the deadline (no waiting on the clock). It skips
        # a row another transaction holds (the composer making the preview attaches its message
        # to the same decision), as every replica's sweep must; its next pass settles it.
        past = pending.confirm_by + timedelta(seconds=1)
        bound = time.monotonic() + 30
        while not (settled := await relay.sweep_confirmations(now=past)):
            assert time.monotonic() < bound, "the sweep never settled the due confirmation"
            await asyncio.sleep(0.05)
        assert settled == 1
        expired = latest(
            await decisions_seen(
                aredis, bus_namespace, lambda es: any(e.state.value == "expired" for e in es)
            )
        )
        assert expired[pending.decision_id].state.value == "expired"
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audio") as http:
            path = f"/api/audio/decisions/{pending.decision_id}/forward"
            answer = await http.post(
                path, json={"note": "seen on radar"}, headers=_auth(token, Role.OPERATOR)
            )
            assert answer.status_code == 200, answer.text
            assert (
                answer.json()["state"] == "forwarded" and "seen on radar" in answer.json()["reason"]
            )
            missing = await http.post(
                "/api/audio/decisions/999999/forward", headers=_auth(token, Role.OPERATOR)
            )
            assert missing.status_code == 404


async def test_a_database_outage_while_composing_delays_the_message_but_never_fails_it(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    # The speech is made, then the database is gone when the message is stored (the fault run
    # saw it): the decision used to stay "composing" for the ten-minute takeover, or be marked
    # failed for good when the failure could be written. It must get its message once the
    # database answers again.
    messages = service.app.state.message_service  # type: ignore[attr-defined]
    real_store, real_attach = messages._store, messages.relay.attach_message
    away = {"store": 1, "attach": 1}

    async def store_while_away(*args: Any, **kwargs: Any) -> Any:
        if away["store"]:
            away["store"] -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await real_store(*args, **kwargs)

    async def attach_while_away(conn: Any, decision_id: int, message_id: Any, failure: Any) -> Any:
        if failure is not None and away["attach"]:
            away["attach"] -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await real_attach(conn, decision_id, message_id, failure)

    messages._store = store_while_away
    messages.relay.attach_message = attach_while_away
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(now_cap(), alert_id=52))
    events = await decisions_seen(aredis, bus_namespace, lambda es: any(e.message_id for e in es))
    final = latest(events)[events[0].decision_id]
    assert final.message_id is not None and away["store"] == 0
    detail = (await service.get(f"/api/audio/decisions/{final.decision_id}")).json()
    assert detail["message_id"] == final.message_id
    assert "could not be made" not in detail["reason"]
    assert all("could not be made" not in e.reason for e in events)
