"""Batch ingest: chains inside one batch, duplicates, and referrers racing their targets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from alerts_api.service import AlertService
from alerts_api.tables import alert_references, alerts
from eas_schemas.cap import CapMsgType
from eas_testkit.factories import ingested, make_alert
from servicekit.db import make_engine


async def _states(service: AlertService) -> dict[str, str]:
    async with service.engine.connect() as conn:
        rows = (await conn.execute(select(alerts.c.identifier, alerts.c.state))).all()
    return {r.identifier: r.state for r in rows}


async def test_alert_update_and_cancel_in_one_batch(client):
    service = client.app.state.alert_service
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    first = make_alert(sent=t0)
    update = make_alert(
        sent=t0 + timedelta(minutes=1), msg_type=CapMsgType.UPDATE, references=[first]
    )
    again = make_alert(
        sent=t0 + timedelta(minutes=2), msg_type=CapMsgType.UPDATE, references=[update]
    )
    cancel = make_alert(
        sent=t0 + timedelta(minutes=3), msg_type=CapMsgType.CANCEL, references=[again]
    )
    batch = [ingested(a) for a in (first, update, again, cancel)] + [ingested(first)]
    results = await service.ingest_batch(batch)
    assert [r.duplicate for r in results] == [False, False, False, False, True]
    states = await _states(service)
    assert states[first.identifier] == "updated"
    assert states[update.identifier] == "updated"
    assert states[again.identifier] == "cancelled"
    assert states[cancel.identifier] == "cancelled"


async def test_referrer_and_target_racing_on_two_instances_always_link(client, settings):
    """Each pair (Alert, Cancel) goes to two service instances at the same moment."""
    one = client.app.state.alert_service
    engine = make_engine(settings.database_url)
    two = AlertService(engine, None, "alerts-api/second", ["039035"], [])
    try:
        pairs = []
        for n in range(40):
            target = make_alert(sent=datetime.now(UTC) - timedelta(minutes=10, seconds=n))
            cancel = make_alert(msg_type=CapMsgType.CANCEL, references=[target])
            pairs.append((target, cancel))
        for target, cancel in pairs:
            await asyncio.gather(one.ingest(ingested(target)), two.ingest(ingested(cancel)))
        states = await _states(one)
        assert all(states[t.identifier] == "cancelled" for t, _ in pairs), states
        async with one.engine.connect() as conn:
            dangling = (
                await conn.execute(
                    select(func.count())
                    .select_from(alert_references)
                    .where(alert_references.c.ref_alert_id.is_(None))
                )
            ).scalar_one()
        assert dangling == 0
    finally:
        await engine.dispose()


async def test_sweep_links_a_reference_left_dangling(client):
    service = client.app.state.alert_service
    target = make_alert(sent=datetime.now(UTC) - timedelta(minutes=3))
    cancel = make_alert(msg_type=CapMsgType.CANCEL, references=[target])
    await service.ingest(ingested(target))
    await service.ingest(ingested(cancel))
    # Break the link by hand, as an older version or a restore could leave it.
    async with service.engine.begin() as conn:
        await conn.execute(alert_references.update().values(ref_alert_id=None))
        await conn.execute(
            alerts.update().where(alerts.c.identifier == target.identifier).values(state="active")
        )
    assert await service.resolve_dangling() == 1
    assert (await _states(service))[target.identifier] == "cancelled"
    assert await service.resolve_dangling() == 0
