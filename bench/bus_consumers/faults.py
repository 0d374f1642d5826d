"""Fault scenarios on a real Redis: FastStream's stream subscriber vs servicekit.consumer.

Each run starts its own redis-server on a free port (``--save "" --appendonly no``; one
restart variant turns the append-only file on), makes a real consumer group, writes real
entries in our wire format with ``servicekit.bus.SyncBus`` (``eas_schemas.envelope``) and
records what the consumer did, from the handler's side (attempts, successes and when) and
from Redis's side (pending list, undelivered lag, dead-letter stream, whether the group
exists). Scenarios:

1. plain entries: 5 written by SyncBus before the consumer starts and 5 after, with no group
   yet (1a) and with the group an earlier run left (1b); plus the framing FastStream writes;
2. dead consumer: consumer A read 5 entries and died without acking; B starts with a
   minimum idle time of 500 ms, then 5 new entries arrive;
3. poison entry: the handler always raises for one of 5 entries; watched for 3 s;
4. flush mid-read: FLUSHALL while the consumer is blocked in XREADGROUP, then new entries;
   4b: FastStream's advice after it ("restart the application"), taken at once;
5. Redis restart: the server is stopped and started again while consuming (5a without
   persistence: stream and group are gone; 5b with AOF: both survive), then new entries.

FastStream runs as a ``FastStream`` application (``app.run()``) with its documented
options: ``StreamSub(stream, group=, consumer=, min_idle_time=)``, ``ack_policy``,
``NackMessage``, ``msg.get_delivery_count()``. What each variant is, is in README.md.

    uv run --frozen --group bench python bench/bus_consumers/faults.py [--json PATH]
        [--only 1 3] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from faststream import AckPolicy, FastStream
from faststream.exceptions import NackMessage
from faststream.redis import RedisBroker, RedisStreamMessage, StreamSub

from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.events import DEAD_LETTER_TYPE, DeadLetter
from eas_schemas.streams import ALERTS_INGESTED, DEAD_LETTER
from servicekit.bus import SyncBus, async_redis, stream_key, sync_redis
from servicekit.consumer import GroupConsumer
from servicekit.embedded import EmbeddedRedis, find_server_binary

NAMESPACE = "faults"
STREAM_KEY = stream_key(ALERTS_INGESTED, NAMESPACE)
DLQ_KEY = stream_key(DEAD_LETTER, NAMESPACE)
GROUP = "alerts-api"
MIN_IDLE_MS = 500
MAX_DELIVERIES = 3
POISON_WINDOW_S = 3.0

OURS = "servicekit"


# --- what the handler saw -------------------------------------------------------------------


@dataclass
class Recorder:
    """The handler's view: every attempt, every success (with its time), every poison raise."""

    poison: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    done_at: dict[int, float] = field(default_factory=dict)
    successes: int = 0  # > len(done_at) when an entry succeeded twice (a redelivery)

    def handle(self, envelope: EventEnvelope[dict[str, Any]]) -> None:
        n = int(envelope.data["n"])
        self.attempts[n] = self.attempts.get(n, 0) + 1
        if n in self.poison:
            raise RuntimeError(f"entry {n} always fails")
        self.successes += 1
        self.done_at.setdefault(n, time.monotonic())

    def handled(self, ns: range) -> int:
        return sum(1 for n in ns if n in self.done_at)

    def first_done_after(self, ns: range) -> float | None:
        times = [self.done_at[n] for n in ns if n in self.done_at]
        return min(times) if times else None


