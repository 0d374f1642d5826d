"""The alert store on real PostgreSQL and Redis: idempotency, chains, expiry, events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from eas_schemas.cap import CapMsgType
from eas_schemas.envelope import decode_entry
from eas_testkit.factories import ingested, make_alert
from servicekit.bus import stream_key


async def _events(aredis, namespace: str) -> list[tuple[str, dict]]:
    rows = await aredis.xrange(stream_key("alert.events", namespace))
    out = []
    for _id, fields in rows:
        env = decode_entry(fields)
        out.append((env.type, env.data))
    return out


async def test_same_alert_twice_stores_once_and_announces_once(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    alert = make_alert()
    first = await service.ingest(ingested(alert))
    second = await service.ingest(ingested(alert))
    assert first.alert_id is not None and not first.duplicate
    assert second.duplicate and second.alert_id is None
    events = await _events(aredis, bus_namespace)
    assert [t for t, _ in events] == ["alert.created"]
    created = events[0][1]["alert"]
    assert created["relevant"] is True
    assert created["relevance_reason"].startswith("SAME exact")
    assert created["state"] == "active"


async def test_update_then_cancel_chain(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    original = make_alert(sent=t0)
    update = make_alert(
        sent=t0 + timedelta(minutes=2), msg_type=CapMsgType.UPDATE, references=[original]
    )
    cancel = make_alert(
        sent=t0 + timedelta(minutes=4), msg_type=CapMsgType.CANCEL, references=[update]
    )
    ids = [(await service.ingest(ingested(a))).alert_id for a in (original, update, cancel)]
    types = [t for t, _ in await _events(aredis, bus_namespace)]
    assert types == [
        "alert.created",
        "alert.created",
        "alert.updated",
        "alert.created",
        "alert.cancelled",
    ]
    detail = (await client.get(f"/api/alerts/{ids[0]}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "updated"
    assert [r["id"] for r in detail["referenced_by"]] == [ids[1]]
    assert [h["to_state"] for h in detail["history"]] == ["active", "updated"]
    second = (await client.get(f"/api/alerts/{ids[1]}", headers=_auth(client))).json()
    assert second["alert"]["state"] == "cancelled"
    assert second["references"][0]["alert_id"] == ids[0]


async def test_cancel_arriving_before_its_alert_still_cancels_it(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    original = make_alert(sent=datetime.now(UTC) - timedelta(minutes=5))
    cancel = make_alert(msg_type=CapMsgType.CANCEL, references=[original])
    await service.ingest(ingested(cancel))
    result = await service.ingest(ingested(original))
    types = [t for t, _ in await _events(aredis, bus_namespace)]
    assert types == ["alert.created", "alert.created", "alert.cancelled"]
    detail = (await client.get(f"/api/alerts/{result.alert_id}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "cancelled"


async def test_expiry_is_detected_and_announced(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    alert = make_alert(
        sent=datetime.now(UTC) - timedelta(seconds=30), expires_in=timedelta(seconds=31)
    )
    result = await service.ingest(ingested(alert))
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        types = [t for t, _ in await _events(aredis, bus_namespace)]
        if "alert.expired" in types:
            break
        await asyncio.sleep(0.1)
    assert types == ["alert.created", "alert.expired"]
    detail = (await client.get(f"/api/alerts/{result.alert_id}", headers=_auth(client))).json()
    assert detail["alert"]["state"] == "expired"


async def test_statewide_and_national_codes_are_relevant(client):
    service = client.app.state.alert_service
    statewide = await service.ingest(ingested(make_alert(same_codes=("039000",), ugc_codes=())))
    national = await service.ingest(
        ingested(make_alert(same_codes=("000000",), ugc_codes=(), event="Required Weekly Test"))
    )
    elsewhere = await service.ingest(
        ingested(make_alert(same_codes=("048201",), ugc_codes=("TXC201",)))
    )
    by_zone = await service.ingest(ingested(make_alert(same_codes=(), ugc_codes=("OHZ014",))))
    got = {}
    for name, res in (
        ("state", statewide),
        ("nation", national),
        ("else", elsewhere),
        ("zone", by_zone),
    ):
        detail = (await client.get(f"/api/alerts/{res.alert_id}", headers=_auth(client))).json()
        got[name] = (detail["alert"]["relevant"], detail["alert"]["relevance_reason"])
    assert got["state"] == (True, "SAME statewide: alert 039000 ~ station 039035")
    assert got["nation"] == (True, "SAME national: alert 000000 ~ station 039035")
    assert got["else"][0] is False
    assert got["zone"] == (True, "UGC: alert OHZ014 ~ station OHZ014")


async def test_events_survive_a_failed_publish_through_the_outbox(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    real_bus = service.outbox.bus

    class BrokenBus:
        async def publish_entries(self, entries):
            raise ConnectionError("redis down")

    service.outbox.bus = BrokenBus()
    try:
        await service.ingest(ingested(make_alert()))
    finally:
        service.outbox.bus = real_bus
    assert await _events(aredis, bus_namespace) == []
    sent = await service.outbox.flush(grace_s=0)
    assert sent == 1
    assert [t for t, _ in await _events(aredis, bus_namespace)] == ["alert.created"]


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]
