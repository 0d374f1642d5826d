"""The consumer's batch path on real Redis, driven one poll at a time (no timing involved).

Rules under test (servicekit.consumer): a batch is acknowledged only after the batch handler
returned, i.e. after its commit; a failing batch falls back to one entry at a time; entries
the batch handler rejects, entries that are not envelopes and entries out of retries are
dead-lettered with their reason, and nothing else is.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis.asyncio as aioredis

from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.streams import DEAD_LETTER
from servicekit.bus import stream_key
from servicekit.consumer import GroupConsumer

STREAM = "alerts.ingested"
Entries = list[tuple[str, EventEnvelope[dict[str, Any]]]]


class Killed(BaseException):
    """The process dying in the middle of a commit (not an Exception: nothing catches it)."""


def envelope(n: int) -> dict[str, str]:
    return encode_entry(EventEnvelope[dict[str, Any]](type="test.item", source="t", data={"n": n}))


def numbers(entries: Entries) -> list[int]:
    return [int(env.data["n"]) for _, env in entries]


async def add(client: aioredis.Redis, ns: str, *ns_: int) -> list[str]:
    key = stream_key(STREAM, ns)
    out = []
    for n in ns_:
        fields: Any = envelope(n)
        out.append(str(await client.xadd(key, fields)))
    return out


async def pending_ids(client: aioredis.Redis, ns: str) -> list[str]:
    rows = await client.xpending_range(stream_key(STREAM, ns), "g", min="-", max="+", count=100)
    return [str(r["message_id"]) for r in rows]


async def dead_letters(client: aioredis.Redis, ns: str) -> list[dict[str, Any]]:
    rows: Any = await client.xrange(stream_key(DEAD_LETTER, ns))
    return [decode_entry(fields).data for _, fields in rows]


class Store:
    """A batch handler with a commit: ``committed`` is what a database would hold."""

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.committed: list[int] = []
        self.batches: list[list[int]] = []
        self.pending_during_commit: list[list[str]] = []
        self.fail_batch = False
        self.kill_batch = False
        self.reject: dict[int, str] = {}

    async def batch(self, entries: Entries) -> dict[str, str]:
        self.batches.append(numbers(entries))
        # What Redis holds while the commit is under way: every entry must still be pending.
        self.pending_during_commit.append(await pending_ids(self.client, self.ns))
        if self.kill_batch:
            raise Killed
        if self.fail_batch:
            raise RuntimeError("deadlock detected")
        rejected = {
            eid: self.reject[int(e.data["n"])] for eid, e in entries if e.data["n"] in self.reject
        }
        self.committed += [n for n in numbers(entries) if n not in self.reject]
        return rejected


class Singles:
    """The one-by-one handler the consumer falls back to; ``broken`` entries always fail."""

    def __init__(self, broken: set[int] | None = None) -> None:
        self.broken = broken or set()
        self.done: list[int] = []
        self.attempts: dict[int, int] = {}

    async def __call__(self, entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        n = int(env.data["n"])
        self.attempts[n] = self.attempts.get(n, 0) + 1
        if n in self.broken:
            raise RuntimeError(f"item {n} is broken")
        self.done.append(n)


def consumer(
    client: aioredis.Redis, ns: str, handler: Any, store: Store, **kw: Any
) -> GroupConsumer:
    kw.setdefault("min_idle_ms", 60_000)  # nothing is reclaimed unless a test asks for it
    kw.setdefault("block_ms", 100)
    return GroupConsumer(
        client, STREAM, "g", "c1", handler, namespace=ns, batch_handler=store.batch, **kw
    )


async def test_batch_is_acknowledged_only_after_it_commits(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    singles = Singles()
    c = consumer(aredis, bus_namespace, singles, store)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2, 3, 4)

    assert await c.poll_once() == 4
    assert store.batches == [[1, 2, 3, 4]]  # one batch, in stream order
    assert store.pending_during_commit == [ids]
    assert store.committed == [1, 2, 3, 4]
    assert singles.done == []  # the batch path handled them, not the fallback
    assert await pending_ids(aredis, bus_namespace) == []
    assert (c.stats.handled, c.stats.last_entry_id, c.stats.dead_lettered) == (4, ids[-1], 0)


async def test_a_consumer_killed_during_the_commit_leaves_the_batch_pending(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    store.kill_batch = True
    c = consumer(aredis, bus_namespace, Singles(), store)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2, 3)

    with pytest.raises(Killed):
        await c.poll_once()
    # Nothing was committed, so nothing may be acknowledged: another consumer reclaims these.
    assert await pending_ids(aredis, bus_namespace) == ids
    assert c.stats.handled == 0

    survivor_store = Store(aredis, bus_namespace)
    survivor = GroupConsumer(
        aredis,
        STREAM,
        "g",
        "c2",
        Singles(),
        namespace=bus_namespace,
        batch_handler=survivor_store.batch,
        min_idle_ms=0,
        block_ms=100,
    )
    assert await survivor.poll_once() == 3
    assert survivor_store.committed == [1, 2, 3]
    assert survivor.stats.reclaimed == 3
    assert await pending_ids(aredis, bus_namespace) == []


async def test_a_failed_batch_falls_back_to_one_by_one(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    store.fail_batch = True
    singles = Singles(broken={3})
    c = consumer(aredis, bus_namespace, singles, store, max_deliveries=3)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2, 3, 4, 5)

    await c.poll_once()
    assert store.batches == [[1, 2, 3, 4, 5]]
    assert store.committed == []
    assert sorted(singles.done) == [1, 2, 4, 5]
    assert singles.attempts == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    # Only the entry that failed on its own stays pending, for a retry; the others are acked.
    assert await pending_ids(aredis, bus_namespace) == [ids[2]]
    assert (c.stats.handled, c.stats.failed, c.stats.dead_lettered) == (4, 1, 0)
    assert await dead_letters(aredis, bus_namespace) == []


async def test_the_fallback_dead_letters_an_entry_on_its_last_delivery(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    store.fail_batch = True
    singles = Singles(broken={2})
    c = consumer(aredis, bus_namespace, singles, store, max_deliveries=1)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2, 3)

    await c.poll_once()
    assert sorted(singles.done) == [1, 3]
    letters = await dead_letters(aredis, bus_namespace)
    assert [(d["entry_id"], d["reason"], d["deliveries"]) for d in letters] == [
        (ids[1], "RuntimeError: item 2 is broken", 1)
    ]
    assert await pending_ids(aredis, bus_namespace) == []


async def test_entries_the_batch_rejects_are_dead_lettered_and_the_rest_acked(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    store.reject = {2: "alert has no info block", 4: "sent is in the future"}
    singles = Singles()
    c = consumer(aredis, bus_namespace, singles, store)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2, 3, 4)

    await c.poll_once()
    assert store.committed == [1, 3]
    assert singles.attempts == {}  # rejected is final: no retry one by one
    letters = await dead_letters(aredis, bus_namespace)
    assert [(d["entry_id"], d["reason"], d["group"]) for d in letters] == [
        (ids[1], "alert has no info block", "g"),
        (ids[3], "sent is in the future", "g"),
    ]
    assert decode_entry(letters[0]["fields"]).data == {"n": 2}  # the entry as it was, to redo
    assert await pending_ids(aredis, bus_namespace) == []
    assert (c.stats.handled, c.stats.dead_lettered, c.stats.last_entry_id) == (2, 2, ids[2])


async def test_an_entry_that_is_no_envelope_never_reaches_the_batch(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    c = consumer(aredis, bus_namespace, Singles(), store)
    await c.ensure_group()
    key = stream_key(STREAM, bus_namespace)
    first = await add(aredis, bus_namespace, 1)
    garbage = str(await aredis.xadd(key, {"garbage": "x"}))
    last = await add(aredis, bus_namespace, 3)

    await c.poll_once()
    assert store.batches == [[1, 3]]
    letters = await dead_letters(aredis, bus_namespace)
    assert [d["entry_id"] for d in letters] == [garbage]
    assert letters[0]["reason"].startswith("not an event envelope")
    assert letters[0]["fields"] == {"garbage": "x"}
    assert await pending_ids(aredis, bus_namespace) == []
    assert c.stats.last_entry_id == last[0] != first[0]


async def test_a_batch_of_nothing_but_bad_entries_calls_no_handler(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    c = consumer(aredis, bus_namespace, Singles(), store)
    await c.ensure_group()
    key = stream_key(STREAM, bus_namespace)
    for i in range(2):
        await aredis.xadd(key, {"garbage": str(i)})

    await c.poll_once()
    assert store.batches == []
    assert len(await dead_letters(aredis, bus_namespace)) == 2
    assert await pending_ids(aredis, bus_namespace) == []


async def test_reclaimed_entries_out_of_retries_are_dead_lettered_in_the_batch_path(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    c = consumer(aredis, bus_namespace, Singles(), store, min_idle_ms=0, max_deliveries=1)
    await c.ensure_group()
    ids = await add(aredis, bus_namespace, 1, 2)
    # A consumer that died after reading them: delivery 1 spent, nothing acknowledged.
    await aredis.xreadgroup("g", "dead", {stream_key(STREAM, bus_namespace): ">"}, count=10)
    fresh = await add(aredis, bus_namespace, 3, 4)

    await c.poll_once()  # reclaims 1 and 2 (delivery 2 > 1), then reads 3 and 4
    letters = await dead_letters(aredis, bus_namespace)
    assert [(d["entry_id"], d["reason"], d["deliveries"]) for d in letters] == [
        (ids[0], "retries exhausted", 2),
        (ids[1], "retries exhausted", 2),
    ]
    assert store.batches == [[3, 4]]
    assert store.committed == [3, 4]
    assert c.stats.last_entry_id == fresh[-1]
    assert await pending_ids(aredis, bus_namespace) == []


async def test_a_single_entry_takes_the_one_by_one_path(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # One entry is not worth a batch transaction; the plain handler's rules apply to it.
    store = Store(aredis, bus_namespace)
    singles = Singles()
    c = consumer(aredis, bus_namespace, singles, store)
    await c.ensure_group()
    await add(aredis, bus_namespace, 9)

    await c.poll_once()
    assert (store.batches, singles.done) == ([], [9])
    assert await pending_ids(aredis, bus_namespace) == []


async def test_dead_letter_reasons_are_counted_and_bounded(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    long_reason = "x" * 3000
    store.reject = {2: long_reason, 3: "bad area: no geocode", 4: "bad area: empty polygon"}
    c = consumer(aredis, bus_namespace, Singles(), store)
    await c.ensure_group()
    await add(aredis, bus_namespace, 1, 2, 3, 4)
    await aredis.xadd(stream_key(STREAM, bus_namespace), {"garbage": "x"})

    await c.poll_once()
    letters = await dead_letters(aredis, bus_namespace)
    assert max(len(d["reason"]) for d in letters) == 2000  # kept bounded, not dropped
    # Counted by the reason's first part: what an operator's metric groups by.
    assert c.stats.by_reason == {"x" * 60: 1, "bad area": 2, "not an event envelope": 1}
    assert c.stats.dead_lettered == 4


async def test_lag_and_pending_are_what_redis_holds(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    store = Store(aredis, bus_namespace)
    store.kill_batch = True
    c = consumer(aredis, bus_namespace, Singles(), store)
    # No stream and no group yet: nothing behind, nothing pending (not an error).
    assert (await c.lag(), await c.pending_count()) == (0, 0)
    await c.ensure_group()
    await add(aredis, bus_namespace, 1, 2, 3)
    assert (await c.lag(), await c.pending_count()) == (3, 0)
    with pytest.raises(Killed):
        await c.poll_once()  # read, never acknowledged
    assert (await c.lag(), await c.pending_count()) == (0, 3)


# ---- the one-by-one path, one poll at a time ------------------------------------------------


async def test_a_dead_letter_says_where_it_came_from_and_keeps_the_entry(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # What an operator needs to put it back: stream, group, entry id, deliveries, the fields.
    store = Store(aredis, bus_namespace)
    c = GroupConsumer(
        aredis, STREAM, "g", "c1", Singles(), namespace=bus_namespace, source="svc/one"
    )
    await c.ensure_group()
    garbage_id = str(await aredis.xadd(stream_key(STREAM, bus_namespace), {"garbage": "x"}))
    await c.poll_once()
    rows: Any = await aredis.xrange(stream_key(DEAD_LETTER, bus_namespace))
    (letter_envelope,) = [decode_entry(fields) for _, fields in rows]
    assert letter_envelope.type == "bus.deadletter"
    assert (letter_envelope.source, letter_envelope.subject) == ("svc/one", garbage_id)
    letter = letter_envelope.data
    assert (letter["stream"], letter["group"], letter["entry_id"]) == (STREAM, "g", garbage_id)
    assert letter["deliveries"] == 1 and letter["fields"] == {"garbage": "x"}
    assert letter["reason"].startswith("not an event envelope")
    assert store.batches == [] and await pending_ids(aredis, bus_namespace) == []


async def test_a_failing_entry_stays_pending_and_is_counted_until_its_last_delivery(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    singles = Singles(broken={5})
    c = GroupConsumer(
        aredis,
        STREAM,
        "g",
        "c1",
        singles,
        namespace=bus_namespace,
        min_idle_ms=0,
        max_deliveries=2,
        block_ms=100,
    )
    await c.ensure_group()
    (broken_id,) = await add(aredis, bus_namespace, 5)
    await c.poll_once()  # delivery 1: fails, stays pending, not acknowledged
    assert (c.stats.failed, c.stats.handled, c.stats.dead_lettered) == (1, 0, 0)
    assert await pending_ids(aredis, bus_namespace) == [broken_id]
    # Reclaimed (min_idle 0): delivery 2 fails too, the last one: dead-lettered.
    assert await c.reclaim_idle() == 1
    (ok_id,) = await add(aredis, bus_namespace, 6)
    await c.poll_once()
    assert singles.attempts == {5: 2, 6: 1} and singles.done == [6]
    assert (c.stats.failed, c.stats.handled, c.stats.dead_lettered) == (2, 1, 1)
    assert c.stats.reclaimed == 1 and c.stats.last_entry_id == ok_id
    (letter,) = await dead_letters(aredis, bus_namespace)
    assert letter["deliveries"] == 2 and letter["reason"] == "RuntimeError: item 5 is broken"
    assert await pending_ids(aredis, bus_namespace) == []


async def test_an_entry_pending_for_less_than_min_idle_is_not_taken_over(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # Another consumer is still working on it: reclaiming early would handle it twice.
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "g", id="0", mkstream=True)
    await add(aredis, bus_namespace, 1)
    await aredis.xreadgroup("g", "other", {key: ">"}, count=10)  # "other" holds it now
    singles = Singles()
    c = GroupConsumer(
        aredis, STREAM, "g", "c1", singles, namespace=bus_namespace, min_idle_ms=60_000, block_ms=1
    )
    await c.poll_once()
    assert singles.done == [] and c.stats.reclaimed == 0
    assert len(await pending_ids(aredis, bus_namespace)) == 1


async def test_creating_the_group_again_is_harmless_but_other_errors_are_not(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    c = GroupConsumer(aredis, STREAM, "g", "c1", Singles(), namespace=bus_namespace)
    await c.ensure_group()
    await c.ensure_group()  # BUSYGROUP: already there
    await aredis.set(stream_key("not.a.stream", bus_namespace), "x")
    wrong = GroupConsumer(aredis, "not.a.stream", "g", "c1", Singles(), namespace=bus_namespace)
    with pytest.raises(aioredis.ResponseError, match="WRONGTYPE"):
        await wrong.ensure_group()


async def test_a_large_reclaimed_batch_out_of_retries_is_dead_lettered_whole(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # The delivery count of every reclaimed entry is looked up, not only the first few: an
    # entry whose count went missing would count as a first delivery and be retried forever.
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "g", id="0", mkstream=True)
    ids = await add(aredis, bus_namespace, *range(40))
    await aredis.xreadgroup("g", "dead", {key: ">"}, count=100)  # delivery 1, never acked
    store = Store(aredis, bus_namespace)
    singles = Singles()
    c = GroupConsumer(
        aredis,
        STREAM,
        "g",
        "c1",
        singles,
        namespace=bus_namespace,
        batch_handler=store.batch,
        min_idle_ms=0,
        max_deliveries=1,
        batch_size=64,
    )
    assert await c.reclaim_idle() == 40  # delivery 2 of each: out of retries
    letters = await dead_letters(aredis, bus_namespace)
    assert sorted(d["entry_id"] for d in letters) == sorted(ids)
    assert {d["reason"] for d in letters} == {"retries exhausted"}
    assert {d["deliveries"] for d in letters} == {2}
    assert (store.batches, singles.done) == ([], [])
    assert await pending_ids(aredis, bus_namespace) == []


async def test_lag_of_a_group_not_on_the_stream_is_zero(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "someone-else", id="0", mkstream=True)
    await add(aredis, bus_namespace, 1, 2)
    c = GroupConsumer(aredis, STREAM, "g", "c1", Singles(), namespace=bus_namespace)
    assert await c.lag() == 0  # no such group yet: nothing is behind for it
    await c.ensure_group()
    assert await c.lag() == 2


# ---- found by the mutation run (issue 17): reclaim paging, delivery counts, run()'s errors,
# ---- database outages --------------------------------------------------------------------


async def test_reclaim_pages_through_more_stale_entries_than_one_batch(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # XAUTOCLAIM returns at most batch_size entries and a cursor: every page is taken.
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "g", id="0", mkstream=True)
    await add(aredis, bus_namespace, *range(10))
    await aredis.xreadgroup("g", "dead", {key: ">"}, count=100)
    store = Store(aredis, bus_namespace)
    singles = Singles()
    c = consumer(aredis, bus_namespace, singles, store, min_idle_ms=0, batch_size=3)
    assert await c.reclaim_idle() == 10
    # Pages of 3 in stream order; the last page's single entry takes the one-by-one path.
    assert (store.batches, singles.done) == ([[0, 1, 2], [3, 4, 5], [6, 7, 8]], [9])
    assert c.stats.reclaimed == 10
    assert await pending_ids(aredis, bus_namespace) == []


async def test_delivery_counts_are_found_among_entries_other_replicas_hold(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # Stale entries with many live ones between them (held by a busy replica, not idle): each
    # stale one's delivery count must still be found, or it is taken for a first delivery and
    # a poison entry is retried forever instead of dead-lettered.
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "g", id="0", mkstream=True)
    stale: list[str] = []
    for n in range(10):
        stale += await add(aredis, bus_namespace, n)
        await aredis.xreadgroup("g", "dead", {key: ">"}, count=1)
        await add(aredis, bus_namespace, *range(100 + 10 * n, 106 + 10 * n))
        await aredis.xreadgroup("g", "busy", {key: ">"}, count=6)
    store = Store(aredis, bus_namespace)
    c = consumer(aredis, bus_namespace, Singles(), store, min_idle_ms=0, max_deliveries=1)
    # Only the dead consumer's entries are reclaimed: XAUTOCLAIM with min idle 0 would take
    # the busy one's too, so they are handed to c through the lookup alone.
    rows = await aredis.xautoclaim(key, "g", "c1", 0, "0-0", count=100)
    held = [eid for eid, _ in rows[1] if eid not in stale]
    await aredis.xclaim(key, "g", "busy", 0, held, justid=True)
    counts = await c._delivery_counts(stale)
    assert counts == dict.fromkeys(stale, 2)  # read by "dead", then claimed by c1


async def test_a_redis_error_that_is_not_a_lost_group_stops_run(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # Only NOGROUP and UNBLOCKED mean "recreate and go on"; any other refusal is a bug or a
    # misconfiguration to surface, never to swallow in a loop.
    await aredis.set(stream_key(STREAM, bus_namespace), "not a stream")
    c = consumer(aredis, bus_namespace, Singles(), Store(aredis, bus_namespace))
    with pytest.raises(aioredis.ResponseError, match="WRONGTYPE"):
        await asyncio.wait_for(c.run(asyncio.Event()), timeout=30)
    assert c.stats.group_recreated == 0


async def test_a_stream_deleted_under_a_blocked_read_is_recreated(
    aredis: aioredis.Redis, bus_namespace: str, redis_url: str
) -> None:
    key = stream_key(STREAM, bus_namespace)
    name = f"{bus_namespace}-reader"  # the consumer's own connections, told apart in CLIENT LIST
    reader = aioredis.Redis.from_url(redis_url, decode_responses=True, client_name=name)
    store = Store(aredis, bus_namespace)
    singles = Singles()
    c = GroupConsumer(
        reader,
        STREAM,
        "g",
        "c1",
        singles,
        namespace=bus_namespace,
        batch_handler=store.batch,
        min_idle_ms=60_000,
        block_ms=60_000,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        # Blocked in XREADGROUP (flag b): found by polling, not by sleeping.
        await until(lambda: blocked_reader(aredis, name), timeout=30)
        await aredis.delete(key)  # Redis answers the blocked read with UNBLOCKED
        await until(lambda: group_exists(aredis, key), timeout=30)
        assert c.stats.group_recreated == 1
        await add(aredis, bus_namespace, 7)
        await until(lambda: done_is(singles, [7]), timeout=30)
        await until(lambda: blocked_reader(aredis, name), timeout=30)
    finally:
        stop.set()
        await aredis.delete(key)  # wakes the blocked read so run() sees stop
        await asyncio.wait_for(task, timeout=30)
        await reader.aclose()
    assert c.stats.redis_errors == 0


async def test_a_database_outage_uses_no_delivery_and_keeps_the_entry_claimed(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    key = stream_key(STREAM, bus_namespace)
    seen: list[tuple[int, int]] = []  # (times delivered, idle ms) at each try
    tried_at: list[float] = []

    async def handler(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        tried_at.append(asyncio.get_running_loop().time())
        (row,) = await aredis.xpending_range(key, "g", min=entry_id, max=entry_id, count=1)
        seen.append((int(row["times_delivered"]), int(row["time_since_delivered"])))
        if len(seen) < 3:
            raise ConnectionRefusedError(111, "Connect call failed")

    c = GroupConsumer(
        aredis,
        STREAM,
        "g",
        "c1",
        handler,
        namespace=bus_namespace,
        min_idle_ms=600,
        block_ms=100,
        max_deliveries=1,
    )
    await c.ensure_group()
    await add(aredis, bus_namespace, 1)
    c._stop = asyncio.Event()
    claims = 0
    xclaim = aredis.xclaim

    async def counted_xclaim(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await xclaim(*args, **kwargs)

    aredis.xclaim = counted_xclaim  # type: ignore[method-assign]
    await c.poll_once()
    # Claimed again every min_idle/3 (200 ms) of the 0.75 s of waits: a handful of XCLAIMs,
    # never a loop that hammers Redis (upper bound only: a slow machine makes fewer).
    assert 2 <= claims <= 20
    # Tries 1, 2, 3 after 0.25 s and 0.5 s more: 0.75 s > min idle, yet the entry was claimed
    # again all along (idle far below 600 ms at the third try) and never delivered again.
    assert [d for d, _ in seen] == [1, 1, 1]
    assert seen[2][1] < 600
    # It waited between tries (0.25 s, then 0.5 s; lower bounds only: a wait never ends early,
    # but a loaded machine may make it longer), rather than hammering the database.
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried_at)]
    assert gaps[0] >= 0.24 and gaps[1] >= 0.49
    assert (c.stats.outage_waits, c.stats.failed, c.stats.handled) == (2, 0, 1)
    assert (c.stats.dead_lettered, await dead_letters(aredis, bus_namespace)) == (0, [])
    assert await pending_ids(aredis, bus_namespace) == []


async def test_a_database_outage_at_stop_leaves_the_entry_pending_uncounted(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    stop = asyncio.Event()
    tries: list[str] = []

    async def handler(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        tries.append(entry_id)
        if len(tries) == 2:
            stop.set()  # the service is told to stop while the database is still away
        raise ConnectionRefusedError(111, "Connect call failed")

    c = GroupConsumer(
        aredis,
        STREAM,
        "g",
        "c1",
        handler,
        namespace=bus_namespace,
        min_idle_ms=600,
        block_ms=100,
        max_deliveries=1,  # its last delivery: counting the outage would dead-letter it
    )
    await c.ensure_group()
    (entry,) = await add(aredis, bus_namespace, 1)
    c._stop = stop
    await asyncio.wait_for(c.poll_once(), timeout=30)
    assert tries == [entry, entry]  # tried, waited once, tried again, then stopped
    assert (c.stats.outage_waits, c.stats.failed, c.stats.dead_lettered) == (1, 0, 0)
    assert await dead_letters(aredis, bus_namespace) == []
    assert await pending_ids(aredis, bus_namespace) == [entry]


async def test_a_handler_error_that_is_no_outage_is_not_waited_out(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # A query the database refused is the entry's failure: counted at once, no outage wait.
    singles = Singles(broken={1})
    c = GroupConsumer(
        aredis, STREAM, "g", "c1", singles, namespace=bus_namespace, block_ms=100, max_deliveries=2
    )
    await c.ensure_group()
    (entry,) = await add(aredis, bus_namespace, 1)
    await c.poll_once()
    assert singles.attempts == {1: 1}
    assert (c.stats.outage_waits, c.stats.failed) == (0, 1)
    assert await pending_ids(aredis, bus_namespace) == [entry]


async def until(predicate: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def blocked_reader(client: aioredis.Redis, name: str) -> bool:
    clients: Any = await client.client_list()
    return any(
        c.get("name") == name and c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "")
        for c in clients
    )


async def group_exists(client: aioredis.Redis, key: str) -> bool:
    try:
        groups: Any = await client.xinfo_groups(key)
    except aioredis.ResponseError:
        return False
    return any(g["name"] == "g" for g in groups)


async def done_is(singles: Singles, expected: list[int]) -> bool:
    return singles.done == expected


async def test_lag_is_the_consumers_own_group_among_several(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # Groups are listed by name: one that sorts before ours, fully caught up, is not ours.
    key = stream_key(STREAM, bus_namespace)
    await aredis.xgroup_create(key, "a-first", id="$", mkstream=True)
    await add(aredis, bus_namespace, 1, 2, 3)
    await aredis.xreadgroup("a-first", "x", {key: ">"}, count=10)
    c = GroupConsumer(aredis, STREAM, "g", "c1", Singles(), namespace=bus_namespace)
    await c.ensure_group()
    assert await c.lag() == 3


async def test_a_failure_while_stopping_is_still_the_entrys_failure(
    aredis: aioredis.Redis, bus_namespace: str
) -> None:
    # Only an outage is spared at stop; a handler error is counted (and, on the last
    # delivery, dead-lettered) whether or not the service is stopping.
    stop = asyncio.Event()

    async def handler(entry_id: str, env: EventEnvelope[dict[str, Any]]) -> None:
        stop.set()
        raise RuntimeError("bad entry")

    c = GroupConsumer(
        aredis, STREAM, "g", "c1", handler, namespace=bus_namespace, block_ms=100, max_deliveries=1
    )
    await c.ensure_group()
    (entry,) = await add(aredis, bus_namespace, 1)
    c._stop = stop
    await c.poll_once()
    assert (c.stats.failed, c.stats.dead_lettered) == (1, 1)
    assert [d["entry_id"] for d in await dead_letters(aredis, bus_namespace)] == [entry]
