"""The scaled topology, run for real: deploy/compose.yml's services as separate processes
(two replicas of alerts-api, station-api, audio-control and ws-broadcaster; one eas-monitor,
pollers, playout worker and dashboard) behind Debian's nginx with deploy/nginx.conf, on this
machine's Redis and PostgreSQL (``eas_station.scaled``, which ``scripts/scaled`` runs).

One station is started for the whole scenario (starting fourteen processes is the slow part):

1. a settings change saved through one station-api replica reaches the other replica and every
   service that follows settings (their heartbeats report the version they applied);
2. alerts from a CAP folder are split by the consumer group between both alerts-api replicas
   and each is stored once, announced once, and decided once;
3. one replica of each scaled service is SIGKILLed while alerts flow and while clients read
   through nginx: no GET answered by nginx fails (it retries another replica), no alert is
   lost or doubled, and ``/ws`` clients on either broadcaster (one of them killed under it)
   get every ``alert.created`` exactly once after resuming.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from eas_schemas.events import HEARTBEAT_TYPE
from eas_schemas.relay_events import RELAY_DECISION_TYPE
from eas_schemas.streams import ALERT_EVENTS, DEAD_LETTER, RELAY_DECISIONS, SERVICE_HEARTBEAT
from eas_station.scaled import ScaledStation
from eas_testkit.scaled import AlertWatcher, once_each, stream_envelopes, write_cap_files
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOUND_S = 90.0  # generous: only what never happens may fail the test
# Faster than production where waiting is the only cost (a reclaimed message waits for the
# min idle time; a heartbeat for its interval); compose.yml's own settings still win.
FAST = {
    "POLLERS_CAP_FOLDER_INTERVAL_S": "1",
    "ALERTS_API_CONSUMER_BATCH": "4",
    "ALERTS_API_CONSUMER_MIN_IDLE_MS": "3000",
    "AUDIO_CONTROL_CONSUMER_MIN_IDLE_MS": "3000",
    "EAS_HEARTBEAT_INTERVAL_S": "1",
}
SETTINGS_FOLLOWERS = ("alerts-api", "audio-control", "pollers")


def identifier_of(subject: str) -> str:
    return subject.split("/")[1]


async def poll(check: Any, what: str, bound_s: float = BOUND_S) -> Any:
    deadline = time.monotonic() + bound_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not within {bound_s:.0f} s (last: {last!r})")


@pytest.fixture
def station(tmp_path: Path, redis_url: str, postgres_admin_url: str) -> Any:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "the scaled topology needs Debian's nginx: run ./scripts/setup.sh"
    cap = tmp_path / "cap"
    cap.mkdir()
    with ScaledStation(
        redis_url=redis_url,
        postgres_admin_url=postgres_admin_url,
        run_dir=tmp_path / "run",
        cap_folder=cap,
        extra_env=FAST,
        nginx=nginx,
    ) as running:
        yield running


async def heartbeat_versions(client: aioredis.Redis, ns: str) -> dict[str, float]:
    """The newest settings version each instance reported in its heartbeat."""
    seen: dict[str, float] = {}
    for envelope in await stream_envelopes(client, SERVICE_HEARTBEAT, ns):
        if envelope.type == HEARTBEAT_TYPE and "settings_version" in envelope.data["figures"]:
            seen[envelope.data["instance"]] = envelope.data["figures"]["settings_version"]
    return seen


async def scenario(station: ScaledStation, cap: Path) -> None:
    signer = TokenSigner((station.keys_dir / "signing.pem").read_text())
    token = signer.mint("scaled-admin", Role.ADMIN, ttl_s=3600)
    headers = {"Authorization": f"Bearer {token}"}
    ns = station.namespace
    bus = aioredis.Redis.from_url(station.redis_url, decode_responses=True)
    ws_origin = station.origin.replace("http://", "ws://")
    watchers = [
        AlertWatcher(f"ws://127.0.0.1:{r.port}/ws", token, name=r.name)
        for r in station.replicas["ws-broadcaster"]
    ] + [AlertWatcher(f"{ws_origin}/ws", token, name="via-nginx")]
    for w in watchers:
        w.start()
    async with httpx.AsyncClient(base_url=station.origin, headers=headers, timeout=30) as http:
        # 1. settings through one station-api replica reach the other and every follower.
        first = station.replica("station-api", 1)
        current = (await http.get(first.url("/api/settings"))).json()
        document = current["settings"]
        document["location"]["same_codes"] = ["039035"]
        saved = await http.put(first.url("/api/settings"), json={"settings": document})
        assert saved.status_code == 200, saved.text
        version = saved.json()["version"]
        other = station.replica("station-api", 2)

        async def other_has_it() -> bool:
            answer = await http.get(other.url("/api/settings"))
            return bool(answer.json()["version"] == version)

        await poll(other_has_it, "the other station-api replica serves the new version")
        followers = [r.name for s in SETTINGS_FOLLOWERS for r in station.replicas[s]]

        async def all_applied() -> bool:
            versions = await heartbeat_versions(bus, ns)
            return all(versions.get(name, 0) >= version for name in followers)

        await poll(all_applied, f"settings v{version} applied by {followers}")

        # 2. ingest split by the consumer group, each alert stored once.
        first_batch = write_cap_files(cap, 40, prefix="one")

        async def stored() -> list[str]:
            answer = await http.get("/api/alerts", params={"limit": 500, "status": "all"})
            assert answer.status_code == 200, answer.text
            return [item["identifier"] for item in answer.json()["items"]]

        await poll(lambda: _has(stored, first_batch), "the first 40 alerts stored")
        created = [
            e for e in await stream_envelopes(bus, ALERT_EVENTS, ns) if e.type == "alert.created"
        ]
        by_source = Counter(e.source for e in created)
        assert {s.split("/")[-1] for s in by_source} == {"alerts-api-1", "alerts-api-2"}, by_source
        assert once_each([identifier_of(e.subject) for e in created]) == {}

        # 3. one replica of each scaled service killed while alerts flow and clients read.
        failures: list[str] = []
        answered = 0
        reading = asyncio.Event()

        async def read_through_nginx() -> None:
            nonlocal answered
            while not reading.is_set():
                try:
                    answer = await http.get("/api/alerts", params={"limit": 5})
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                    answered += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                await asyncio.sleep(0.02)

        readers = [asyncio.create_task(read_through_nginx()) for _ in range(3)]
        second_batch = write_cap_files(cap, 40, prefix="two")
        killed = {}
        for service in ("alerts-api", "station-api", "audio-control", "ws-broadcaster"):
            killed[service] = await asyncio.to_thread(station.kill, service, 1, signal.SIGKILL)
        await asyncio.to_thread(station.wait_ready)
        everything = first_batch + second_batch
        await poll(lambda: _has(stored, everything), "all 80 alerts stored after the kills")
        reading.set()
        await asyncio.gather(*readers)
        assert failures == [], f"{len(failures)} of {answered} reads failed: {failures[:5]}"
        assert answered > 0

        created = [
            e for e in await stream_envelopes(bus, ALERT_EVENTS, ns) if e.type == "alert.created"
        ]
        assert sorted(identifier_of(e.subject) for e in created) == sorted(everything)
        items = await stored()
        assert once_each(items) == {} and sorted(items) == sorted(everything)

        async def decided() -> dict[str, set[str]]:
            per_alert: dict[str, set[str]] = {}
            for e in await stream_envelopes(bus, RELAY_DECISIONS, ns):
                if e.type == RELAY_DECISION_TYPE and e.data.get("alert_identifier"):
                    per_alert.setdefault(e.data["alert_identifier"], set()).add(
                        e.data["decision_id"]
                    )
            return per_alert if set(everything) <= set(per_alert) else {}

        decisions = await poll(decided, "a relay decision for each alert")
        assert {a: len(d) for a, d in decisions.items() if len(d) != 1} == {}

        async def every_watcher_has_all() -> bool:
            return all(set(map(identifier_of, w.created)) >= set(everything) for w in watchers)

        await poll(every_watcher_has_all, "every /ws client saw every alert.created")
        for w in watchers:
            await w.stop()
            assert once_each(list(map(identifier_of, w.created))) == {}, w.name
        # The client on the killed broadcaster lost its socket and resumed (on its restart).
        assert watchers[0].drops >= 1 and watchers[0].connects >= 2
        dead = await stream_envelopes(bus, DEAD_LETTER, ns)
        assert dead == [], [e.data.get("reason") for e in dead]
        for service, pid in killed.items():
            assert station.replica(service, 1).pid not in (None, pid), service
    await bus.aclose()
    print(
        f"\nscaled: first batch split {dict(by_source)}; {answered} reads through nginx during "
        f"the kills, none failed; /ws clients "
        + ", ".join(
            f"{w.name}: {len(w.created)} alert.created, {w.connects} connects" for w in watchers
        )
    )


async def _has(stored: Any, identifiers: list[str]) -> bool:
    return set(identifiers) <= set(await stored())


def test_scaled_topology_splits_survives_kills_and_follows_settings(station: Any) -> None:
    asyncio.run(scenario(station, station.cap_folder))