class LogTap(logging.Handler):
    """Keeps what a consumer logged at WARNING or above (the operator's only clue)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage().splitlines()[0][:240]))

    def summary(self, limit: int = 3) -> str:
        """The distinct messages, in order: what an operator reading the log would see."""
        seen: list[str] = []
        for level, message in self.records:
            line = f"{level} {message[:150]}"
            if line not in seen:
                seen.append(line)
        return " -> ".join(seen[:limit])


# --- the two consumers ----------------------------------------------------------------------


@dataclass(frozen=True)
class FsSub:
    """One FastStream subscriber on the group (a variant may run two)."""

    consumer: str
    min_idle_time: int | None = None
    last_id: str | None = None  # None: FastStream's default (group created at "$")
    ack_policy: AckPolicy | None = None  # None: FastStream's default (REJECT_ON_ERROR)
    raise_nack: bool = False  # the handler raises NackMessage() instead of the error
    dead_letter_at: int | None = None  # hand-written: dead-letter at this delivery count


class FastStreamConsumer:
    def __init__(
        self, url: str, recorder: Recorder, subs: list[FsSub], verbose: bool = False
    ) -> None:
        self.recorder = recorder
        self.tap = LogTap()
        self.logger = logging.getLogger(f"faults.faststream.{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.tap)
        self.logger.propagate = verbose
        self.client = aioredis.Redis.from_url(url, decode_responses=True)
        self.broker = RedisBroker(url, logger=self.logger)
        self.subscribers = []
        for sub in subs:
            stream_sub = StreamSub(
                STREAM_KEY,
                group=GROUP,
                consumer=sub.consumer,
                min_idle_time=sub.min_idle_time,
                last_id=sub.last_id,
            )
            subscriber = (
                self.broker.subscriber(stream=stream_sub)
                if sub.ack_policy is None
                else self.broker.subscriber(stream=stream_sub, ack_policy=sub.ack_policy)
            )
            subscriber(self._handler(sub))
            self.subscribers.append(subscriber)
        self.started = asyncio.Event()
        self.app = FastStream(self.broker, logger=self.logger, after_startup=[self._up])
        self.task: asyncio.Task[None] | None = None

    async def _up(self) -> None:
        self.started.set()

    def _handler(self, sub: FsSub) -> Callable[..., Any]:
        recorder, client = self.recorder, self.client

        async def handler(body: dict[str, Any], msg: RedisStreamMessage) -> None:
            envelope = decode_entry(body)
            try:
                recorder.handle(envelope)
            except RuntimeError as exc:
                if sub.dead_letter_at is not None:
                    deliveries = await msg.get_delivery_count()
                    if deliveries >= sub.dead_letter_at:
                        entry_id = msg.raw_message["message_ids"][0].decode()
                        await client.xadd(DLQ_KEY, dead_letter(entry_id, body, deliveries, exc))
                        return  # returning acks (the ack policy acks on success)
                if sub.raise_nack:
                    raise NackMessage() from exc
                raise

        return handler

    async def start(self) -> None:
        self.task = asyncio.create_task(self.app.run())
        await asyncio.wait_for(self.started.wait(), 10)

    def running(self) -> bool:
        return (
            self.task is not None
            and not self.task.done()
            and all(s.running for s in self.subscribers)
        )

    def state(self) -> str:
        if self.task is not None and self.task.done():
            return "application exited"
        stopped = [s for s in self.subscribers if not s.running]
        return f"{len(stopped)} subscriber(s) stopped" if stopped else "running"

    async def stop(self) -> None:
        assert self.task is not None
        self.app.exit()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 15)
        await self.client.aclose()
        # app.run() installed SIGINT/SIGTERM handlers that call this app's exit().
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    def said(self) -> str:
        return self.tap.summary()


class ServicekitConsumer:
    def __init__(self, url: str, recorder: Recorder, name: str = "b") -> None:
        self.recorder = recorder
        self.client = async_redis(url)

        async def handler(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
            recorder.handle(envelope)

        self.consumer = GroupConsumer(
            self.client,
            ALERTS_INGESTED.name,
            GROUP,
            name,
            handler,
            namespace=NAMESPACE,
            min_idle_ms=MIN_IDLE_MS,
            max_deliveries=MAX_DELIVERIES,
        )
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.ensure_group()
        self.task = asyncio.create_task(self.consumer.run(self.stop_event))

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def state(self) -> str:
        return "running" if self.running() else "stopped"

    async def stop(self) -> None:
        assert self.task is not None
        self.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 15)
        await self.client.aclose()

    def said(self) -> str:
        s = self.consumer.stats
        parts = [f"{k}={v}" for k, v in asdict(s).items() if v and k not in ("last_entry_id",)]
        return "stats: " + ", ".join(parts)


Consumer = FastStreamConsumer | ServicekitConsumer


def dead_letter(
    entry_id: str, fields: dict[str, Any], deliveries: int, exc: Exception
) -> dict[Any, Any]:
    letter = DeadLetter(
        stream=ALERTS_INGESTED.name,
        group=GROUP,
        entry_id=entry_id,
        deliveries=deliveries,
        reason=f"{type(exc).__name__}: {exc}",
        fields={str(k): str(v) for k, v in fields.items()},
        failed_at=datetime.now(UTC),
    )
    envelope = EventEnvelope[DeadLetter](
        type=DEAD_LETTER_TYPE, source="faults/faststream", subject=entry_id, data=letter
    )
    return dict(encode_entry(envelope))


# --- Redis side -----------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis(persist: bool = False) -> Iterator[EmbeddedRedis]:
    data = Path(tempfile.mkdtemp(prefix="eas-faults-"))
    server = EmbeddedRedis(data, persist=persist)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def publish(url: str, ns: range) -> None:
    client = sync_redis(url)
    bus = SyncBus(client, NAMESPACE)
    for n in ns:
        bus.publish(
            ALERTS_INGESTED,
            EventEnvelope[dict[str, Any]](type="bench.fault", source="faults", data={"n": n}),
        )
    client.close()


@dataclass
class GroupState:
    exists: bool
    pending: int
    lag: int  # entries in the stream never delivered to the group
    dead_letters: int


def group_state(url: str) -> GroupState:
    client = sync_redis(url)
    try:
        groups: Any = client.xinfo_groups(STREAM_KEY) if client.exists(STREAM_KEY) else []
        mine = [g for g in groups if g["name"] == GROUP]
        dead_letters = int(client.xlen(DLQ_KEY))
        if not mine:
            return GroupState(False, 0, 0, dead_letters)
        lag = mine[0].get("lag")
        return GroupState(True, int(mine[0]["pending"]), int(lag or 0), dead_letters)
    finally:
        client.close()


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def idle_read_rate(url: str, seconds: float) -> float:
    """XREADGROUP + XAUTOCLAIM calls per second the server answers while nothing arrives."""

    def reads() -> int:
        client = redis.Redis.from_url(url, decode_responses=True)
        stats: Any = client.info("commandstats")
        client.close()
        return sum(
            int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0))
            for cmd in ("xreadgroup", "xautoclaim")
        )

    before = reads()
    await asyncio.sleep(seconds)
    return (reads() - before) / seconds


async def wait_blocked_reader(url: str, timeout: float = 3.0) -> bool:
    """Until some client sits blocked in XREADGROUP, so the flush lands mid-read."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            clients: Any = await client.client_list()
            if any(c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "") for c in clients):
                return True
            await asyncio.sleep(0.002)
        return False
    finally:
        await client.aclose()


