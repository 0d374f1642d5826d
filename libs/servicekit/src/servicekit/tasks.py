"""Small asyncio helpers for services' background work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from servicekit.db import database_unreachable

log = logging.getLogger(__name__)


async def every(interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work`` now and then every ``interval_s`` until ``stop``; failures are logged.
    A database outage is one line when it starts and one when it ends (not a traceback each
    round: the heartbeats and /readyz already say it, and the log must stay readable)."""
    name = getattr(work, "__qualname__", work)
    outage = False
    while not stop.is_set():
        try:
            await work()
            if outage:
                log.info("background task %s: the database answers again", name)
                outage = False
        except Exception as exc:
            if not database_unreachable(exc):
                log.exception("background task %s failed", name)
            elif not outage:
                log.warning("background task %s waits for the database: %s", name, exc)
                outage = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
