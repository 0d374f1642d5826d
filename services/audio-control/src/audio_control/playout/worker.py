"""The playout worker: airs queued messages in precedence order on every output it holds.

One process (``python -m audio_control.playout.worker``, supervised by audio-control in the
one-machine mode, or ``audio-control playout`` in the scaled one). Per cycle it renews the
leases of its outputs (an output is played by one worker at a time: a second copy started by
mistake waits instead of airing twice), answers operators' commands, and takes the next item
due (EAN, national, state, local, tests; first come first served within a class).

An item plays on each output in a thread of its own, so a stalled or broken output is reported
and never holds the others: key the transmitter (pre-roll), write the message block by block,
post-roll, unkey. Between blocks the main thread looks for an EAN that became due (preemption)
and for stop commands: an interrupted message ends with the EOM on every output, so receivers
downstream leave alert mode, and by setting airs again after what interrupted it. An item is
recorded per output before it starts (``playout_airings``), so after a restart nothing airs
twice on the same output; a message cut by a dead worker gets its EOM on restart instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis
import soundfile as sf
from sqlalchemy.exc import OperationalError

from audio_control.playout.store import OutputSpec, PlayoutStore, item_event, make_sync_engine
from audio_control.settings import AudioControlSettings
from eas_same.encoder import encode_burst, silence
from eas_schemas.envelope import EventEnvelope, decode_entry
from eas_schemas.playout_events import (
    AUDIO_OUTPUT_LEVEL_TYPE,
    PLAYOUT_LEASE_KEY,
    PLAYOUT_LEVEL_KEY,
    PLAYOUT_REPLY_KEY,
    PLAYOUT_WORKER_KEY,
    CommandKind,
    ItemState,
    OutputLevel,
    PlayoutCommand,
    PlayoutReply,
)
from eas_schemas.streams import AUDIO_METRICS, PLAYOUT_COMMANDS
from eas_schemas.system_events import OutputAlarm
from servicekit.bus import SyncBus, fields_to_str, sync_redis
from servicekit.db import database_unreachable
from servicekit.heartbeat import SyncHeartbeat
from servicekit.web import UNAVAILABLE

log = logging.getLogger(__name__)

SERVICE = "audio-control-playout"
FloatArray = npt.NDArray[np.float32]
LEVEL_INTERVAL_S = 0.25
LEVEL_KEY_TTL_S = 24 * 3600
# Renew when a third of the lease is left; give it up only by letting it lapse.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Sink(Protocol):
    """One message on one output (``audio_control.playout.outputs`` makes them); ``level()``
    is ``(peak_dbfs, rms_dbfs)`` of the last block written."""

    def write(self, block: FloatArray) -> None: ...
    def finish(self) -> Any: ...
    def abort(self) -> None: ...
    def level(self) -> tuple[float, float]: ...


class Keying(Protocol):
    """An output's transmitter, through its keyer (``audio_control.playout.keying``)."""

    pre_roll_s: float
    post_roll_s: float

    def key(self, max_s: float) -> Any: ...
    def unkey(self) -> Any: ...
    def close(self) -> None: ...


class SinkFactory(Protocol):
    """A sink for one message on ``output`` at ``rate``; ``label`` says what airs (the WAV
    folder names its files by it)."""

    def __call__(self, output: OutputSpec, rate: int, label: str = ..., /) -> Sink: ...


KeyingFactory = Callable[[OutputSpec], Keying]


# What an item's record says when it ended aired, or failed on every output.
_ENDED = {ItemState.AIRED: "Aired.", ItemState.FAILED: "Every output failed."}


def _outcome(states: set[ItemState]) -> ItemState:
    """An item's end from its airings' ends: cut anywhere is interrupted (its EOM went out
    there), else aired anywhere is aired, else every output failed."""
    if ItemState.INTERRUPTED in states:
        return ItemState.INTERRUPTED
    return ItemState.AIRED if ItemState.AIRED in states else ItemState.FAILED