# --- results --------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    consumer: str
    handled: str
    pending: int
    reclaimed: str
    dead_lettered: int
    running: bool
    recovered_s: float | None
    observed: str
    said: str = ""
    timed: bool = False  # recovered_s applies (reclaim, flush, restart)
    raw: dict[str, Any] = field(default_factory=dict)


def fmt_s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


# --- scenarios ------------------------------------------------------------------------------


async def plain_entries(
    label: str,
    make: Callable[[str, Recorder], Consumer],
    group_exists: bool,
    show_framing: bool = False,
) -> Outcome:
    with private_redis() as server:
        url = server.url
        if group_exists:  # the service ran before (its group is there), then restarts
            client = redis.Redis.from_url(url)
            client.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
            client.close()
        publish(url, range(5))  # written while the consumer was not running
        rec = Recorder()
        consumer = make(url, rec)
        await consumer.start()
        publish(url, range(5, 10))
        await wait_until(lambda: rec.handled(range(10)) == 10, 3.0)
        reads_per_s = await idle_read_rate(url, 2.0)
        running, said = consumer.running(), consumer.said()
        framing = ""
        if show_framing and isinstance(consumer, FastStreamConsumer):
            await consumer.broker.publish({"n": 99}, stream=f"{NAMESPACE}:framing")
            client = redis.Redis.from_url(url)
            written: Any = client.xrange(f"{NAMESPACE}:framing")
            entry: dict[bytes, bytes] = written[0][1]
            client.close()
            fields = {k.decode(): v[:12] for k, v in entry.items()}
            framing = f"its own publish writes {sorted(fields)} = {fields['__data__']!r}..."
        state = group_state(url)
        await consumer.stop()
    before, after = rec.handled(range(5)), rec.handled(range(5, 10))
    observed = (
        f"handled as envelopes: {before}/5 written before it started, {after}/5 written after"
    )
    if state.lag:
        observed += f"; {state.lag} never delivered (group lag)"
    observed += f"; {reads_per_s:.0f} reads/s while idle"
    if framing:
        observed += f"; {framing}"
    return Outcome(
        scenario="1b SyncBus entries, group exists" if group_exists else "1a SyncBus entries",
        consumer=label,
        handled=f"{before + after}/10",
        pending=state.pending,
        reclaimed="-",
        dead_lettered=state.dead_letters,
        running=running,
        recovered_s=None,
        observed=observed,
        said=said,
        raw={
            "before_start": before,
            "after_start": after,
            "lag": state.lag,
            "idle_reads_per_s": reads_per_s,
        },
    )


