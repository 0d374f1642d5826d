"""Keeps one playout worker process running beside the API (the one-machine mode).

The worker is a process of its own (audio must never wait on the API's event loop); it is
started with the service's own settings, restarted with backoff when it dies (its keyer
unkeys the transmitter by itself), and stopped with SIGTERM — then SIGKILL — when the service
stops. Where the worker runs elsewhere (`audio-control playout`), ``run_playout`` is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from audio_control.settings import AudioControlSettings
from servicekit.children import die_with

log = logging.getLogger(__name__)


def make_outputs_safe(settings: AudioControlSettings) -> list[str]:
    """Every enabled output's keying line driven inactive; what was done, per output."""
    from sqlalchemy import select

    from audio_control.playout.keying import make_safe
    from audio_control.playout.store import make_sync_engine
    from audio_control.tables import playout_outputs

    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(playout_outputs.c.name, playout_outputs.c.keying).where(
                    playout_outputs.c.enabled.is_(True)
                )
            ).all()
    finally:
        engine.dispose()
    notes = []
    for name, keying in rows:
        try:
            done = make_safe(json.loads(keying))
        except Exception as exc:
            done = f"could not be unkeyed: {exc}"
        if done:
            notes.append(f"{name}: {done}")
    return notes


def worker_env(settings: AudioControlSettings) -> dict[str, str]:
    """The service's settings, as the worker reads them (AUDIO_CONTROL_<FIELD>)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        key = f"AUDIO_CONTROL_{name.upper()}"
        if isinstance(value, str | int | float | bool | Path):
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            env[key] = json.dumps(value, default=str)
    return env


class WorkerSupervisor:
    def __init__(
        self,
        settings: AudioControlSettings,
        command: Sequence[str] | None = None,
        *,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.command = list(command or [sys.executable, "-m", "audio_control.playout.worker"])
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.backoff_s
        while not stop.is_set():
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=worker_env(self.settings),
                # A station killed with kill -9 takes its worker with it (the message on air
                # still ends with its EOM: SIGTERM lets the worker finish it).
                preexec_fn=die_with(os.getpid()),
            )
            log.info("playout worker started (pid %s)", self.process.pid)
            waiting = asyncio.ensure_future(self.process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                await self.close()
                return
            code = self.process.returncode
            self.restarts += 1
            # A GPIO line (or an active-low serial one) is not released to "unkeyed" by the
            # OS when the worker dies: drive it inactive before anything else.
            try:
                for note in await asyncio.to_thread(make_outputs_safe, self.settings):
                    log.warning("after the playout worker died: %s", note)
            except Exception:
                log.exception("keying lines could not be made safe after the worker died")
            log.error("playout worker exited (%s); restarting in %.0f s", code, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    async def close(self, grace_s: float = 10.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            log.error("playout worker did not stop in %.0f s; killed", grace_s)
            process.kill()
            await process.wait()
