"""The shared outbox: events are announced after the commit, or later by the flusher, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData

from eas_schemas.envelope import EventEnvelope, decode_entry
from eas_schemas.streams import ALERT_EVENTS, SETTINGS_CHANGED
from servicekit.bus import AsyncBus, stream_key
from servicekit.db import make_engine
from servicekit.outbox import Outbox, outbox_table

pytestmark = pytest.mark.integration


class _Broken:
    async def publish_entries(self, entries):
        raise ConnectionError("redis away")


@pytest.fixture
async def setup(database_url, aredis, bus_namespace):
    metadata = MetaData()
    table = outbox_table(metadata, "test_outbox")
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine, table, AsyncBus(aredis, bus_namespace)
    await engine.dispose()


def _event(n: int) -> EventEnvelope[dict[str, int]]:
    return EventEnvelope[dict[str, int]](type="test.event", source="test/1", data={"n": n})


async def _count(engine, table) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(table.select())).all())


async def test_publish_after_commit_writes_the_wire_entry_and_deletes_the_rows(
    setup, aredis, bus_namespace
):
    engine, table, bus = setup
    outbox = Outbox(engine, bus, table)
    events = [_event(1), _event(2)]
    async with engine.begin() as conn:
        pending = await outbox.add(conn, [(ALERT_EVENTS, e) for e in events])
    assert await _count(engine, table) == 2
    await outbox.publish(pending)
    entries = await aredis.xrange(stream_key(ALERT_EVENTS, bus_namespace))
    assert [f["id"] for _, f in entries] == [e.id for e in events]
    assert [decode_entry(f).data for _, f in entries] == [{"n": 1}, {"n": 2}]
    assert entries[0][1]["type"] == "test.event"
    assert await _count(engine, table) == 0
    assert outbox.published == 2 and outbox.failures == 0


async def test_rolled_back_change_announces_nothing(setup, aredis, bus_namespace):
    engine, table, bus = setup
    outbox = Outbox(engine, bus, table)
    with pytest.raises(RuntimeError, match="boom"):
        async with engine.begin() as conn:
            await outbox.add(conn, [(ALERT_EVENTS, _event(1))])
            raise RuntimeError("boom")
    assert await _count(engine, table) == 0
    assert await outbox.flush(grace_s=0) == 0
    assert await aredis.xlen(stream_key(ALERT_EVENTS, bus_namespace)) == 0


async def test_failed_publish_waits_for_the_flusher_which_keeps_the_envelope(
    setup, aredis, bus_namespace
):
    engine, table, bus = setup
    outbox = Outbox(engine, _Broken(), table)  # type: ignore[arg-type]
    event = _event(7)
    async with engine.begin() as conn:
        pending = await outbox.add(conn, [(SETTINGS_CHANGED, event)])
    await outbox.publish(pending)
    assert outbox.failures == 1 and await _count(engine, table) == 1
    # Still broken: the flusher fails too and keeps the row.
    assert await outbox.flush(grace_s=0) == 0 and await _count(engine, table) == 1
    outbox.bus = bus
    # Inside the grace period the row belongs to its request: not taken.
    assert await outbox.flush(grace_s=3600) == 0
    assert await outbox.flush(grace_s=0) == 1
    entries = await aredis.xrange(stream_key(SETTINGS_CHANGED, bus_namespace))
    assert len(entries) == 1
    assert decode_entry(entries[0][1]) == EventEnvelope[dict[str, int]].model_validate_json(
        event.model_dump_json()
    )
    assert entries[0][1]["id"] == event.id
    assert await _count(engine, table) == 0


async def test_a_process_killed_after_publishing_does_not_announce_twice(
    setup, aredis, bus_namespace
):
    """kill -9 between the XADD and the delete: the rows stay, their events are on the bus.
    The next flush (another process) finds them there and only deletes the rows."""
    engine, table, bus = setup
    outbox = Outbox(engine, bus, table)
    key = stream_key(ALERT_EVENTS, bus_namespace)
    await aredis.xadd(key, {"type": "other", "id": "unrelated", "envelope": "{}"})
    sent, kept = _event(1), _event(2)
    async with engine.begin() as conn:
        pending = await outbox.add(conn, [(ALERT_EVENTS, sent), (ALERT_EVENTS, kept)])
    # What publish() does before it dies: the first event reached the stream.
    await bus.publish_entries([pending.entries[0]])
    assert await _count(engine, table) == 2
    after = Outbox(engine, bus, table)
    assert await after.flush(grace_s=0) == 1
    ids = [f["id"] for _, f in await aredis.xrange(key)]
    assert ids == ["unrelated", sent.id, kept.id]
    assert await _count(engine, table) == 0


async def test_two_flushers_never_send_the_same_row(setup, aredis, bus_namespace):
    engine, table, bus = setup
    writer = Outbox(engine, _Broken(), table)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await writer.add(conn, [(ALERT_EVENTS, _event(n)) for n in range(300)])
    a = Outbox(engine, bus, table, batch=50)
    b = Outbox(engine, bus, table, batch=50)

    async def drain(outbox: Outbox) -> int:
        sent = 0
        while (n := await outbox.flush(grace_s=0)) or await _count(engine, table):
            sent += n
            await asyncio.sleep(0)
        return sent

    sent = await asyncio.gather(drain(a), drain(b))
    ids = [f["id"] for _, f in await aredis.xrange(stream_key(ALERT_EVENTS, bus_namespace))]
    assert sum(sent) == 300 and len(ids) == 300 and len(set(ids)) == 300


async def test_unpublishable_rows_are_dropped_and_do_not_block_the_rest(
    setup, aredis, bus_namespace
):
    engine, table, bus = setup
    old = datetime.now(UTC) - timedelta(minutes=1)
    async with engine.begin() as conn:
        await conn.execute(
            table.insert().values(stream="no.such.stream", envelope="{}", created_at=old)
        )
        await conn.execute(
            table.insert().values(stream=ALERT_EVENTS.name, envelope="not json", created_at=old)
        )
    async with engine.begin() as conn:
        await Outbox(engine, None, table).add(conn, [(ALERT_EVENTS, _event(5))])
    outbox = Outbox(engine, bus, table)
    assert await outbox.flush(grace_s=0) == 1
    assert await _count(engine, table) == 0
    entries = await aredis.xrange(stream_key(ALERT_EVENTS, bus_namespace))
    assert [decode_entry(f).data for _, f in entries] == [{"n": 5}]