async def dead_consumer(label: str, make: Callable[[str, Recorder], Consumer]) -> Outcome:
    with private_redis() as server:
        url = server.url
        client = redis.Redis.from_url(url, decode_responses=True)
        client.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
        publish(url, range(5))
        # Consumer A: reads the 5 entries and dies before acknowledging any.
        client.xreadgroup(GROUP, "a", {STREAM_KEY: ">"}, count=5)
        rec = Recorder()
        consumer = make(url, rec)
        started = time.monotonic()
        await consumer.start()
        publish(url, range(5, 10))
        await wait_until(lambda: rec.handled(range(10)) == 10, 4.0)
        await asyncio.sleep(0.2)
        running, said = consumer.running(), consumer.said()
        state = group_state(url)
        await consumer.stop()
        client.close()
    reclaimed, new = rec.handled(range(5)), rec.handled(range(5, 10))
    last_old = max((rec.done_at[n] for n in range(5) if n in rec.done_at), default=None)
    reclaim_s = None if reclaimed < 5 or last_old is None else last_old - started
    observed = (
        f"A's entries reclaimed {reclaimed}/5 (all by {fmt_s(reclaim_s)}); new entries read {new}/5"
    )
    if state.lag:
        observed += f", {state.lag} never delivered (group lag)"
    return Outcome(
        scenario="2 dead consumer",
        consumer=label,
        handled=f"{reclaimed + new}/10",
        pending=state.pending,
        reclaimed=f"{reclaimed}/5",
        dead_lettered=state.dead_letters,
        running=running,
        recovered_s=reclaim_s,
        observed=observed,
        said=said,
        raw={"reclaimed": reclaimed, "new_read": new, "lag": state.lag},
        timed=True,
    )


