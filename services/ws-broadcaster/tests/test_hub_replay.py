"""The hub's resume path on real Redis, with the interleavings forced, not hoped for.

The hub is driven by hand: ``read_once`` is one turn of the reader loop, and ``BarrierHub``
stops every replay after it has read history and before it hands it over, so a test can make
live events arrive exactly while a replay is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from eas_schemas.streams import ALERT_EVENTS, MONITOR_STATUS, StreamSpec
from eas_schemas.ws_protocol import Topic, TopicFilter, TopicRequest
from servicekit.bus import AsyncBus
from ws_broadcaster.hub import Client, Hub
from ws_broadcaster.settings import WsBroadcasterSettings
from ws_broadcaster.testing import publish

pytestmark = pytest.mark.integration

Json = dict[str, Any]


class RecordingClient(Client):
    """Everything the hub hands this client's socket, parsed, in order."""

    transport_name = "test"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.received: list[Json] = []

    def _write(self) -> int:
        frames = [*self.pending, *self.coalesced.values()]
        self.pending.clear()
        self.coalesced.clear()
        self.received += [orjson.loads(f.text) for f in frames]
        return len(frames)

    def _close(self, code: int, reason: str) -> None:
        self.received.append({"type": "closed", "code": code, "reason": reason})

    def events(self) -> list[str]:
        return [m["id"] for m in self.received if m["type"] == "event"]


class BarrierHub(Hub):
    """A hub whose replay waits, once history is read, until the test lets it go on."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.replay_read = asyncio.Event()
        self.release = asyncio.Event()

    async def _history(self, *args: Any) -> Any:
        result = await super()._history(*args)
        self.replay_read.set()
        await self.release.wait()
        return result


@pytest.fixture
async def hub(redis_url: str, bus_namespace: str) -> AsyncIterator[BarrierHub]:
    settings = WsBroadcasterSettings(redis_url=redis_url, bus_namespace=bus_namespace)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    hub = BarrierHub(client, settings, "test-1")
    await hub.pin_positions()
    try:
        yield hub
    finally:
        await client.aclose()


@pytest.fixture
def bus(aredis: aioredis.Redis, bus_namespace: str) -> AsyncBus:
    return AsyncBus(aredis, bus_namespace)


async def read_once(hub: Hub) -> None:
    """One turn of ``run_reader``: read what is new on every stream, fan it out."""
    positions: Any = hub.positions
    reply: Any = await hub.redis.xread(positions, count=hub.settings.read_batch, block=1)
    if reply:
        hub.dispatch(reply)


def alert(n: int, relevant: bool = True) -> Json:
    return {"alert": {"id": n, "relevant": relevant}, "reason": "test"}


async def publish_alerts(bus: AsyncBus, *specs: tuple[int, bool]) -> list[str]:
    return [await publish(bus, ALERT_EVENTS, "alert.created", alert(n, r)) for n, r in specs]


async def start_resume(
    hub: BarrierHub, client: Client, request: TopicRequest
) -> asyncio.Task[None]:
    """Subscribe with ``last_id`` and return once the replay has read history and waits."""
    task = asyncio.create_task(hub.subscribe(client, [request], "r1"))
    await asyncio.wait_for(hub.replay_read.wait(), 10)
    return task


async def test_live_frames_during_a_replay_come_after_it_once_and_in_order(
    hub: BarrierHub, bus: AsyncBus
) -> None:
    history = await publish_alerts(bus, (1, True), (2, True), (3, True))
    await read_once(hub)  # the hub has fanned these out (to nobody) before the client comes
    client = RecordingClient(hub)
    hub.attach(client)

    task = await start_resume(hub, client, TopicRequest(topic=Topic.ALERTS, last_id=history[0]))
    live = await publish_alerts(bus, (4, True), (5, True))
    await read_once(hub)  # arrives while the replay is in flight
    assert client.received == []  # held back: nothing may overtake the replay
    hub.release.set()
    await task

    assert client.events() == [*history[1:], *live]
    subscribed = client.received[-1]
    assert subscribed["type"] == "subscribed"
    assert (subscribed["ref"], subscribed["replayed"]) == ("r1", 2)
    assert subscribed["last_ids"] == {"alert.events": history[-1]}

    # Live again, directly: nothing held is sent twice, nothing new is held.
    after = await publish_alerts(bus, (6, True))
    await read_once(hub)
    assert client.events() == [*history[1:], *live, *after]
    assert client.subs[Topic.ALERTS].held is None


async def test_replay_honours_the_relevant_filter_and_so_do_held_frames(
    hub: BarrierHub, bus: AsyncBus
) -> None:
    start = await publish(bus, ALERT_EVENTS, "alert.created", alert(0))
    history = await publish_alerts(bus, (1, False), (2, True), (3, False), (4, True))
    await read_once(hub)
    client = RecordingClient(hub)
    hub.attach(client)
    request = TopicRequest(topic=Topic.ALERTS, last_id=start, filter=TopicFilter(relevant=True))

    task = await start_resume(hub, client, request)
    live = await publish_alerts(bus, (5, False), (6, True))
    await read_once(hub)
    hub.release.set()
    await task

    assert client.events() == [history[1], history[3], live[1]]
    assert client.received[-1]["replayed"] == 2


async def test_replay_honours_the_types_filter(hub: BarrierHub, bus: AsyncBus) -> None:
    start = await publish(bus, ALERT_EVENTS, "alert.created", alert(0))
    created = await publish(bus, ALERT_EVENTS, "alert.created", alert(1))
    await publish(bus, ALERT_EVENTS, "alert.updated", alert(1))
    expired = await publish(bus, ALERT_EVENTS, "alert.expired", alert(1))
    await read_once(hub)
    client = RecordingClient(hub)
    hub.attach(client)
    request = TopicRequest(
        topic=Topic.ALERTS,
        last_id=start,
        filter=TopicFilter(types=["alert.created", "alert.expired"]),
    )
    hub.release.set()  # no live traffic in this one
    await hub.subscribe(client, [request], None)
    assert client.events() == [created, expired]


async def test_replay_honours_the_inputs_filter(hub: BarrierHub, bus: AsyncBus) -> None:
    def status(name: str) -> Json:
        return {"input": name, "state": "running"}

    async def pub(spec: StreamSpec, name: str) -> str:
        return await publish(bus, spec, "monitor.status", status(name))

    start = await pub(MONITOR_STATUS, "fm1")
    fm1 = await pub(MONITOR_STATUS, "fm1")
    fm2 = await pub(MONITOR_STATUS, "fm2")
    fm3 = await pub(MONITOR_STATUS, "fm3")
    await read_once(hub)
    client = RecordingClient(hub)
    hub.attach(client)
    request = TopicRequest(
        topic=Topic.MONITOR, last_id=start, filter=TopicFilter(inputs=["fm1", "fm3"])
    )
    hub.release.set()
    await hub.subscribe(client, [request], None)
    assert client.events() == [fm1, fm3]
    assert fm2 not in client.events()


async def test_a_client_gone_during_the_replay_gets_nothing_held(
    hub: BarrierHub, bus: AsyncBus
) -> None:
    history = await publish_alerts(bus, (1, True), (2, True))
    await read_once(hub)
    client = RecordingClient(hub)
    hub.attach(client)
    task = await start_resume(hub, client, TopicRequest(topic=Topic.ALERTS, last_id=history[0]))
    await publish_alerts(bus, (3, True))
    await read_once(hub)
    client.close(1001, "going away")
    hub.release.set()
    await task
    assert client.events() == []
    assert client not in hub.subscribers[Topic.ALERTS]
