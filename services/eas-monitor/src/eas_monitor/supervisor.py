"""Keeps one worker process per wanted input alive, and says so on ``monitor.status``.

- A worker that exits is restarted after a backoff that doubles up to a cap and resets once
  the input has run healthy for a while; one that reports a configuration error (exit 78) is
  marked ``failed`` and not retried until started again; a file that played to its end is
  ``finished``.
- A worker whose sample count has not moved for the stall timeout is killed and restarted the
  same way (``stalled``), whether it hangs, or its source delivers nothing.
- Every change of an input's state is published at once; unchanged status is re-sent only
  every ``status_refresh_s`` (samples/s alone is not a change).
- eas-monitor is one instance per station: inputs are physical (a sound card opens once), so
  the supervisor lives in the API process and start/stop act on it directly.
- Each input is held by a lease in Redis (``MONITOR_INPUT_LEASE_KEY``, renewed every third of
  its TTL): a second copy started by mistake finds it held, stands by (``standby``, publishing
  nothing for that input) and starts the worker only once the holder stopped renewing. A holder
  that finds its lease taken stops its worker at once. If Redis cannot be reached the holder
  keeps decoding: a missed alert is worse than a doubled hearing, which the aggregator's
  de-duplication (also in Redis) would collapse anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eas_monitor.inputs import InputConfig
from eas_monitor.protocol import EXIT_CONFIG, WorkerSettings, WorkerSpec
from eas_monitor.settings import EasMonitorSettings
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import (
    MONITOR_INPUT_LEASE_KEY,
    MONITOR_STATUS_TYPE,
    DecoderState,
    InputKind,
    InputState,
    MonitorStatus,
)
from eas_schemas.streams import MONITOR_STATUS
from servicekit.bus import AsyncBus
from servicekit.outbound import redact

log = logging.getLogger(__name__)

CommandFactory = Callable[[int], list[str]]
# Extend the lease only while it is still ours; give it up only if it is ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class InputRecord:
    id: int
    name: str
    config: InputConfig
    wanted_running: bool

    @property
    def kind(self) -> InputKind:
        return InputKind(self.config.kind)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    record: InputRecord
    state: InputState = InputState.STOPPED
    since: datetime = field(default_factory=_now)
    proc: asyncio.subprocess.Process | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    samples_total: int = 0
    samples_per_s: float = 0.0
    signal: bool = False
    decoder_state: DecoderState = DecoderState.IDLE
    last_header: str | None = None
    last_header_at: datetime | None = None
    restarts: int = 0
    own_errors: int = 0
    worker_errors_done: int = 0
    worker_errors: int = 0
    last_error: str | None = None
    last_sample_at: float = 0.0
    running_since: float = 0.0
    backoff: float = 0.0
    next_start: float = 0.0
    spawned_once: bool = False
    stopping: bool = False
    finished: bool = False
    fatal: str | None = None
    kill_reason: str | None = None
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    published_sig: tuple[Any, ...] | None = None
    published_at: float = 0.0
    lease_held: bool = False
    lease_renew_at: float = 0.0
    lease_holder: str | None = None  # who holds it, while this copy stands by

    @property
    def errors(self) -> int:
        return self.own_errors + self.worker_errors_done + self.worker_errors

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def set_state(self, state: InputState) -> None:
        if state != self.state:
            self.state = state
            self.since = _now()

    def status(self) -> MonitorStatus:
        return MonitorStatus(
            input_id=self.record.id,
            name=self.record.name,
            kind=self.record.kind,
            state=self.state,
            running=self.state == InputState.RUNNING and self.alive,
            signal_present=self.signal and self.alive,
            decoder_state=self.decoder_state if self.alive else DecoderState.IDLE,
            samples_per_s=self.samples_per_s if self.alive else 0.0,
            samples_total=self.samples_total,
            pid=self.proc.pid if self.alive and self.proc else None,
            last_header=self.last_header,
            last_header_at=self.last_header_at,
            restarts=self.restarts,
            errors=self.errors,
            # Errors quote URLs (a stream's, a redirect's): never with their credentials.
            last_error=redact(self.last_error) if self.last_error else None,
            since=self.since,
            updated_at=_now(),
        )


def worker_command(python: str) -> CommandFactory:
    def command(input_id: int) -> list[str]:
        return [python, "-m", "eas_monitor.worker", "--input-id", str(input_id)]

    return command


class Supervisor:
    def __init__(
        self,
        settings: EasMonitorSettings,
        bus: AsyncBus,
        *,
        command: CommandFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.command = command or worker_command(settings.python_executable)
        self.clock = clock
        self.source = f"eas-monitor/{settings.instance}"
        self.runtimes: dict[int, Runtime] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.published = 0
        # Held across "write the database, then apply it here" (API) and "read the database,
        # then apply it" (reconcile), so a reconcile never applies a state read before a
        # concurrent start/stop committed.
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, records: list[InputRecord]) -> None:
        await self.sync(records)
        self._task = asyncio.create_task(self._loop(), name="supervisor")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(
            *(self._terminate(rt, InputState.STOPPED) for rt in self.runtimes.values()),
            return_exceptions=True,
        )

    async def _loop(self) -> None:
        while not self._stop.is_set():
            for rt in list(self.runtimes.values()):
                try:
                    await self._tick(rt)
                except Exception:
                    log.exception("supervising input %s failed", rt.record.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.2)

    # ------------------------------------------------------------------ commands
    async def sync(self, records: list[InputRecord]) -> None:
        """Bring the set of runtimes in line with the configured inputs."""
        seen = set()
        for rec in records:
            seen.add(rec.id)
            await self.upsert(rec)
        for input_id in [i for i in self.runtimes if i not in seen]:
            await self.remove(input_id)

    async def upsert(self, rec: InputRecord, *, kick: bool = False) -> Runtime:
        """Apply an input's configuration and wanted state; ``kick`` (an explicit start)
        also skips a pending restart backoff."""
        rt = self.runtimes.get(rec.id)
        asked = kick  # an explicit start, or wanted_running just turned on
        if rt is None:
            rt = Runtime(record=rec, backoff=self.settings.restart_backoff_s)
            self.runtimes[rec.id] = rt
            asked = True
            if not rec.wanted_running:
                # A wanted one is announced by its start, or not at all if another copy of
                # eas-monitor holds it (a "stopped" from this one would contradict the holder).
                await self.publish(rt, force=True)
        elif rt.record != rec:
            asked = asked or (rec.wanted_running and not rt.record.wanted_running)
            config_changed = rt.record.config != rec.config or rt.record.name != rec.name
            rt.record = rec
            if config_changed and rt.alive and rec.wanted_running:
                await self._terminate(rt, InputState.STARTING)
                rt.next_start = 0.0
        if rec.wanted_running:
            # failed/finished inputs stay so until asked again; the loop handles backoff
            if asked and not rt.alive and rt.state != InputState.STARTING:
                rt.backoff = self.settings.restart_backoff_s
                await self._spawn(rt)
        elif rt.alive or rt.state != InputState.STOPPED:
            await self._terminate(rt, InputState.STOPPED)
        return rt

    async def remove(self, input_id: int) -> None:
        rt = self.runtimes.pop(input_id, None)
        if rt is not None:
            await self._terminate(rt, InputState.STOPPED)
            await self.publish(rt, force=True)

    async def wait_for(
        self, input_id: int, states: set[InputState], timeout_s: float
    ) -> tuple[bool, Runtime | None]:
        """Wait until the input is in one of ``states``; (reached, runtime)."""
        deadline = self.clock() + timeout_s
        while True:
            rt = self.runtimes.get(input_id)
            if rt is not None and rt.state in states:
                return True, rt
            if self.clock() >= deadline:
                return False, rt
            await asyncio.sleep(0.05)

    def status(self, input_id: int) -> MonitorStatus | None:
        rt = self.runtimes.get(input_id)
        return rt.status() if rt else None

    # ------------------------------------------------------------------ supervision
    async def _tick(self, rt: Runtime) -> None:
        now = self.clock()
        s = self.settings
        if rt.alive and now >= rt.lease_renew_at and not await self._renew(rt):
            log.warning("input %s: its lease was taken by %s; stopping", rt.record.id,
                        rt.lease_holder)  # fmt: skip
            await self._terminate(rt, InputState.STANDBY)
            rt.next_start = now + s.input_lease_ttl_s / 3
            return
        if rt.alive:
            if rt.state == InputState.RUNNING and now - rt.running_since >= s.healthy_reset_s:
                rt.backoff = s.restart_backoff_s
            # A worker still importing on a busy machine is slow, not stalled.
            limit = s.stall_timeout_s
            if rt.state == InputState.STARTING:
                limit = max(limit, s.startup_grace_s)
            if now - rt.last_sample_at > limit and not rt.finished:
                rt.kill_reason = f"stalled: no samples for {limit:g} s"
                log.warning("input %s %s; restarting", rt.record.id, rt.kill_reason)
                await self._kill(rt)
        elif (
            rt.proc is None  # an exit is decided by _watch first (it may be final)
            and rt.record.wanted_running
            and rt.state
            in (InputState.BACKOFF, InputState.STALLED, InputState.STARTING, InputState.STANDBY)
            and now >= rt.next_start
        ):
            await self._spawn(rt)
        await self.publish(rt)

    async def _spawn(self, rt: Runtime) -> None:
        if rt.alive:
            return
        if not await self._take_lease(rt):
            if rt.state != InputState.STANDBY:
                log.warning("input %s is held by %s: standing by", rt.record.id, rt.lease_holder)
            rt.set_state(InputState.STANDBY)
            rt.next_start = self.clock() + self.settings.input_lease_ttl_s / 3
            return
        for task in rt.tasks:
            task.cancel()
        if rt.spawned_once:
            rt.restarts += 1
        rt.spawned_once = True
        rt.stopping = rt.finished = False
        rt.fatal = rt.kill_reason = None
        rt.worker_errors_done += rt.worker_errors
        rt.worker_errors = 0
        rt.samples_per_s = 0.0
        rt.signal = False
        rt.stderr.clear()
        spec = WorkerSpec(
            input_id=rt.record.id,
            name=rt.record.name,
            config=rt.record.config,
            settings=WorkerSettings.from_settings(self.settings),
        )
        self.settings.clips_dir.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(rt.record.id),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Own session: a Ctrl-C to the service reaches workers only through us.
                start_new_session=True,
            )
        except OSError as exc:
            rt.own_errors += 1
            rt.last_error = f"cannot start worker: {exc}"
            self._schedule_restart(rt, InputState.BACKOFF)
            await self.publish(rt)
            return
        rt.proc = proc
        rt.last_sample_at = self.clock()
        rt.set_state(InputState.STARTING)
        assert proc.stdin is not None
        # The spec travels on stdin: no secrets (Redis URL) on a command line or on disk.
        proc.stdin.write(spec.model_dump_json().encode())
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        reader = asyncio.create_task(self._read_stdout(rt, proc))
        rt.tasks = [
            reader,
            asyncio.create_task(self._read_stderr(rt, proc)),
            asyncio.create_task(self._watch(rt, proc, reader)),
        ]
        log.info("input %s: worker pid %s started", rt.record.id, proc.pid)
        await self.publish(rt)

    def _schedule_restart(self, rt: Runtime, state: InputState) -> None:
        rt.set_state(state)
        rt.next_start = self.clock() + rt.backoff
        rt.backoff = min(rt.backoff * 2, self.settings.restart_backoff_max_s)

    async def _read_stdout(self, rt: Runtime, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if rt.proc is not proc:
                return
            self._apply(rt, msg)
            await self.publish(rt)

    def _apply(self, rt: Runtime, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        if kind == "progress":
            total = int(msg.get("samples_total", 0))
            if total > rt.samples_total or (total and rt.samples_total == 0):
                rt.last_sample_at = self.clock()
            rt.samples_total = total
            rt.samples_per_s = float(msg.get("samples_per_s", 0.0))
            rt.signal = bool(msg.get("signal"))
            rt.decoder_state = DecoderState(msg.get("decoder_state", "idle"))
            if msg.get("last_header"):
                rt.last_header = msg["last_header"]
                rt.last_header_at = datetime.fromisoformat(msg["last_header_at"])
            rt.worker_errors = int(msg.get("errors", 0))
            if msg.get("last_error"):
                rt.last_error = msg["last_error"]
        elif kind == "state":
            state = msg.get("state")
            if msg.get("error"):
                rt.last_error = msg["error"]
            if state == "running":
                rt.set_state(InputState.RUNNING)
                rt.running_since = self.clock()
                rt.last_sample_at = self.clock()
            elif state == "connecting":
                rt.set_state(InputState.CONNECTING)
            elif state == "finished":
                rt.finished = True
        elif kind == "fatal":
            rt.fatal = str(msg.get("error", "configuration error"))
            rt.last_error = rt.fatal

    async def _read_stderr(self, rt: Runtime, proc: asyncio.subprocess.Process) -> None:
        # Must be drained, or a chatty worker blocks on a full pipe.
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                rt.stderr.append(line)
                log.debug("input %s worker: %s", rt.record.id, line)

    async def _watch(
        self, rt: Runtime, proc: asyncio.subprocess.Process, reader: asyncio.Task[None]
    ) -> None:
        code = await proc.wait()
        # The last lines (finished, fatal) decide what the exit means: read them first.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(reader), timeout=5.0)
        if rt.proc is not proc:
            return
        if rt.stopping:
            rt.set_state(InputState.STOPPED)
        elif rt.finished and code == 0:
            rt.set_state(InputState.FINISHED)
        elif code == EXIT_CONFIG:
            rt.last_error = rt.fatal or "the worker rejected its configuration"
            rt.set_state(InputState.FAILED)
        elif rt.kill_reason is not None:
            rt.own_errors += 1
            rt.last_error = rt.kill_reason
            self._schedule_restart(rt, InputState.STALLED)
        else:
            rt.own_errors += 1
            tail = " | ".join(list(rt.stderr)[-3:])
            rt.last_error = f"worker exited with code {code}" + (f": {tail}" if tail else "")
            log.warning("input %s: %s", rt.record.id, rt.last_error)
            self._schedule_restart(rt, InputState.BACKOFF)
        rt.proc = None
        await self.publish(rt)

    async def _kill(self, rt: Runtime) -> None:
        proc = rt.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def _terminate(self, rt: Runtime, final: InputState) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after the stop timeout) and wait for it."""
        proc = rt.proc
        rt.stopping = True
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=self.settings.stop_timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in rt.tasks:
            if not task.done():
                task.cancel()
        rt.tasks = []
        rt.proc = None
        if final == InputState.STOPPED:
            await self._release_lease(rt)
        rt.set_state(final)
        await self.publish(rt)

    # ------------------------------------------------------------------ the input's lease
    def _lease_key(self, rt: Runtime) -> str:
        return self.bus.key(f"{MONITOR_INPUT_LEASE_KEY}:{rt.record.id}")

    async def _take_lease(self, rt: Runtime) -> bool:
        ttl_ms = int(self.settings.input_lease_ttl_s * 1000)
        me = self.settings.instance
        key = self._lease_key(rt)
        client = self.bus.client
        try:
            if await client.set(key, me, nx=True, px=ttl_ms) or await client.eval(
                _RENEW, 1, key, me, ttl_ms
            ):
                rt.lease_held, rt.lease_holder = True, me
                rt.lease_renew_at = self.clock() + self.settings.input_lease_ttl_s / 3
                return True
            holder = await client.get(key)
        except Exception as exc:
            # Nobody can be told apart from nobody holding it: decode rather than miss alerts.
            log.warning("input %s: lease not checked (%s); starting anyway", rt.record.id, exc)
            rt.lease_held, rt.lease_holder = False, None
            rt.lease_renew_at = self.clock() + self.settings.input_lease_ttl_s / 3
            return True
        rt.lease_held = False
        rt.lease_holder = holder.decode() if isinstance(holder, bytes) else holder
        return False

    async def _renew(self, rt: Runtime) -> bool:
        """False only when another instance holds the lease now."""
        ttl_ms = int(self.settings.input_lease_ttl_s * 1000)
        me = self.settings.instance
        rt.lease_renew_at = self.clock() + self.settings.input_lease_ttl_s / 3
        if not rt.lease_held:  # started while Redis could not be asked
            return await self._take_lease(rt)
        try:
            if await self.bus.client.eval(_RENEW, 1, self._lease_key(rt), me, ttl_ms):
                return True
            # Lapsed (Redis was slow or restarted without it) but free: take it back.
            return await self._take_lease(rt)
        except Exception as exc:
            log.warning("input %s: lease not renewed (%s); still decoding", rt.record.id, exc)
            return True

    async def _release_lease(self, rt: Runtime) -> None:
        if not rt.lease_held:
            return
        rt.lease_held = False
        with contextlib.suppress(Exception):
            await self.bus.client.eval(_RELEASE, 1, self._lease_key(rt), self.settings.instance)

    # ------------------------------------------------------------------ status
    async def publish(self, rt: Runtime, force: bool = False) -> None:
        if rt.state == InputState.STANDBY:
            return  # the holder reports this input; two voices would contradict each other
        status = rt.status()
        sig = (
            status.state,
            status.running,
            status.signal_present,
            status.decoder_state,
            status.last_header,
            status.restarts,
            status.errors,
            status.last_error,
            status.pid,
            rt.record.name,
        )
        now = self.clock()
        if (
            not force
            and sig == rt.published_sig
            and now - rt.published_at < self.settings.status_refresh_s
        ):
            return
        rt.published_sig, rt.published_at = sig, now
        envelope = EventEnvelope[MonitorStatus](
            type=MONITOR_STATUS_TYPE,
            source=self.source,
            subject=f"input-{rt.record.id}",
            data=status,
        )
        try:
            await self.bus.publish(MONITOR_STATUS, envelope)
            self.published += 1
        except Exception as exc:
            rt.published_sig = None  # try again on the next tick
            log.warning("monitor.status not published: %s", exc)
