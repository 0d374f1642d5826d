"""Audit records published by other services (`servicekit.auth.audit.publish_audit`) are read
from `audit.records` with a consumer group and written once each, keyed by the envelope id, so
a redelivered entry changes nothing. Entries that are not audit records are dead-lettered."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from eas_schemas.envelope import EventEnvelope
from eas_schemas.system_events import AUDIT_RECORD_TYPE, AuditRecord
from servicekit.consumer import Handler, PermanentError
from station_api.services.audit import AuditLog


def make_handler(audit: AuditLog) -> Handler:
    async def handle(entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
        if envelope.type != AUDIT_RECORD_TYPE:
            raise PermanentError(f"not an audit record: {envelope.type}")
        try:
            record = AuditRecord.model_validate(envelope.data)
        except ValidationError as exc:
            raise PermanentError(f"invalid audit record: {exc.error_count()} errors") from exc
        await audit.record_alone(record, event_id=envelope.id)

    return handle
