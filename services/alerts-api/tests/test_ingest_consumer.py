"""alerts.ingested through the running consumer group into PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from alerts_api.tables import alerts
from eas_schemas.envelope import decode_entry, encode_entry
from eas_testkit.factories import ingested_envelope, make_alert
from servicekit.bus import stream_key


async def _count(service) -> int:
    async with service.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(alerts))).scalar_one())


async def _until(predicate, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_duplicates_and_poison_on_the_bus(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    key = stream_key("alerts.ingested", bus_namespace)
    first = make_alert()
    entry = encode_entry(ingested_envelope(first))
    await aredis.xadd(key, entry)
    await aredis.xadd(key, entry)  # the same event delivered twice
    await aredis.xadd(key, {"type": "alerts.ingested", "envelope": "{not json"})
    bad = encode_entry(ingested_envelope(first))
    bad["envelope"] = bad["envelope"].replace('"msg_type":"Alert"', '"msg_type":"Bogus"')
    await aredis.xadd(key, bad)
    second = make_alert()
    await aredis.xadd(key, encode_entry(ingested_envelope(second)))

    dlq = stream_key("bus.deadletter", bus_namespace)

    async def settled() -> bool:
        consumer = client.app.state.consumer
        return (
            await _count(service) == 2
            and await aredis.xlen(dlq) == 2
            and await consumer.pending_count() == 0
        )

    await _until(settled)
    letters = [decode_entry(f).data["reason"] for _, f in await aredis.xrange(dlq)]
    assert letters[0].startswith("not an event envelope")
    assert letters[1].startswith("invalid alerts.ingested payload: alert.msg_type")
    created = [
        decode_entry(f).data["alert"]["identifier"]
        for _, f in await aredis.xrange(stream_key("alert.events", bus_namespace))
    ]
    assert sorted(created) == sorted([first.identifier, second.identifier])
