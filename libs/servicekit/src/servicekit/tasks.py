"""Small asyncio helpers for services' background work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def every(interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work`` now and then every ``interval_s`` until ``stop``; failures are logged."""
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("background task %s failed", getattr(work, "__qualname__", work))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
