"""Faults across the whole pipeline, on the scaled topology (``eas_station.scaled``).

While alerts flow from a CAP folder (pollers -> alerts-api x2 -> audio-control x2 -> playout,
and ``/ws`` clients on both broadcasters), each service in turn is SIGKILLed, Redis is
restarted (append-only, as compose runs it) and PostgreSQL is stopped for a while. Redis and
PostgreSQL are private to the run (a ``redis-server`` on its own port, a throwaway cluster):
the machine's shared servers are never touched. The run then reports what the streams and the
store say: alerts stored (once each), decisions (once each), airings (never twice), what each
``/ws`` client saw (every ``alert.created`` once), dead letters with reasons, how long any
consumer stage stayed behind, and what reads answered during the database outage.

``tests/integration/test_scaled_faults.py`` runs the short variant; ``bench/scaled_faults``
the long one (10,000 alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from eas_schemas.streams import ALERT_EVENTS, ALERTS_INGESTED, StreamSpec
from eas_station.scaled import ScaledStation
from eas_testkit import counts
from eas_testkit.counts import identifier_of
from eas_testkit.scaled import AlertWatcher, once_each, write_cap_files
from eas_testkit.servers import LocalPostgres
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner
from servicekit.bus import stream_key
from servicekit.embedded import EmbeddedRedis

log = logging.getLogger(__name__)

# Only waiting gets faster; compose.yml's own settings still win over these.
FAST = {
    "POLLERS_CAP_FOLDER_INTERVAL_S": "1",
    "ALERTS_API_CONSUMER_MIN_IDLE_MS": "5000",
    "AUDIO_CONTROL_CONSUMER_MIN_IDLE_MS": "5000",
    "EAS_HEARTBEAT_INTERVAL_S": "1",
}
STAGES: tuple[StreamSpec, ...] = (ALERTS_INGESTED, ALERT_EVENTS)
OTHER_COUNTY = ("039093", "OHC093")  # Lorain: stored and decided (ignored), never aired


@dataclass
class FaultPlan:
    alerts: int = 60
    pg_outage_s: float = 8.0
    aired_every: int = 20  # every n-th alert is for the station's county and relayed
    settle_bound_s: float = 240.0
    services: tuple[str, ...] | None = None  # default: every long-running service


@dataclass
class FaultReport:
    expected: int = 0
    stored: int = 0
    stored_twice: dict[str, int] = field(default_factory=dict)
    created_events: int = 0
    created_twice: dict[str, int] = field(default_factory=dict)
    decided: int = 0
    decided_twice: dict[str, int] = field(default_factory=dict)
    relayed_expected: int = 0
    aired: int = 0
    aired_twice: dict[str, int] = field(default_factory=dict)
    ws: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # saw, dupes, connects
    ws_missing: dict[str, int] = field(default_factory=dict)
    dead_letters: list[str] = field(default_factory=list)
    longest_behind_s: dict[str, float] = field(default_factory=dict)
    outage_reads: Counter[str] = field(default_factory=Counter)
    outage_slowest_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    # The settle conditions not reached within the bound, with the seconds waited for each.
    unsettled: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        ws = ", ".join(
            f"{n}: {s} seen, {d} twice, {c} connects" for n, (s, d, c) in self.ws.items()
        )
        behind = ", ".join(f"{k} {v:.1f}s" for k, v in self.longest_behind_s.items())
        reads = ", ".join(f"{k} x{v}" for k, v in self.outage_reads.items())
        return [
            f"faults: {'; '.join(self.faults)}",
            f"alerts stored: {self.stored} of {self.expected} "
            f"(twice: {len(self.stored_twice)}); alert.created events: {self.created_events} "
            f"(twice: {len(self.created_twice)})",
            f"decisions: {self.decided} alerts decided (more than one decision: "
            f"{len(self.decided_twice)})",
            f"aired: {self.aired} of {self.relayed_expected} relayed (aired twice: "
            f"{len(self.aired_twice)})",
            f"/ws clients that resumed: {ws}; missing: {self.ws_missing or 'none'}",
            f"dead letters: {len(self.dead_letters)} {self.dead_letters[:5] or ''}",
            f"longest time a stage stayed behind: {behind}",
            f"reads during the PostgreSQL outage: {reads} (slowest answer "
            f"{self.outage_slowest_s:.2f}s)",
            f"not settled within the bound: {', '.join(self.unsettled) or 'none'}",
            f"elapsed: {self.elapsed_s:.0f}s",
        ]


class LagSampler:
    """How long each consumer group stayed behind (lag or pending above zero), longest run."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.behind_since: dict[str, float] = {}
        self.longest: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._task is not None:
            await self._task
        now = time.monotonic()
        for name, since in self.behind_since.items():
            self.longest[name] = max(self.longest.get(name, 0.0), now - since)
        return self.longest

    async def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for spec in STAGES:
                try:
                    groups = await self.client.xinfo_groups(stream_key(spec, self.namespace))
                except Exception as exc:  # Redis restarting: the run is judged by its end counts
                    log.debug("lag sample skipped: %s", exc)
                    continue
                for group in groups:
                    name = f"{spec.name}/{group['name']}"
                    behind = int(group.get("lag") or 0) + int(group.get("pending") or 0) > 0
                    if behind:
                        self.behind_since.setdefault(name, now)
                    elif name in self.behind_since:
                        since = self.behind_since.pop(name)
                        self.longest[name] = max(self.longest.get(name, 0.0), now - since)
                    self.longest.setdefault(name, 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.5)


