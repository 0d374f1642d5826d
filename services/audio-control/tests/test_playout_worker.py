"""The playout worker on real Redis and PostgreSQL, with recording outputs and transmitters:
air order, preemption by an EAN (EOM sent, requeued), stop, failures contained, leases,
never twice on an output, and recovery after a dead worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, select

from audio_control.audio_files import wav_bytes
from audio_control.composer import compose
from audio_control.migrate import upgrade_url
from audio_control.playout.store import OutputSpec
from audio_control.playout.worker import PlayoutWorker, eom_tail
from audio_control.settings import AudioControlSettings
from audio_control.tables import (
    message_audio,
    messages,
    playout_airings,
    playout_items,
    playout_outputs,
)
from eas_same.decoder import decode_samples
from eas_same.header import SameHeader
from eas_schemas.envelope import EventEnvelope, decode_entry
from eas_schemas.playout_events import (
    PLAYOUT_COMMAND_TYPE,
    PLAYOUT_LEASE_KEY,
    PLAYOUT_REPLY_KEY,
    CommandKind,
    PlayoutCommand,
    PlayoutReply,
)
from eas_schemas.streams import PLAYOUT_COMMANDS, PLAYOUT_EVENTS, SYSTEM_ALARMS
from servicekit.bus import SyncBus, stream_key, sync_redis

pytestmark = pytest.mark.integration

RATE = 8000
SPEED = 8.0  # outputs here take 1/SPEED of real time per block


@dataclass
class RecordingSink:
    """An output that keeps what it was given and takes 1/SPEED of real time to play it."""

    output: str
    log: list[tuple[str, str, float]]
    fail_after_s: float | None = None
    blocks: list[np.ndarray] = field(default_factory=list)

    def write(self, block: np.ndarray) -> None:
        played = sum(len(b) for b in self.blocks) / RATE
        if self.fail_after_s is not None and played >= self.fail_after_s:
            raise OSError("device unplugged")
        self.blocks.append(block.copy())
        time.sleep(len(block) / RATE / SPEED)

    def finish(self) -> dict[str, Any]:
        self.log.append((self.output, "finish", time.monotonic()))
        return {"samples": sum(len(b) for b in self.blocks)}

    def abort(self) -> None:
        self.log.append((self.output, "abort", time.monotonic()))

    def level(self) -> tuple[float, float]:
        return (-6.0, -20.0)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


@dataclass
class RecordingKeyer:
    output: str
    log: list[tuple[str, str, float]]
    pre_roll_s: float = 0.05
    post_roll_s: float = 0.05

    def key(self, max_s: float) -> None:
        self.log.append((self.output, "key", time.monotonic()))

    def unkey(self) -> None:
        self.log.append((self.output, "unkey", time.monotonic()))

    def close(self) -> None:
        pass


class Rig:
    """Outputs that record, a worker per test, and helpers to queue messages."""

    def __init__(self, settings: AudioControlSettings) -> None:
        self.settings = settings
        self.log: list[tuple[str, str, float]] = []
        self.sinks: dict[str, list[RecordingSink]] = {}
        self.failing: set[str] = set()

    def sink(self, output: OutputSpec, rate: int, label: str = "") -> RecordingSink:
        assert rate == RATE or rate == 22_050
        s = RecordingSink(output.name, self.log, 0.5 if output.name in self.failing else None)
        self.sinks.setdefault(output.name, []).append(s)
        return s

    def keyer(self, output: OutputSpec) -> RecordingKeyer:
        return RecordingKeyer(output.name, self.log)

    def worker(self, instance: str = "w1") -> PlayoutWorker:
        settings = self.settings.model_copy(update={"instance": instance})
        return PlayoutWorker(settings, self.sink, self.keyer)  # type: ignore[arg-type]


def _message(event: str, seconds: float, narration: bool = True) -> tuple[str, bytes]:
    header = SameHeader.create(
        originator="CIV",
        event=event,
        locations=["039035"],
        duration="0030",
        issued=datetime.now(UTC),
        callsign="WTST/FM",
    )
    from audio_control.narration import AirClipDetail, Narration

    narr = None
    if narration:
        t = np.arange(round(seconds * RATE)) / RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        narr = Narration.from_audio("air_clip", tone, RATE, AirClipDetail(None, RATE), max_s=120)
    msg = compose(header, narr, rate=RATE, attention="broadcast", attention_s=8)
    return header.text, wav_bytes(msg.samples, RATE)


@pytest.fixture
def rig(database_url: str, redis_url: str, bus_namespace: str) -> Rig:
    asyncio.run(upgrade_url(database_url))
    settings = AudioControlSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        lease_ttl_s=1.0,
        playout_block_s=0.05,
        heartbeat_interval_s=60,
    )
    return Rig(settings)


def add_output(rig: Rig, name: str) -> int:
    w = rig.worker("setup")
    now = datetime.now(UTC)
    with w.store.begin() as conn:
        return int(
            conn.execute(
                insert(playout_outputs)
                .values(
                    name=name,
                    kind="null",
                    config="{}",
                    keying='{"kind": "none"}',
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
                .returning(playout_outputs.c.id)
            ).scalar_one()
        )


def queue(rig: Rig, event: str, precedence: int, seconds: float = 1.0, delay_s: float = 0) -> int:
    header, wav = _message(event, seconds)
    w = rig.worker("setup")
    now = datetime.now(UTC)
    klass = {0: "ean", 1: "national", 2: "state", 3: "local", 4: "test"}[precedence]
    with w.store.begin() as conn:
        mid = conn.execute(
            insert(messages)
            .values(
                kind="origination",
                header=header,
                originator="CIV",
                event_code=event,
                locations=json.dumps(["039035"]),
                duration="0030",
                issued=now,
                narration_source="air_clip",
                rate=RATE,
                duration_s=1.0,
                sha256="0" * 64,
                components="{}",
                created_at=now,
                created_by="test",
            )
            .returning(messages.c.id)
        ).scalar_one()
        conn.execute(insert(message_audio).values(message_id=mid, wav=wav))
        return int(
            conn.execute(
                insert(playout_items)
                .values(
                    message_id=mid,
                    header=header,
                    event_code=event,
                    precedence=precedence,
                    precedence_class=klass,
                    air_at=now + timedelta(seconds=delay_s),
                    state="queued",
                    queued_at=now,
                    reason="test",
                )
                .returning(playout_items.c.id)
            ).scalar_one()
        )


def items(rig: Rig) -> dict[int, Any]:
    with rig.worker("setup").store.engine.connect() as conn:
        return {r.id: r for r in conn.execute(select(playout_items)).all()}


def run_worker(worker: PlayoutWorker, until, timeout_s: float = 60) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert until(), "the worker did not get there in time"


def events(redis_url: str, ns: str) -> list[dict[str, Any]]:
    client = sync_redis(redis_url)
    return [
        {"type": f["type"], **decode_entry(f).data}
        for _, f in client.xrange(stream_key(PLAYOUT_EVENTS, ns))
    ]


def test_air_order_is_precedence_then_first_come(rig: Rig) -> None:
    add_output(rig, "fm")
    order = [
        queue(rig, "RWT", 4, 0.2),
        queue(rig, "TOR", 3, 0.2),
        queue(rig, "SVR", 3, 0.2),
        queue(rig, "CEM", 2, 0.2),
        queue(rig, "NPT", 1, 0.2),
    ]
    run_worker(rig.worker(), lambda: all(i.state == "aired" for i in items(rig).values()))
    played = sorted(items(rig).values(), key=lambda i: i.started_at)
    assert [i.id for i in played] == [order[4], order[3], order[1], order[2], order[0]]
    # Each message keyed before its first sample and unkeyed after its last.
    kinds = [k for _, k, _ in rig.log]
    assert kinds == ["key", "finish", "unkey"] * 5


def test_an_ean_preempts_a_local_message_which_ends_with_eom_and_airs_again(
    rig: Rig, redis_url: str, bus_namespace: str
) -> None:
    add_output(rig, "fm")
    local = queue(rig, "TOR", 3, seconds=40.0)
    worker = rig.worker()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        # The EAN arrives mid-message: once the output has been given half a second of the
        # local message's audio (a condition, not a sleep).
        while time.monotonic() < deadline and not (
            rig.sinks.get("fm") and sum(len(b) for b in rig.sinks["fm"][0].blocks) >= RATE // 2
        ):
            time.sleep(0.05)
        assert items(rig)[local].state == "playing"
        ean = queue(rig, "EAN", 0, seconds=0.5)
        queued_at = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = {i.id: i.state for i in items(rig).values()}
            requeued = [i for i in items(rig).values() if i.requeue_of == local]
            if state.get(ean) == "aired" and requeued and requeued[0].state == "aired":
                break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    rows = items(rig)
    assert rows[local].state == "interrupted" and "EAN" in rows[local].reason
    assert rows[ean].state == "aired"
    (again,) = [i for i in rows.values() if i.requeue_of == local]
    assert again.state == "aired" and again.started_at > rows[ean].started_at
    # The interrupted message ended with the EOM: decoders downstream leave alert mode.
    cut = rig.sinks["fm"][0].audio
    decoded, _ = decode_samples(cut.astype(np.float64), RATE)
    assert [e.type for e in decoded][-1] == "eom"
    assert np.allclose(cut[-len(eom_tail(RATE)) :], eom_tail(RATE))
    # Preemption came soon after the EAN was due (generous bound: outputs run at 1/8 speed).
    interrupted = next(t for o, k, t in rig.log if k == "finish")
    assert interrupted - queued_at < 5.0
    types = [e["type"] for e in events(redis_url, bus_namespace)]
    assert types.count("playout.interrupted") == 1 and types.count("playout.queued") == 1


def test_a_failing_output_does_not_block_the_others(
    rig: Rig, redis_url: str, bus_namespace: str
) -> None:
    add_output(rig, "fm")
    add_output(rig, "stream")
    rig.failing.add("stream")
    item = queue(rig, "TOR", 3, seconds=2.0)
    run_worker(rig.worker(), lambda: items(rig)[item].state in ("aired", "failed"))
    assert items(rig)[item].state == "aired"
    by_output = {
        e["output"]: e for e in events(redis_url, bus_namespace) if e["type"] != "playout.started"
    }
    assert by_output["fm"]["type"] == "playout.finished"
    assert by_output["stream"]["type"] == "playout.failed"
    assert "device unplugged" in by_output["stream"]["reason"]
    # The broken output's transmitter was unkeyed too.
    assert ("stream", "unkey") in [(o, k) for o, k, _ in rig.log]
    # And whoever watches the station's health hears of it.
    alarms = [
        decode_entry(f)
        for _, f in sync_redis(redis_url).xrange(stream_key(SYSTEM_ALARMS, bus_namespace))
    ]
    assert [(a.type, a.data["output"], a.data["item_id"]) for a in alarms] == [
        ("system.output_alarm", "stream", item)
    ]
    assert "device unplugged" in alarms[0].data["reason"]


def test_stop_command_ends_the_message_with_eom_and_answers_after_it_acted(
    rig: Rig, redis_url: str, bus_namespace: str
) -> None:
    add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=60.0)
    worker = rig.worker()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    client = sync_redis(redis_url)
    bus = SyncBus(client, bus_namespace)
    try:
        deadline = time.monotonic() + 30
        while items(rig)[item].state != "playing" and time.monotonic() < deadline:
            time.sleep(0.05)
        command = PlayoutCommand(
            command_id="stop-test-1",
            kind=CommandKind.STOP,
            actor="operator-1",
            at=datetime.now(UTC),
        )
        bus.publish(
            PLAYOUT_COMMANDS,
            EventEnvelope[PlayoutCommand](type=PLAYOUT_COMMAND_TYPE, source="t", data=command),
        )
        got = client.blpop([bus.key(f"{PLAYOUT_REPLY_KEY}:stop-test-1")], timeout=20)
        assert got is not None
        reply = PlayoutReply.model_validate_json(got[1])
        assert reply.ok and "EOM" in reply.detail
        deadline = time.monotonic() + 30
        while items(rig)[item].state == "playing" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    row = items(rig)[item]
    assert row.state == "interrupted" and row.actor == "operator-1"
    assert not [i for i in items(rig).values() if i.requeue_of == item]  # stopped: not again


def test_an_ean_decision_cuts_a_local_message_before_its_own_message_is_queued(
    rig: Rig, redis_url: str, bus_namespace: str
) -> None:
    add_output(rig, "fm")
    local = queue(rig, "TOR", 3, seconds=60.0)
    worker = rig.worker()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    bus = SyncBus(sync_redis(redis_url), bus_namespace)

    def preempt(precedence: int, decision_id: int) -> None:
        command = PlayoutCommand(
            command_id=f"preempt-{precedence}-test",
            kind=CommandKind.PREEMPT,
            precedence=precedence,
            decision_id=decision_id,
            actor="audio-control/test",
            at=datetime.now(UTC),
        )
        bus.publish(
            PLAYOUT_COMMANDS,
            EventEnvelope[PlayoutCommand](type=PLAYOUT_COMMAND_TYPE, source="t", data=command),
        )

    try:
        deadline = time.monotonic() + 30
        while items(rig)[local].state != "playing" and time.monotonic() < deadline:
            time.sleep(0.05)
        preempt(3, 40)  # the same precedence cuts nothing
        # Barrier: the worker reads commands in order, so once it answers a status sent after
        # the preempt, it has weighed the preempt. Had it cut, the cut would name decision 40
        # (the first reason sticks), which the reason check below refuses.
        status = PlayoutCommand(
            command_id="status-after-preempt",
            kind=CommandKind.STATUS,
            actor="audio-control/test",
            at=datetime.now(UTC),
        )
        bus.publish(
            PLAYOUT_COMMANDS,
            EventEnvelope[PlayoutCommand](type=PLAYOUT_COMMAND_TYPE, source="t", data=status),
        )
        got = bus.client.blpop([bus.key(f"{PLAYOUT_REPLY_KEY}:status-after-preempt")], timeout=20)
        assert got is not None
        answer = PlayoutReply.model_validate_json(got[1])
        assert answer.ok and answer.state["playing_item"] == local
        assert items(rig)[local].state == "playing"
        preempt(0, 41)
        while items(rig)[local].state == "playing" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    row = items(rig)[local]
    assert row.state == "interrupted" and "decision 41" in row.reason
    assert "decision 40" not in row.reason
    (again,) = [i for i in items(rig).values() if i.requeue_of == local]
    assert again.state in ("queued", "playing", "aired")
    cut = rig.sinks["fm"][0].audio
    assert [e.type for e in decode_samples(cut, RATE)[0]][-1] == "eom"
    assert np.allclose(cut[-len(eom_tail(RATE)) :], eom_tail(RATE))


def test_two_workers_one_output_one_plays(rig: Rig) -> None:
    add_output(rig, "fm")
    ids = [queue(rig, "TOR", 3, 0.3) for _ in range(3)]
    a, b = rig.worker("a"), rig.worker("b")
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in (a, b)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(items(rig)[i].state == "aired" for i in ids):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    assert all(items(rig)[i].state == "aired" for i in ids)
    assert sorted([a.aired, b.aired]) == [0, 3]
    with a.store.engine.connect() as conn:
        airings = conn.execute(select(playout_airings)).all()
    assert len(airings) == 3  # each message once on the output


def test_a_worker_that_died_mid_message_never_airs_it_again_but_sends_its_eom(rig: Rig) -> None:
    output_id = add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=1.0)
    _left_playing_by_a_dead_worker(rig, output_id, item)
    fresh = rig.worker("fresh")
    run_worker(fresh, lambda: items(rig)[item].state == "interrupted")
    (sink,) = rig.sinks["fm"]
    decoded, _ = decode_samples(sink.audio.astype(np.float64), 22_050)
    assert [e.type for e in decoded] == ["eom"]  # the EOM only: the message never again
    assert "not aired again" in items(rig)[item].reason
    # On the air, not into an unkeyed transmitter: keyed around it, and unkeyed after.
    assert [what for out, what, _ in rig.log if out == "fm"] == ["key", "finish", "unkey"]


def _left_playing_by_a_dead_worker(
    rig: Rig, output_id: int, item: int, airing: str = "playing"
) -> None:
    """What a killed worker leaves: the item playing, its airing on the output begun (or, for
    ``airing="aired"``, ended just before the kill)."""
    now = datetime.now(UTC)
    with rig.worker("setup").store.begin() as conn:
        conn.execute(
            playout_items.update().where(playout_items.c.id == item).values(state="playing")
        )
        conn.execute(
            insert(playout_airings).values(
                item_id=item,
                output_id=output_id,
                state=airing,
                started_at=now,
                finished_at=None if airing == "playing" else now,
                result="{}",
            )
        )


def test_a_dead_workers_lease_still_running_delays_its_eom_but_does_not_skip_it(
    rig: Rig, redis_url: str, bus_namespace: str
) -> None:
    # The scaled mode: the restarted worker is a new instance, and the killed one's lease on
    # the output runs out only after it starts. The cut message still gets its EOM and its
    # "interrupted" event once the output is taken (it used to be closed with neither).
    output_id = add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=1.0)
    _left_playing_by_a_dead_worker(rig, output_id, item)
    lease = SyncBus(sync_redis(redis_url), bus_namespace).key(f"{PLAYOUT_LEASE_KEY}:{output_id}")
    sync_redis(redis_url).set(lease, "dead", px=1500)
    run_worker(rig.worker("fresh"), lambda: items(rig)[item].state == "interrupted")
    (sink,) = rig.sinks["fm"]
    decoded, _ = decode_samples(sink.audio.astype(np.float64), 22_050)
    assert [e.type for e in decoded] == ["eom"]
    cut = [e for e in events(redis_url, bus_namespace) if e["type"] == "playout.interrupted"]
    assert [(e["item_id"], e["output"]) for e in cut] == [(item, "fm")]
    with rig.worker("setup").store.engine.connect() as conn:
        airing = conn.execute(select(playout_airings)).one()
    assert airing.state == "interrupted"


def _claimed_by_a_dead_worker(rig: Rig, item: int, started_at: datetime) -> None:
    """The item as a worker leaves it when killed between its claim and its first airing."""
    with rig.worker("setup").store.begin() as conn:
        conn.execute(
            playout_items.update()
            .where(playout_items.c.id == item)
            .values(state="playing", started_at=started_at)
        )


def test_an_item_claimed_by_a_worker_that_died_before_airing_it_airs(rig: Rig) -> None:
    add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=0.5)
    _claimed_by_a_dead_worker(rig, item, datetime.now(UTC) - timedelta(seconds=30))
    run_worker(rig.worker("fresh"), lambda: items(rig)[item].state == "aired")
    (sink,) = rig.sinks["fm"]
    assert [e.type for e in decode_samples(sink.audio.astype(np.float64), RATE)[0]][-1] == "eom"


class DatabaseAway(Exception):
    """What the store raises while PostgreSQL is stopped."""


def test_a_database_outage_on_air_neither_cuts_nor_loses_the_message(
    rig: Rig, redis_url: str, bus_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    # While the message plays, every database call fails (the EAN check, then the records of
    # the end); the message plays to its end and is recorded when the database is back. It
    # used to be abandoned mid-air: left "playing" for ever, with no end event and its audio
    # threads still running while the worker took the next item.
    add_output(rig, "fm")
    first = queue(rig, "TOR", 3, seconds=2.0)
    second = queue(rig, "SVR", 3, seconds=0.3)
    worker = rig.worker()
    store = worker.store
    away = threading.Event()
    failures: list[str] = []

    def unless_away(name: str) -> Any:
        real = getattr(store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if away.is_set():
                failures.append(name)
                if name == "finish_airing" and failures.count(name) >= 3:
                    away.clear()  # back after a few tries of the record
                else:
                    raise DatabaseAway("connection refused")
            return real(*args, **kwargs)

        return call

    real_start = store.start_airing

    def start_then_go_away(*args: Any, **kwargs: Any) -> Any:
        done = real_start(*args, **kwargs)
        if args[0].id == first:
            away.set()
        return done

    for name in ("preempting", "finish_airing", "finish_item", "claim_next", "outputs"):
        setattr(store, name, unless_away(name))
    store.start_airing = start_then_go_away  # type: ignore[method-assign]
    caplog.set_level("WARNING", logger="audio_control.playout.worker")
    run_worker(worker, lambda: items(rig)[second].state == "aired")
    rows = items(rig)
    assert rows[first].state == "aired" and rows[second].state == "aired"
    assert "preempting" in failures and failures.count("finish_airing") >= 3
    # Both whole, one after the other: the second began after the first's end was written.
    first_sink, second_sink = rig.sinks["fm"]
    for sink in (first_sink, second_sink):
        kinds = [e.type for e in decode_samples(sink.audio.astype(np.float64), RATE)[0]]
        assert kinds[0] == "header" and kinds[-1] == "eom"
    finishes = [t for o, k, t in rig.log if k == "finish"]
    assert len(finishes) == 2 and rows[second].started_at >= rows[first].finished_at
    ends = [e for e in events(redis_url, bus_namespace) if e["type"] == "playout.finished"]
    assert sorted(e["item_id"] for e in ends) == [first, second]
    assert "the message plays on" in caplog.text


def test_a_claim_too_young_to_judge_at_takeover_is_looked_at_again_and_airs(rig: Rig) -> None:
    # Killed between its claim and the first airing row, moments before the next worker took
    # the output: at takeover the claim could still be a live worker's, so it is left; it must
    # not be left for good (the alert would never air).
    add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=0.5)
    _claimed_by_a_dead_worker(rig, item, datetime.now(UTC))
    run_worker(rig.worker("fresh"), lambda: items(rig)[item].state == "aired")
    assert items(rig)[item].requeue_of is None  # the same item, not a copy


def test_an_item_whose_airings_all_ended_is_ended(rig: Rig) -> None:
    # A worker killed after its last airing was recorded but before the item's end.
    output_id = add_output(rig, "fm")
    item = queue(rig, "TOR", 3, seconds=0.5)
    _left_playing_by_a_dead_worker(rig, output_id, item, airing="aired")
    run_worker(rig.worker("fresh"), lambda: items(rig)[item].state == "aired")
    assert rig.sinks.get("fm", []) == []  # not aired again
