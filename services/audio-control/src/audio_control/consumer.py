"""audio-control's consumer groups: ``alert.events`` (CAP alerts from alerts-api) and
``same.events`` (headers heard by eas-monitor). Each entry is decided in one committed
transaction, then acknowledged; a redelivered entry finds its input recorded and changes
nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from audio_control.services.decisions import RelayService, UnusableInput
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import AlertEventType
from eas_schemas.monitor_events import SAME_HEADER_TYPE
from servicekit.consumer import PermanentError

Handler = Callable[[str, EventEnvelope[dict[str, Any]]], Awaitable[None]]
ALERT_TYPES = frozenset(t.value for t in AlertEventType)


def alert_handler(relay: RelayService) -> Handler:
    async def handle(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        if envelope.type not in ALERT_TYPES:
            raise PermanentError(f"unexpected event type {envelope.type!r} on alert.events")
        try:
            await relay.handle_alert_event(envelope)
        except UnusableInput as exc:
            raise PermanentError(str(exc)) from exc

    return handle


def heard_handler(relay: RelayService) -> Handler:
    async def handle(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        # same.eom and same.attention_tone share the stream; they decide nothing.
        if envelope.type != SAME_HEADER_TYPE:
            return
        try:
            await relay.handle_heard_header(envelope)
        except UnusableInput as exc:
            raise PermanentError(str(exc)) from exc

    return handle


def playout_handler(relay: RelayService) -> Handler:
    """``playout.events``: each output's result goes into the station log, and an aired
    decision becomes ``aired``."""

    async def handle(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        try:
            await relay.on_playout(envelope)
        except UnusableInput as exc:
            raise PermanentError(str(exc)) from exc

    return handle