def eom_tail(rate: int) -> FloatArray:
    """EOM three times, a second apart: what ends every message, and every interruption."""
    eom = encode_burst("NNNN", rate)
    gap = silence(1.0, rate)
    return np.concatenate([gap, eom, gap, eom, gap, eom, gap]).astype(np.float32)


@dataclass
class _Run:
    """One output's part of one item."""

    output: OutputSpec
    abort: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    state: ItemState = ItemState.PLAYING
    result: dict[str, Any] = field(default_factory=dict)
    played_s: float = 0.0
    error: str | None = None
    # When the output got the message's first sample, and when an interruption cut it: the
    # log's "on air at", and what the playout latency benchmark measures.
    first_sample_at: datetime | None = None
    cut_at: datetime | None = None


class PlayoutWorker:
    def __init__(
        self,
        settings: AudioControlSettings,
        sinks: SinkFactory,
        keyers: KeyingFactory,
        *,
        client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or sync_redis(settings.redis_url)
        self.bus = SyncBus(self.client, settings.bus_namespace)
        self.source = f"{SERVICE}/{settings.instance}"
        self.store = PlayoutStore(make_sync_engine(settings.database_url), self.bus, self.source)
        self.sinks = sinks
        self.keyers = keyers
        self.heartbeat = SyncHeartbeat(
            self.bus, SERVICE, settings.instance, "0.1.0", settings.heartbeat_interval_s
        )
        self._renew = self.client.register_script(_RENEW)
        self._commands_after = "$"
        self.held: dict[int, OutputSpec] = {}
        # Outputs newly held (at start, or taken over from a worker whose lease lapsed): what
        # a dead worker left on air there is ended before anything new plays on them.
        self._to_recover: set[int] = set()
        self._stop = threading.Event()
        self._next_reconcile = 0.0
        self.current: Any = None
        self.aired = 0
        self.interrupted = 0
        self.failed = 0

    # ---- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        self._commands_after = self._last_command_id()
        waiting_for_database = False
        while not stop.is_set():
            try:
                self.cycle(stop)
                if waiting_for_database:
                    log.info("playout: the database is back")
                    waiting_for_database = False
            except Exception as exc:
                if database_unreachable(exc) or isinstance(exc, OperationalError):
                    # Nothing can be claimed or recorded until it returns; say so on the bus
                    # (which is up) instead of falling silent. Logged once per outage.
                    if not waiting_for_database:
                        log.warning("playout waits for the database: %s", exc)
                        waiting_for_database = True
                    self.heartbeat.maybe_beat(self.figures(), checks={"database": UNAVAILABLE})
                else:
                    log.exception("playout cycle failed; retrying")
                stop.wait(1.0)
        self.release()

    def cycle(self, stop: threading.Event) -> bool:
        """One pass: leases, commands, and the next item due. True if an item played."""
        self.hold_outputs()  # reads the outputs: the database answered
        self.heartbeat.maybe_beat(self.figures(), bool(self.held), {"database": "ok"})
        for command in self.read_commands(block_ms=0):
            self.answer_idle(command)
        if not self.held:
            stop.wait(0.5)
            return False
        if self._to_recover:
            self.recover(self._to_recover & set(self.held))
            self._to_recover.clear()
        elif time.monotonic() >= self._next_reconcile:
            self.reconcile_items()
        item = self.store.claim_next(utcnow())
        if item is None:
            for command in self.read_commands(block_ms=100):
                self.answer_idle(command)
            return False
        self.play(item)
        return True

    def figures(self) -> dict[str, float]:
        return {
            "outputs_held": float(len(self.held)),
            "aired": float(self.aired),
            "interrupted": float(self.interrupted),
            "failed": float(self.failed),
            "playing": 1.0 if self.current is not None else 0.0,
        }

    # ---- leases ------------------------------------------------------------------------

    def _lease_key(self, output: OutputSpec) -> str:
        return self.bus.key(f"{PLAYOUT_LEASE_KEY}:{output.id}")

    def hold_outputs(self) -> None:
        held = {o.id: o for o in self.store.outputs() if self._hold(o)}
        for gone in set(self.held) - set(held):
            log.warning("playout lost output %s", self.held[gone].name)
        self._to_recover |= set(held) - set(self.held)
        self.held = held
        self._announce_presence()

    def renew_held(self) -> set[int]:
        """While on air: renew the leases of the outputs held (Redis only, so a database
        outage cannot make them lapse mid-message); the ids of those lost."""
        lost = {oid for oid, output in self.held.items() if not self._hold(output)}
        self._announce_presence()
        return lost

    def _hold(self, output: OutputSpec) -> bool:
        """Take the output's lease if it is free (or lapsed: Redis was away longer than the
        lease and nobody took it), else renew it if it is ours; False if another holds it."""
        ttl_ms = int(self.settings.lease_ttl_s * 1000)
        key, me = self._lease_key(output), self.settings.instance
        return bool(
            self.client.set(key, me, nx=True, px=ttl_ms)
            or self._renew(keys=[key], args=[me, ttl_ms])
        )

    def _announce_presence(self) -> None:
        ttl_ms = int(self.settings.lease_ttl_s * 1000)
        self.client.set(self._presence_key(), ttl_ms, px=ttl_ms)

    def _presence_key(self) -> str:
        return self.bus.key(f"{PLAYOUT_WORKER_KEY}:{self.settings.instance}")

    def release(self) -> None:
        for output in self.held.values():
            key = self._lease_key(output)
            if self.client.get(key) == self.settings.instance:
                self.client.delete(key)
        self.held = {}
        self.client.delete(self._presence_key())

    # ---- playing -----------------------------------------------------------------------

    def play(self, item: Any) -> None:
        self.current = item
        try:
            self._play(item)
        finally:
            self.current = None

    def _play(self, item: Any) -> None:
        try:
            samples, rate = _decode(self.store.audio(item.message_id))
            done = self.store.airings(item.id)
            runs = [_Run(o) for o in self.held.values() if o.id not in done]
            now = utcnow()
            if not runs:
                reason = (
                    "No output to air it on: configure one (GET /api/audio/outputs)."
                    if not self.held
                    else "Already aired on every output this worker holds."
                )
                state = ItemState.FAILED if not done else ItemState.AIRED
                self.store.finish_item(item.id, state, now, reason, None)
                return
            started = []
            for run in runs:
                event = item_event(
                    item, item.id, ItemState.PLAYING, now, "On air.", output=run.output
                )
                if self.store.start_airing(item, run.output, now, event):
                    started.append(run)
        except Exception:
            # Nothing went on air yet: the item goes back to the queue, to air when this works.
            self._recorded(
                f"the return of item {item.id} to the queue", self.store.unclaim, item.id
            )
            raise
        length_s = len(samples) / rate
        tail = eom_tail(rate)
        for run in started:
            run.thread = threading.Thread(
                target=self._play_on,
                args=(run, item, samples, rate, tail, length_s),
                name=f"playout-{run.output.name}",
                daemon=True,
            )
            run.thread.start()
        interrupted_by: tuple[str, str | None, bool] | None = None
        next_lease = time.monotonic() + self.settings.lease_ttl_s / 3
        # The message is on air: a database or Redis outage now must not abandon it (the
        # audio needs neither). Checks that fail are skipped until they work again; the
        # message plays to its end and is recorded when the database answers.
        trouble: set[str] = set()
        while any(r.thread is not None and r.thread.is_alive() for r in started):
            for r in started:
                if r.thread is not None:
                    r.thread.join(timeout=0.05)
            if interrupted_by is None:
                ean = self._while_on_air(
                    "the EAN check", trouble, self.store.preempting, utcnow(), item.precedence
                )
                if ean is not None:
                    interrupted_by = (f"Interrupted by the EAN (item {ean.id}).", None, True)
            for command in (
                self._while_on_air("reading commands", trouble, self.read_commands, 0) or []
            ):
                if command.kind is CommandKind.PREEMPT:
                    if (
                        interrupted_by is None
                        and command.precedence is not None
                        and item.precedence > command.precedence
                    ):
                        why = f"Interrupted by the EAN (decision {command.decision_id})."
                        interrupted_by = (why, None, True)
                elif command.kind is CommandKind.STOP and interrupted_by is None:
                    interrupted_by = (f"Stopped by {command.actor}.", command.actor, False)
                    self.reply(command, True, f"stopping item {item.id}: EOM on every output")
                else:
                    self.answer_busy(command, item)
            if interrupted_by is not None:
                for r in started:
                    r.abort.set()
            if time.monotonic() >= next_lease:
                lost = self._while_on_air("renewing the output leases", trouble, self.renew_held)
                for r in started:
                    if r.output.id in (lost or ()):
                        r.error = "the output's lease was lost to another worker"
                        r.abort.set()
                next_lease = time.monotonic() + self.settings.lease_ttl_s / 3
        self._settle(item, started, interrupted_by)

    def _while_on_air(
        self, what: str, trouble: set[str], call: Callable[..., Any], *args: Any
    ) -> Any:
        """``call(*args)``, or None if it fails (logged once per message and kind of check)."""
        try:
            result = call(*args)
        except Exception as exc:
            if what not in trouble:
                trouble.add(what)
                log.warning(
                    "on air, %s failed (%s: %s); the message plays on",
                    what,
                    type(exc).__name__,
                    exc,
                )
            return None
        trouble.discard(what)
        return result

    def _play_on(
        self,
        run: _Run,
        item: Any,
        samples: FloatArray,
        rate: int,
        tail: FloatArray,
        length_s: float,
    ) -> None:
        keying: Keying | None = None
        sink: Sink | None = None
        try:
            sink = self.sinks(run.output, rate, f"item{item.id}-{item.header}")
            keying = self.keyers(run.output)
            keying.key(max_s=length_s + keying.pre_roll_s + keying.post_roll_s + 5.0)
            if keying.pre_roll_s:
                time.sleep(keying.pre_roll_s)
            block = max(1, round(self.settings.playout_block_s * rate))
            next_level = 0.0
            for start in range(0, len(samples), block):
                if run.abort.is_set():
                    # Receivers downstream must leave alert mode: the EOM, then stop.
                    run.cut_at = utcnow()
                    for t in range(0, len(tail), block):
                        sink.write(tail[t : t + block])
                    run.state = ItemState.INTERRUPTED
                    break
                if run.first_sample_at is None:
                    run.first_sample_at = utcnow()
                sink.write(samples[start : start + block])
                run.played_s = (start + block) / rate
                if time.monotonic() >= next_level:
                    self._publish_level(run.output, sink, item.id, playing=True)
                    next_level = time.monotonic() + LEVEL_INTERVAL_S
            run.result = _as_dict(sink.finish())
            if run.state is ItemState.PLAYING:
                run.state = ItemState.AIRED
            if keying.post_roll_s:
                time.sleep(keying.post_roll_s)
        except Exception as exc:
            log.exception("output %s failed on item %s", run.output.name, item.id)
            run.state = ItemState.FAILED
            run.error = f"{type(exc).__name__}: {exc}"
            if sink is not None:
                try:
                    sink.abort()
                except Exception:
                    log.exception("output %s did not abort cleanly", run.output.name)
        finally:
            if keying is not None:
                try:
                    keying.unkey()
                finally:
                    keying.close()
            if sink is not None:
                self._publish_level(run.output, sink, item.id, playing=False)

    def _settle(
        self, item: Any, runs: list[_Run], interrupted_by: tuple[str, str | None, bool] | None
    ) -> None:
        now = utcnow()
        for run in runs:
            times = {
                "first_sample_at": _iso(run.first_sample_at),
                "cut_at": _iso(run.cut_at),
            }
            run.result = {**run.result, **{k: v for k, v in times.items() if v is not None}}
            if run.state is ItemState.AIRED:
                reason = f"Aired ({run.played_s:.1f} s)."
            elif run.state is ItemState.INTERRUPTED:
                reason = (interrupted_by[0] if interrupted_by else "Interrupted.") + " EOM sent."
            else:
                reason = f"The output failed: {run.error}"
            event = item_event(
                item,
                item.id,
                run.state,
                now,
                reason,
                output=run.output,
                duration_s=round(run.played_s, 3),
                actor=interrupted_by[1] if interrupted_by else None,
                detail={k: v for k, v in run.result.items() if _scalar(v)},
            )
            result = {**run.result, "error": run.error, "played_s": run.played_s}
            alarm = (
                OutputAlarm(
                    output=run.output.name,
                    output_kind=run.output.kind,
                    item_id=item.id,
                    header=item.header,
                    reason=reason,
                    at=now,
                )
                if run.state is ItemState.FAILED
                else None
            )
            self._recorded(
                f"item {item.id} on {run.output.name}",
                self.store.finish_airing,
                item.id,
                run.output.id,
                run.state,
                now,
                result,
                event,
                alarm,
            )
        state = _outcome({r.state for r in runs})
        if state is ItemState.INTERRUPTED:
            reason = interrupted_by[0] if interrupted_by else ""
            self.interrupted += 1
        else:
            reason = _ENDED[state]
            if state is ItemState.AIRED:
                self.aired += 1
            else:
                self.failed += 1
        actor = interrupted_by[1] if interrupted_by else None
        self._recorded(
            f"item {item.id}", self.store.finish_item, item.id, state, now, reason, actor
        )
        if (
            state is ItemState.INTERRUPTED
            and interrupted_by is not None
            and interrupted_by[2]
            and self.settings.requeue_interrupted
        ):
            self._recorded(
                f"the repeat of item {item.id}",
                self.store.requeue,
                item,
                now,
                f"Requeued after it was interrupted (item {item.id}).",
            )

    def _recorded(self, what: str, write: Callable[..., Any], *args: Any) -> None:
        """What went on air is recorded, however long the database is away: the station log
        and the events must say it (and a message left "playing" would never end). Given up
        only when the worker is stopped; then the next worker ends it on its outputs."""
        delay = 0.5
        while True:
            try:
                write(*args)
                return
            except Exception as exc:
                if self._stop.is_set():
                    log.error("playout stopping: %s not recorded (%s)", what, exc)
                    raise
                log.warning("recording %s failed (%s); retrying in %.0f s", what, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def recover(self, output_ids: set[int]) -> None:
        """What a dead worker left on the outputs just taken: a message cut on one of them gets
        its EOM there and is never played again there; an item it claimed but never started
        anywhere goes back to the queue (it never went on air: airing it is right)."""
        now = utcnow()
        for output_id in sorted(output_ids):
            output = self.held[output_id]
            for item in self.store.playing_on(output_id):
                try:
                    self._air_eom(output, f"item{item.id}-EOM-after-restart")
                    note = "EOM sent on restart"
                except Exception as exc:
                    note = f"EOM could not be sent on restart: {exc}"
                event = item_event(
                    item,
                    item.id,
                    ItemState.INTERRUPTED,
                    now,
                    f"The playout worker stopped while it was on air; {note}.",
                    output=output,
                )
                self.store.finish_airing(item.id, output_id, ItemState.INTERRUPTED, now, {}, event)
        self.reconcile_items()

    def reconcile_items(self) -> None:
        """Items left "playing" by a worker that died: ended where every airing has ended
        (recovered cut airings, or a worker killed between its last airing and the item's
        end); back in the queue where no output ever started them and the claim is older than
        any live worker takes to start one (a live claimer writes its airing rows at once).
        Run on every takeover and every lease period: a claim too young at takeover must still
        be looked at again, or the alert would never air."""
        now = utcnow()
        self._next_reconcile = time.monotonic() + self.settings.lease_ttl_s
        for item in self.store.playing():
            if self.current is not None and item.id == self.current.id:
                continue
            states = {ItemState(v) for v in self.store.airings(item.id).values()}
            if states and ItemState.PLAYING not in states:
                state = _outcome(states)
                if state is ItemState.INTERRUPTED:
                    reason = "The playout worker stopped while it was on air; not aired again."
                else:
                    reason = _ENDED[state]
                self.store.finish_item(item.id, state, now, reason, None)
            elif (
                not states
                and item.started_at is not None
                and ((now - item.started_at).total_seconds() > 2 * self.settings.lease_ttl_s)
            ):
                log.warning(
                    "item %s was claimed by a worker that died before airing it: queued again",
                    item.id,
                )
                self.store.unclaim(item.id)

    def _air_eom(self, output: OutputSpec, label: str) -> None:
        """The EOM on ``output`` with its transmitter keyed, as a message goes out: the
        receivers that heard the cut header are on the air side of the keying too."""
        rate = 22_050
        tail = eom_tail(rate)
        sink = self.sinks(output, rate, label)
        keying = self.keyers(output)
        try:
            keying.key(max_s=len(tail) / rate + keying.pre_roll_s + keying.post_roll_s + 5.0)
            if keying.pre_roll_s:
                time.sleep(keying.pre_roll_s)
            sink.write(tail)
            sink.finish()
            if keying.post_roll_s:
                time.sleep(keying.post_roll_s)
        except Exception:
            with contextlib.suppress(Exception):
                sink.abort()
            raise
        finally:
            try:
                keying.unkey()
            finally:
                keying.close()

    # ---- commands ----------------------------------------------------------------------

    def _last_command_id(self) -> str:
        last = self.client.xrevrange(self.bus.key(PLAYOUT_COMMANDS), count=1)
        return str(last[0][0]) if last else "0-0"

    def read_commands(self, block_ms: int) -> list[PlayoutCommand]:
        key = self.bus.key(PLAYOUT_COMMANDS)
        got: Any = self.client.xread(
            {key: self._commands_after}, count=20, block=block_ms if block_ms else None
        )
        commands: list[PlayoutCommand] = []
        for _, entries in got or []:
            for entry_id, fields in entries:
                self._commands_after = str(entry_id)
                try:
                    envelope = decode_entry(fields_to_str(fields))
                    commands.append(PlayoutCommand.model_validate(envelope.data))
                except ValueError as exc:
                    log.warning("playout command %s refused: %s", entry_id, exc)
        return commands

    def reply(self, command: PlayoutCommand, ok: bool, detail: str, **state: Any) -> None:
        key = self.bus.key(f"{PLAYOUT_REPLY_KEY}:{command.command_id}")
        body = PlayoutReply(command_id=command.command_id, ok=ok, detail=detail, state=state)
        pipe = self.client.pipeline()
        pipe.rpush(key, body.model_dump_json())
        pipe.expire(key, 120)
        pipe.execute()

    def status(self) -> dict[str, Any]:
        return {
            "instance": self.settings.instance,
            "outputs": ", ".join(o.name for o in self.held.values()),
            "playing_item": int(self.current.id) if self.current is not None else None,
        }

    def answer_busy(self, command: PlayoutCommand, item: Any) -> None:
        if command.kind is CommandKind.STATUS:
            self.reply(command, True, f"on air: item {item.id}", **self.status())
        else:
            self.reply(
                command,
                False,
                f"a message is on air (item {item.id}); {command.kind.value} waits until it ends",
                **self.status(),
            )

    def answer_idle(self, command: PlayoutCommand) -> None:
        kind = command.kind
        if kind is CommandKind.PREEMPT:
            return  # nothing on air to cut; the EAN is taken first when it is queued
        if kind is CommandKind.STATUS:
            self.reply(command, True, "idle", **self.status())
            return
        if kind is CommandKind.STOP:
            self.reply(command, False, "nothing is on air", **self.status())
            return
        output = next((o for o in self.held.values() if o.name == command.output), None)
        if output is None:
            self.reply(
                command,
                False,
                f"output {command.output!r} is not held by this worker",
                **self.status(),
            )
            return
        seconds = command.seconds or 2.0
        try:
            if kind is CommandKind.TEST_TONE:
                sink = self.sinks(output, 22_050, "test-tone")
                sink.write(test_tone(seconds, 22_050))
                result = _as_dict(sink.finish())
                self.reply(
                    command,
                    True,
                    f"{seconds:g} s of 1 kHz played on {output.name}",
                    **{k: v for k, v in result.items() if _scalar(v)},
                )
            elif kind in (CommandKind.KEY, CommandKind.UNKEY):
                keying = self.keyers(output)
                try:
                    keying.key(max_s=seconds)
                    time.sleep(seconds)
                finally:
                    keying.unkey()
                    keying.close()
                self.reply(
                    command,
                    True,
                    f"{output.name}'s transmitter keyed for {seconds:g} s, then unkeyed",
                    keyed=False,
                )
        except Exception as exc:
            self.reply(command, False, f"{kind.value} on {output.name} failed: {exc}")

    # ---- levels ------------------------------------------------------------------------

    def _publish_level(self, output: OutputSpec, sink: Sink, item_id: int, playing: bool) -> None:
        try:
            peak, rms = sink.level()
            level = OutputLevel(
                output=output.name,
                peak_dbfs=min(0.0, peak),
                rms_dbfs=min(0.0, rms),
                playing=playing,
                item_id=item_id,
                window_s=LEVEL_INTERVAL_S,
                at=utcnow(),
            )
            self.bus.publish(
                AUDIO_METRICS,
                EventEnvelope[OutputLevel](
                    type=AUDIO_OUTPUT_LEVEL_TYPE,
                    source=self.source,
                    subject=output.name,
                    data=level,
                ),
            )
            # The last level per output, for GET /api/audio/outputs: one read, where the
            # metrics stream would have to be scanned (and is trimmed within minutes).
            self.client.set(
                self.bus.key(f"{PLAYOUT_LEVEL_KEY}:{output.id}"),
                level.model_dump_json(),
                ex=LEVEL_KEY_TTL_S,
            )
        except Exception as exc:
            log.debug("level of %s not published: %s", output.name, exc)


def test_tone(seconds: float, rate: int, hz: float = 1000.0, dbfs: float = -20.0) -> FloatArray:
    t = np.arange(round(seconds * rate)) / rate
    return (10 ** (dbfs / 20) * np.sin(2 * math.pi * hz * t)).astype(np.float32)


def _decode(wav: bytes) -> tuple[FloatArray, int]:
    data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=False)
    samples = np.asarray(data, dtype=np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=1).astype(np.float32)
    return samples, int(rate)


def _as_dict(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    if hasattr(result, "to_dict"):
        return dict(result.to_dict())
    if hasattr(result, "__dataclass_fields__"):
        return {k: getattr(result, k) for k in result.__dataclass_fields__}
    return {"result": str(result)}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def main() -> int:  # pragma: no cover - the process entry point, run by the supervisor
    from audio_control.playout.outputs import open_output
    from servicekit.logs import configure_logging

    settings = AudioControlSettings()
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = PlayoutWorker(settings, open_output, keyer_for)
    worker.run(stop)
    return 0


def keyer_for(output: OutputSpec) -> Keying:
    from audio_control.playout.keying import keying_for

    return keying_for(output.keying)


if __name__ == "__main__":
    raise SystemExit(main())