async def poison_entry(label: str, make: Callable[[str, Recorder], Consumer]) -> Outcome:
    with private_redis() as server:
        url = server.url
        rec = Recorder(poison={2})
        consumer = make(url, rec)
        await consumer.start()
        published = time.monotonic()
        publish(url, range(5))
        await asyncio.sleep(POISON_WINDOW_S)
        running, said = consumer.running(), consumer.said()
        state = group_state(url)
        await consumer.stop()
    others = rec.handled(range(5)) - (1 if 2 in rec.done_at else 0)
    last_other = max((rec.done_at[n] for n in (0, 1, 3, 4) if n in rec.done_at), default=None)
    behind_s = None if others < 4 or last_other is None else last_other - published
    attempts = rec.attempts.get(2, 0)
    where = "in bus.deadletter" if state.dead_letters else "not dead-lettered"
    observed = (
        f"poison handled {attempts}x in {POISON_WINDOW_S:.0f} s, {where}, "
        f"{'still pending' if state.pending else 'acked'}; "
        f"the 4 entries behind it: {others}/4 done (by {fmt_s(behind_s)})"
    )
    return Outcome(
        scenario="3 poison entry",
        consumer=label,
        handled=f"{others}/4 others",
        pending=state.pending,
        reclaimed="-",
        dead_lettered=state.dead_letters,
        running=running,
        recovered_s=None,
        observed=observed,
        said=said,
        raw={"poison_attempts": attempts, "others_done": others, "others_done_s": behind_s},
    )


async def flush_mid_read(label: str, make: Callable[[str, Recorder], Consumer]) -> Outcome:
    with private_redis() as server:
        url = server.url
        rec = Recorder()
        consumer = make(url, rec)
        await consumer.start()
        publish(url, range(3))
        await wait_until(lambda: rec.handled(range(3)) == 3, 3.0)
        blocked = await wait_blocked_reader(url)
        client = redis.Redis.from_url(url)
        client.flushall()
        client.close()
        fault = time.monotonic()
        await asyncio.sleep(0.2)
        publish(url, range(3, 6))
        settled = await settle(url, rec, consumer, 8.0)
        await asyncio.sleep(0.5)  # a stopping application gets the time to finish exiting
        running, said, state_text = consumer.running(), consumer.said(), consumer.state()
        state = group_state(url)
        await consumer.stop()
    return recovery_outcome(
        "4 FLUSHALL mid-read",
        label,
        rec,
        (fault, settled),
        (running, state_text, state),
        said,
        {"reader_blocked_at_flush": blocked},
    )


async def flush_then_supervisor_restart(
    label: str, make: Callable[[str, Recorder], Consumer]
) -> Outcome:
    """FastStream's own advice after NOGROUP ("restart the application to recreate the
    group"), taken at once: as soon as the application has exited, a new one is started,
    as a process supervisor would; then 3 more entries arrive."""
    with private_redis() as server:
        url = server.url
        rec = Recorder()
        consumer = make(url, rec)
        await consumer.start()
        publish(url, range(3))
        await wait_until(lambda: rec.handled(range(3)) == 3, 3.0)
        await wait_blocked_reader(url)
        client = redis.Redis.from_url(url)
        client.flushall()
        client.close()
        fault = time.monotonic()
        await asyncio.sleep(0.2)
        publish(url, range(3, 6))  # written while the application is stopping
        await wait_until(lambda: not consumer.running(), 8.0)
        exited = not consumer.running()
        await consumer.stop()
        second = make(url, rec)
        await second.start()
        restarted = time.monotonic()
        publish(url, range(6, 9))
        await wait_until(lambda: rec.handled(range(6, 9)) == 3, 4.0)
        await asyncio.sleep(0.2)
        running, said = second.running(), second.said()
        state = group_state(url)
        await second.stop()
    gap, after = rec.handled(range(3, 6)), rec.handled(range(6, 9))
    first = rec.first_done_after(range(3, 9))
    observed = (
        f"{'exited' if exited else 'did not exit'}, restarted "
        f"{restarted - fault:.2f} s after the flush: {gap}/3 entries written in between "
        f"handled, {after}/3 written after the restart"
    )
    if gap < 3:
        observed += " (the new group starts at '$')"
    return Outcome(
        scenario="4b FLUSHALL, app restarted",
        consumer=label,
        handled=f"{rec.handled(range(9))}/9",
        pending=state.pending,
        reclaimed="-",
        dead_lettered=state.dead_letters,
        running=running,
        recovered_s=None if first is None else first - fault,
        observed=observed,
        said=said,
        raw={"exited": exited, "between": gap, "after_restart": after, "lag": state.lag},
        timed=True,
    )


