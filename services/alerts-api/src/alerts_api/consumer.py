"""The alerts.ingested consumer group: each read batch is stored in one committed transaction
(one entry at a time when a batch fails), then acknowledged."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from alerts_api.service import AlertService
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import ALERT_INGESTED_TYPE, AlertIngested
from servicekit.consumer import PermanentError


def parse(envelope: EventEnvelope[dict[str, Any]]) -> AlertIngested:
    if envelope.type != ALERT_INGESTED_TYPE:
        raise PermanentError(f"unexpected event type {envelope.type!r} on alerts.ingested")
    try:
        return AlertIngested.model_validate(envelope.data)
    except ValidationError as exc:
        raise PermanentError(f"invalid alerts.ingested payload: {_short(exc)}") from exc


def make_handler(service: AlertService) -> Any:
    async def handle(entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        await service.ingest(parse(envelope))

    return handle


def make_batch_handler(service: AlertService) -> Any:
    async def handle_batch(
        entries: list[tuple[str, EventEnvelope[dict[str, Any]]]],
    ) -> dict[str, str]:
        rejected: dict[str, str] = {}
        batch: list[AlertIngested] = []
        for entry_id, envelope in entries:
            try:
                batch.append(parse(envelope))
            except PermanentError as exc:
                rejected[entry_id] = str(exc)
        await service.ingest_batch(batch)
        return rejected

    return handle_batch


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
