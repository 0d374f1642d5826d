"""Fleet view from service.heartbeat: down after missed beats, system.alarm down/up, rebuild."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from asgi_lifespan import LifespanManager

from eas_schemas.envelope import decode_entry
from eas_schemas.streams import SERVICE_HEARTBEAT, SYSTEM_ALARMS
from eas_schemas.system_events import SYSTEM_ALARM_TYPE, SystemAlarm
from servicekit.auth.permissions import Role
from servicekit.bus import AsyncBus, stream_key
from servicekit.heartbeat import heartbeat_envelope
from servicekit.tail import read_all
from station_api.app import create_app
from station_api.services.fleet import FleetMonitor


async def beat(bus: AsyncBus, instance: str, interval_s: float = 0.2, **kw) -> None:
    started = kw.pop("started", datetime.now(UTC) - timedelta(seconds=30))
    await bus.publish(
        SERVICE_HEARTBEAT,
        heartbeat_envelope(
            kw.pop("service", "alerts-api"),
            instance,
            "1.2.3",
            started,
            kw.pop("ready", True),
            interval_s,
            kw.pop("figures", {"lag": 0.0, "pending": 2.0, "dead_lettered": 0.0}),
        ),
    )


async def alarms(aredis, namespace) -> list[SystemAlarm]:
    entries = await read_all(aredis, stream_key(SYSTEM_ALARMS, namespace))
    out = []
    for _, fields in entries:
        envelope = decode_entry(fields)
        assert envelope.type == SYSTEM_ALARM_TYPE
        out.append(SystemAlarm.model_validate(envelope.data))
    return out


async def fleet(client, session) -> dict:
    answer = await client.get("/api/system/fleet", headers=session.headers)
    assert answer.status_code == 200
    return answer.json()


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_instance_marked_down_after_missed_beats_and_back_up(
    client, viewer, aredis, bus_namespace
):
    bus = AsyncBus(aredis, bus_namespace)
    for _ in range(3):
        await beat(bus, "host-a-1")
        await asyncio.sleep(0.1)

    async def listed() -> bool:
        view = await fleet(client, viewer)
        return any(i["instance"] == "host-a-1" for i in view["instances"])

    await wait_for(listed)
    view = await fleet(client, viewer)
    inst = next(i for i in view["instances"] if i["instance"] == "host-a-1")
    assert inst["status"] == "up" and inst["version"] == "1.2.3"
    assert inst["figures"] == {"lag": 0.0, "pending": 2.0, "dead_lettered": 0.0}
    assert inst["uptime_s"] >= 30 and inst["interval_s"] == 0.2
    assert await alarms(aredis, bus_namespace) == []

    # Silence for more than 3 intervals (0.6 s): down, and one alarm.
    async def down() -> bool:
        view = await fleet(client, viewer)
        return any(i["instance"] == "host-a-1" and i["status"] == "down" for i in view["instances"])

    await wait_for(down)
    # Still one alarm however long it stays down. The barrier, instead of a sleep: a marker
    # instance that beats once now and goes silent. Its own down alarm can only be published
    # by check passes that run after it, while host-a-1 is still down, so once it is on the
    # stream those passes have happened and any repeat for host-a-1 would be there too.
    await beat(bus, "host-a-marker", interval_s=0.05)

    async def marker_announced() -> bool:
        return any(a.instance == "host-a-marker" for a in await alarms(aredis, bus_namespace))

    await wait_for(marker_announced)
    got = [a for a in await alarms(aredis, bus_namespace) if a.instance == "host-a-1"]
    assert [(a.state, a.service, a.instance) for a in got] == [("down", "alerts-api", "host-a-1")]
    assert got[0].silent_for_s > 0.6 and got[0].version == "1.2.3"
    view = await fleet(client, viewer)
    assert view["down"] == 2 and view["down"] + view["up"] + view["not_ready"] == view["total"]

    await beat(bus, "host-a-1")

    async def of_host_a() -> list[SystemAlarm]:
        return [a for a in await alarms(aredis, bus_namespace) if a.instance == "host-a-1"]

    async def two_alarms() -> bool:
        return len(await of_host_a()) == 2

    await wait_for(two_alarms)
    got = await of_host_a()
    assert got[1].state == "up" and got[1].instance == "host-a-1"
    inst = next(
        i for i in (await fleet(client, viewer))["instances"] if i["instance"] == "host-a-1"
    )
    assert inst["status"] == "up"


async def test_not_ready_instance_is_shown_as_such(client, viewer, aredis, bus_namespace):
    bus = AsyncBus(aredis, bus_namespace)
    await beat(bus, "host-b-1", interval_s=5.0, ready=False, service="pollers")

    async def shown() -> bool:
        view = await fleet(client, viewer)
        return any(i["instance"] == "host-b-1" for i in view["instances"])

    await wait_for(shown)
    inst = next(
        i for i in (await fleet(client, viewer))["instances"] if i["instance"] == "host-b-1"
    )
    assert inst["status"] == "not-ready" and inst["service"] == "pollers"


async def test_state_is_rebuilt_from_the_stream_at_start(settings, aredis, bus_namespace):
    bus = AsyncBus(aredis, bus_namespace)
    # Before station-api starts: one live instance, one that stopped long ago.
    old = datetime.now(UTC) - timedelta(seconds=120)
    env = heartbeat_envelope("eas-monitor", "host-c-old", "0.9", old, True, 1.0, {})
    await bus.publish(SERVICE_HEARTBEAT, env.model_copy(update={"time": old}))
    await beat(bus, "host-c-live", interval_s=10.0)

    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
            await asyncio.wait_for(app.state.fleet.rebuilt.wait(), 5)
            token = app.state.signer.mint("v", Role.VIEWER)
            view = (
                await http.get("/api/system/fleet", headers={"Authorization": f"Bearer {token}"})
            ).json()
    status = {i["instance"]: i["status"] for i in view["instances"]}
    assert status["host-c-live"] == "up"
    assert status["host-c-old"] == "down"
    assert view["rebuilt"] is True
    # An outage that began before anyone watched is shown, not announced.
    assert await alarms(aredis, bus_namespace) == []


async def test_replicas_announce_a_transition_once(aredis, bus_namespace):
    bus = AsyncBus(aredis, bus_namespace)
    monitors = [
        FleetMonitor(aredis, bus, f"station-api/r{i}", check_interval_s=0.05) for i in range(2)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(m.run(stop)) for m in monitors]
    try:
        for m in monitors:
            await asyncio.wait_for(m.rebuilt.wait(), 5)
        await beat(bus, "host-d-1", interval_s=0.1)

        async def both_down() -> bool:
            return all(
                "alerts-api/host-d-1" in m.instances and m.instances["alerts-api/host-d-1"].down
                for m in monitors
            )

        await wait_for(both_down)
        # A barrier instead of a sleep: a marker that beats once, after host-d-1 is down in
        # both. Each replica marks it down in a later pass than the one that queued (and then
        # published or deduplicated) host-d-1's alarm, so once both see the marker down, any
        # second announcement of host-d-1 would already be on the stream.
        await beat(bus, "host-d-marker", interval_s=0.05)

        async def marker_down() -> bool:
            return all(
                "alerts-api/host-d-marker" in m.instances
                and m.instances["alerts-api/host-d-marker"].down
                for m in monitors
            )

        await wait_for(marker_down)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    got = await alarms(aredis, bus_namespace)
    assert [(a.state, a.instance) for a in got] == [("down", "host-d-1"), ("down", "host-d-marker")]
    assert sum(m.stats.alarms_published for m in monitors) == 2


async def test_malformed_heartbeats_are_skipped(client, viewer, aredis, bus_namespace):
    key = stream_key(SERVICE_HEARTBEAT, bus_namespace)
    await aredis.xadd(key, {"type": "service.heartbeat", "id": "x", "envelope": "{not json"})
    await beat(AsyncBus(aredis, bus_namespace), "host-e-1", interval_s=5.0)

    async def shown() -> bool:
        view = await fleet(client, viewer)
        return any(i["instance"] == "host-e-1" for i in view["instances"])

    await wait_for(shown)
    assert client.app.state.fleet.stats.malformed == 1
