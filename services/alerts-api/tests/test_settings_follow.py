"""alerts-api follows the station's settings: new station codes recompute the relevance of
active alerts (announced as alert.updated), once per version, leaving ended alerts alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis

from eas_schemas.envelope import decode_entry
from eas_schemas.station_settings import (
    CURRENT_SETTINGS_KEY,
    StationSettings,
)
from eas_schemas.streams import ALERT_EVENTS, SERVICE_HEARTBEAT, SETTINGS_CHANGED
from eas_testkit.factories import (
    current_settings_body,
    ingested,
    make_alert,
    settings_changed_envelope,
)
from servicekit.bus import AsyncBus, stream_key


async def save(client: aioredis.Redis, ns: str, version: int, settings: StationSettings) -> None:
    """What station-api does after a commit: announce, then write the current document."""
    await AsyncBus(client, ns).publish(SETTINGS_CHANGED, settings_changed_envelope(version))
    body = current_settings_body(version, settings)
    await client.set(stream_key(CURRENT_SETTINGS_KEY, ns), body)


def station(same: list[str], ugc: list[str] | None = None, name: str = "EAS Station"):
    settings = StationSettings()
    settings.location.same_codes = same
    settings.location.ugc_codes = ugc or []
    settings.identity.name = name
    return settings


async def events(aredis: aioredis.Redis, ns: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await aredis.xrange(stream_key(ALERT_EVENTS, ns))
    return [(env.type, env.data) for env in (decode_entry(f) for _, f in rows)]


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


async def test_new_station_codes_make_an_active_alert_relevant(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    follower = client.app.state.settings_follower
    # Environment codes (conftest): 039035 / OHZ014. These alerts are for Lucas county.
    active = await service.ingest(ingested(make_alert(same_codes=("039095",), ugc_codes=())))
    ended = await service.ingest(
        ingested(
            make_alert(
                same_codes=("039095",),
                ugc_codes=(),
                sent=datetime.now(UTC) - timedelta(hours=3),
                expires_in=timedelta(hours=1),
            )
        )
    )
    before = await events(aredis, bus_namespace)
    assert [t for t, _ in before] == ["alert.created", "alert.created"]
    assert all(data["alert"]["relevant"] is False for _, data in before)

    await save(aredis, bus_namespace, 1, station(["039095"]))

    async def updated() -> list[dict[str, Any]]:
        return [d for t, d in await events(aredis, bus_namespace) if t == "alert.updated"]

    (event,) = await eventually(updated)
    assert event["alert"]["id"] == active.alert_id
    assert event["alert"]["relevant"] is True and event["alert"]["state"] == "active"
    assert event["previous_state"] == "active"
    assert event["reason"].startswith("relevance changed: station codes now SAME 039095")

    # The event leaves from inside the settings callback; the follower records the version
    # when the callback returns, a moment later: wait for it rather than race it.
    async def at_one() -> bool:
        return follower.applied_version == 1

    await eventually(at_one)
    assert service.station_same == ["039095"] and service.station_ugc == []

    detail = (await client.get(f"/api/alerts/{active.alert_id}", headers=auth(client))).json()
    assert detail["alert"]["relevant"] is True
    assert detail["alert"]["relevance_reason"] == "SAME exact: alert 039095 ~ station 039095"
    assert detail["history"][-1]["reason"] == event["reason"]
    listed = (await client.get("/api/alerts?relevant=true", headers=auth(client))).json()
    assert [i["id"] for i in listed["items"]] == [active.alert_id]
    # The expired alert keeps the decision it had when it ended.
    old = (await client.get(f"/api/alerts/{ended.alert_id}", headers=auth(client))).json()
    assert old["alert"]["state"] == "expired" and old["alert"]["relevant"] is False

    # New alerts are decided with the new codes from now on.
    later = await service.ingest(ingested(make_alert(same_codes=("039095",), ugc_codes=())))
    created = [d for t, d in await events(aredis, bus_namespace) if t == "alert.created"]
    assert created[-1]["alert"]["id"] == later.alert_id and created[-1]["alert"]["relevant"]


async def test_repeated_or_unrelated_versions_announce_nothing(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    follower = client.app.state.settings_follower
    await service.ingest(ingested(make_alert(same_codes=("039095",), ugc_codes=())))
    await save(aredis, bus_namespace, 1, station(["039095"]))
    await eventually(lambda: _count(aredis, bus_namespace, "alert.updated", 1))

    await save(aredis, bus_namespace, 1, station(["039095"]))  # the same version again
    await save(aredis, bus_namespace, 2, station(["039095"], name="Renamed"))  # codes unchanged

    async def at_two() -> bool:
        return follower.applied_version == 2

    await eventually(at_two)
    # Version 2 was applied after its callback returned, and its events left with its commit;
    # a flush with no grace publishes anything still waiting, so the count below is final.
    await service.outbox.flush(grace_s=0)
    assert await _count(aredis, bus_namespace, "alert.updated", 1)
    # Recomputing again by hand under the same codes changes nothing either.
    assert await service.recompute_relevance() == 0

    # Clearing the document's codes hands the decision back to the environment's codes.
    await save(aredis, bus_namespace, 3, station([]))

    async def cleared() -> list[dict[str, Any]]:
        found = [d for t, d in await events(aredis, bus_namespace) if t == "alert.updated"]
        return found if len(found) == 2 else []

    last = (await eventually(cleared))[-1]
    assert last["alert"]["relevant"] is False
    assert "SAME 039035; UGC OHZ014" in last["reason"]


async def test_heartbeat_reports_the_applied_version(client, aredis, bus_namespace):
    await save(aredis, bus_namespace, 4, station(["039095"]))

    async def beat() -> bool:
        rows = await aredis.xrange(stream_key(SERVICE_HEARTBEAT, bus_namespace))
        figures = [decode_entry(f).data["figures"] for _, f in rows]
        return any(f.get("settings_version") == 4 for f in figures)

    await eventually(beat)


async def _count(aredis: aioredis.Redis, ns: str, etype: str, n: int) -> bool:
    return sum(1 for t, _ in await events(aredis, ns) if t == etype) == n