async def _poll(check: Callable[[], Any], bound_s: float, every_s: float = 0.5) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return True
        await asyncio.sleep(every_s)
    return False


async def run_faults(
    plan: FaultPlan, work: Path | None = None, say: Callable[[str], None] = print
) -> FaultReport:
    """The whole run; servers and processes are stopped however it ends."""
    work = Path(tempfile.mkdtemp(prefix="eas-faults-")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    redis_server = EmbeddedRedis(work / "redis", persist=True)
    postgres = LocalPostgres()
    redis_url = redis_server.start()
    try:
        admin_url = postgres.start()
        cap = work / "cap"
        cap.mkdir(exist_ok=True)
        station = ScaledStation(
            redis_url=redis_url,
            postgres_admin_url=admin_url,
            run_dir=work / "station",
            cap_folder=cap,
            extra_env=FAST,
            nginx=shutil.which("nginx") or "/usr/sbin/nginx",
        )
        # start/stop are blocking (and run their own event loop for the database): a thread.
        await asyncio.to_thread(station.__enter__)
        try:
            return await _scenario(plan, station, redis_server, postgres, cap, say)
        finally:
            await asyncio.to_thread(station.stop)
    finally:
        postgres.stop()
        shutil.rmtree(postgres.dir, ignore_errors=True)
        redis_server.stop()


async def _scenario(
    plan: FaultPlan,
    station: ScaledStation,
    redis_server: EmbeddedRedis,
    postgres: LocalPostgres,
    cap: Path,
    say: Callable[[str], None],
) -> FaultReport:
    began = time.monotonic()
    report = FaultReport(expected=plan.alerts)
    token = TokenSigner((station.keys_dir / "signing.pem").read_text()).mint(
        "faults-admin", Role.ADMIN, ttl_s=24 * 3600
    )
    ns = station.namespace
    bus = aioredis.Redis.from_url(station.redis_url, decode_responses=True)
    http = httpx.AsyncClient(
        base_url=station.origin, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        current = (await http.get("/api/settings")).json()
        document = current["settings"]
        document["location"]["same_codes"] = ["039035"]
        document["relay"]["enabled"] = True
        document["relay"]["events"] = ["TOR"]
        saved = await http.put("/api/settings", json={"settings": document})
        assert saved.status_code == 200, saved.text

        watchers = [
            AlertWatcher(f"ws://127.0.0.1:{r.port}/ws", token, name=r.name)
            for r in station.replicas["ws-broadcaster"]
        ] + [AlertWatcher(f"{station.origin.replace('http', 'ws', 1)}/ws", token, "via-nginx")]
        for w in watchers:
            w.start()
        sampler = LagSampler(bus, ns)
        sampler.start()

        services = plan.services or tuple(station.replicas)
        faults: list[tuple[str, str]] = [("kill", s) for s in services]
        faults += [("redis", "restart"), ("postgres", "outage")]
        per_chunk = max(1, plan.alerts // len(faults))
        relayed: list[str] = []
        written: list[str] = []
        for index, (kind, what) in enumerate(faults):
            left = plan.alerts - len(written)
            count = left if index == len(faults) - 1 else min(per_chunk, left)
            for _ in range(count):
                local = (len(written) + 1) % plan.aired_every == 0
                ids = write_cap_files(cap, 1, prefix="faults", area=None if local else OTHER_COUNTY)
                written += ids
                if local:
                    relayed += ids
            await asyncio.sleep(0.5)  # let some of the chunk be in flight when the fault hits
            if kind == "kill":
                pid = await asyncio.to_thread(station.kill, what, 1, signal.SIGKILL)
                report.faults.append(f"SIGKILL {what}-1 (pid {pid})")
                await asyncio.to_thread(station.wait_ready, [station.replica(what, 1)])
            elif kind == "redis":
                await asyncio.to_thread(redis_server.stop)
                await asyncio.to_thread(redis_server.start)
                report.faults.append("Redis restarted (append-only file)")
            else:
                await _outage(station, postgres, http, plan.pg_outage_s, report)
                report.faults.append(f"PostgreSQL stopped for {plan.pg_outage_s:.0f}s")
            say(f"  {report.faults[-1]}; {len(written)} alerts written")
        report.relayed_expected = len(relayed)

        # Each check reads whole streams: gently, on a long run.
        every = 0.5 if plan.alerts <= 1000 else 5.0
        bound = plan.settle_bound_s
        settle: list[tuple[str, Callable[[], Any]]] = [
            ("alert.created of every alert", lambda: _count_created(bus, ns, written)),
            ("a decision for every alert", lambda: _all_decided(bus, ns, written)),
            ("every /ws client saw every alert", lambda: _all_seen(watchers, written)),
            ("every relayed message aired", lambda: _aired_enough(bus, ns, len(relayed))),
        ]
        for what, check in settle:
            waited = time.monotonic()
            if not await _poll(check, bound, every):
                report.unsettled.append(f"{what} ({time.monotonic() - waited:.0f}s)")
        report.longest_behind_s = await sampler.stop()
        for w in watchers:
            await w.stop()

        items = await counts.stored(http, plan.alerts)
        report.stored = len(set(items) & set(written))
        report.stored_twice = once_each(items)
        created = await counts.created(bus, ns)
        report.created_events = len(created)
        report.created_twice = once_each(created)
        decisions = await counts.decisions(bus, ns)
        report.decided = len(set(decisions) & set(written))
        report.decided_twice = {a: len(d) for a, d in decisions.items() if len(d) != 1}
        started = await counts.airings_started(bus, ns)
        report.aired = len(set(started))
        report.aired_twice = once_each(started)
        for w in watchers:
            seen = list(map(identifier_of, w.created))
            report.ws[w.name] = (len(set(seen)), len(once_each(seen)), w.connects)
            missing = len(set(written) - set(seen))
            if missing:
                report.ws_missing[w.name] = missing
        report.dead_letters = await counts.dead_letters(bus, ns)
    finally:
        await http.aclose()
        await bus.aclose()
    report.elapsed_s = time.monotonic() - began
    return report


async def _outage(
    station: ScaledStation,
    postgres: LocalPostgres,
    http: httpx.AsyncClient,
    seconds: float,
    report: FaultReport,
) -> None:
    await asyncio.to_thread(postgres.stop_fast)
    until = time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            sent = time.monotonic()
            try:
                answer = await http.get("/api/alerts", params={"limit": 5}, timeout=20)
                body = (
                    answer.json()
                    if answer.headers.get("content-type", "").startswith("application/json")
                    else {"detail": answer.text[:80]}
                )
                report.outage_reads[f"{answer.status_code} {body.get('detail', '')}"] += 1
            except httpx.HTTPError as exc:
                report.outage_reads[f"no answer: {type(exc).__name__}"] += 1
            report.outage_slowest_s = max(report.outage_slowest_s, time.monotonic() - sent)
            await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(postgres.start)


async def _count_created(bus: aioredis.Redis, ns: str, written: list[str]) -> bool:
    return set(written) <= set(await counts.created(bus, ns))


async def _all_decided(bus: aioredis.Redis, ns: str, written: list[str]) -> bool:
    return set(written) <= set(await counts.decisions(bus, ns))


async def _all_seen(watchers: list[AlertWatcher], written: list[str]) -> bool:
    return all(set(written) <= set(map(identifier_of, w.created)) for w in watchers)


async def _aired_enough(bus: aioredis.Redis, ns: str, relayed: int) -> bool:
    return len(await counts.messages_settled(bus, ns)) >= relayed
