"""The same.events consumer group: every decode heard is kept once in the decode history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from eas_monitor.service import MonitorService
from eas_schemas.envelope import EventEnvelope

Handler = Callable[[str, EventEnvelope[dict[str, Any]]], Awaitable[None]]


def make_handler(service: MonitorService, stored_total: Counter) -> Handler:
    async def store(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        if await service.store_event(envelope):
            stored_total.inc()

    return store