async def restart(label: str, make: Callable[[str, Recorder], Consumer], persist: bool) -> Outcome:
    with private_redis(persist=persist) as server:
        url = server.url
        rec = Recorder()
        consumer = make(url, rec)
        await consumer.start()
        publish(url, range(3))
        await wait_until(lambda: rec.handled(range(3)) == 3, 3.0)
        server.stop()
        await asyncio.sleep(1.0)
        server.start()
        fault = time.monotonic()
        publish(url, range(3, 6))
        settled = await settle(url, rec, consumer, 12.0)
        await asyncio.sleep(0.5)  # a stopping application gets the time to finish exiting
        running, said, state_text = consumer.running(), consumer.said(), consumer.state()
        state = group_state(url)
        await consumer.stop()
    name = "5b restart, AOF on" if persist else "5a restart, no persistence"
    return recovery_outcome(
        name, label, rec, (fault, settled), (running, state_text, state), said, {}
    )


async def settle(url: str, rec: Recorder, consumer: Consumer, timeout: float) -> float | None:
    """Until the 3 new entries are handled and nothing is pending (or the consumer stopped);
    the moment it happened, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and consumer.running():
        if rec.handled(range(3, 6)) == 3:
            with contextlib.suppress(redis.RedisError):
                if group_state(url).pending == 0:
                    return time.monotonic()
        await asyncio.sleep(0.05)
    return None


def recovery_outcome(
    scenario: str,
    label: str,
    rec: Recorder,
    times: tuple[float, float | None],
    end: tuple[bool, str, GroupState],
    said: str,
    raw: dict[str, Any],
) -> Outcome:
    fault, settled = times
    running, state_text, state = end
    new = rec.handled(range(3, 6))
    first = rec.first_done_after(range(3, 6))
    recovered = None if first is None else first - fault
    twice = rec.successes - len(rec.done_at)
    observed = f"after: {new}/3 new entries handled"
    if settled is not None:
        observed += f", all acked {settled - fault:.2f} s after the fault"
    if twice:
        observed += f", {twice} handled twice (redelivered after a connection error)"
    observed += f"; {state_text}; {'group exists' if state.exists else 'no group'}"
    return Outcome(
        scenario=scenario,
        consumer=label,
        handled=f"{rec.handled(range(6))}/6",
        pending=state.pending,
        reclaimed="-",
        dead_lettered=state.dead_letters,
        running=running,
        recovered_s=recovered,
        observed=observed,
        said=said,
        raw={
            **raw,
            "new_read": new,
            "handled_twice": twice,
            "settled_s": None if settled is None else settled - fault,
            "group_exists": state.exists,
            "state": state_text,
        },
        timed=True,
    )


# --- the matrix -----------------------------------------------------------------------------

Maker = Callable[[str, Recorder], Consumer]


def fs(*subs: FsSub, verbose: bool = False) -> Maker:
    return lambda url, rec: FastStreamConsumer(url, rec, list(subs), verbose)


def ours(url: str, rec: Recorder) -> Consumer:
    return ServicekitConsumer(url, rec)


def matrix(verbose: bool) -> dict[str, list[Callable[[], Awaitable[Outcome]]]]:
    """Scenario number -> the runs, FastStream variants first, ours last."""
    plain = fs(FsSub("b"), verbose=verbose)
    from_zero = fs(FsSub("b", last_id="0"), verbose=verbose)
    reclaimer_only = fs(FsSub("b", min_idle_time=MIN_IDLE_MS), verbose=verbose)
    pair = fs(FsSub("b"), FsSub("b-reclaim", min_idle_time=MIN_IDLE_MS), verbose=verbose)
    nack = fs(FsSub("b", raise_nack=True), verbose=verbose)
    nack_on_error = fs(FsSub("b", ack_policy=AckPolicy.NACK_ON_ERROR), verbose=verbose)
    pair_dlq = fs(
        FsSub("b", dead_letter_at=MAX_DELIVERIES),
        FsSub("b-reclaim", min_idle_time=MIN_IDLE_MS, dead_letter_at=MAX_DELIVERIES),
        verbose=verbose,
    )
    fs_plain = "FS reader"
    fs_reclaimer = "FS reclaimer alone"
    fs_pair = "FS reader + reclaimer"
    return {
        "1": [
            lambda: plain_entries(fs_plain, plain, False, show_framing=True),
            lambda: plain_entries(f"{fs_plain}, last_id='0'", from_zero, False),
            lambda: plain_entries(OURS, ours, False),
            lambda: plain_entries(fs_plain, plain, True),
            lambda: plain_entries(f"{fs_plain}, last_id='0'", from_zero, True),
            lambda: plain_entries(OURS, ours, True),
        ],
        "2": [
            lambda: dead_consumer(fs_reclaimer, reclaimer_only),
            lambda: dead_consumer(fs_pair, pair),
            lambda: dead_consumer(OURS, ours),
        ],
        "3": [
            lambda: poison_entry(f"{fs_plain} (default REJECT_ON_ERROR)", plain),
            lambda: poison_entry(f"{fs_plain}, NACK_ON_ERROR", nack_on_error),
            lambda: poison_entry(f"{fs_plain}, raises NackMessage()", nack),
            lambda: poison_entry(fs_pair, pair),
            lambda: poison_entry(f"{fs_pair} + hand-written dead-letter", pair_dlq),
            lambda: poison_entry(OURS, ours),
        ],
        "4": [
            lambda: flush_mid_read(fs_plain, plain),
            lambda: flush_mid_read(OURS, ours),
            lambda: flush_then_supervisor_restart(f"{fs_plain}, restarted on exit", plain),
            lambda: flush_then_supervisor_restart(
                f"{fs_plain}, last_id='0', restarted on exit", from_zero
            ),
        ],
        "5": [
            lambda: restart(fs_plain, plain, persist=False),
            lambda: restart(OURS, ours, persist=False),
            lambda: restart(fs_plain, plain, persist=True),
            lambda: restart(OURS, ours, persist=True),
        ],
    }


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    server = subprocess.run(
        [find_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    server_version = next((w.split("=", 1)[1] for w in server if w.startswith("v=")), "?")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "faststream": metadata.version("faststream"),
        "redis-py": metadata.version("redis"),
        "redis-server": server_version,
    }


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | consumer | handled | pending | reclaimed | dead-lettered | running "
        "| recovered after | what happened |",
        "|" + "---|" * 9,
    ]
    for o in outcomes:
        recovered = fmt_s(o.recovered_s) if o.timed else "-"
        lines.append(
            f"| {o.scenario} | {o.consumer} | {o.handled} | {o.pending} | {o.reclaimed} "
            f"| {o.dead_lettered} | {'yes' if o.running else '**no**'} | {recovered} "
            f"| {o.observed} |"
        )
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--only", nargs="*", default=[], help="scenario numbers (1-5)")
    parser.add_argument("--verbose", action="store_true", help="let consumer logs through")
    args = parser.parse_args()

    ours_log = logging.getLogger("servicekit.consumer")
    ours_log.propagate = args.verbose
    ours_log.addHandler(logging.NullHandler())  # its counters say it; no stderr noise
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    outcomes: list[Outcome] = []
    started = time.monotonic()
    for number, runs in matrix(args.verbose).items():
        if args.only and number not in args.only:
            continue
        for run in runs:
            outcome = await run()
            outcomes.append(outcome)
            print(f"  {outcome.scenario} / {outcome.consumer}: done", file=sys.stderr)
    facts = machine()
    print(table(outcomes))
    print()
    for o in outcomes:
        if o.said:
            print(f"- {o.scenario} / {o.consumer}: {o.said}")
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": facts, "outcomes": [asdict(o) for o in outcomes]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
