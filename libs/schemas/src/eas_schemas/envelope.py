"""The one event envelope every producer uses, shaped after CloudEvents 1.0.

On the wire a stream entry carries three fields: ``type`` and ``id`` (so a reader can route or
skip without parsing JSON) and ``envelope``, the JSON document below. Sync producers and async
services serialize through the same two functions here, so the shape is defined once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from eas_schemas.clock import utcnow
from eas_schemas.ids import new_event_id

SCHEMA_VERSION = 1
SPEC_VERSION = "1.0"

DataT = TypeVar("DataT")


class EventEnvelope(BaseModel, Generic[DataT]):
    """A CloudEvents-shaped envelope; ``data`` is the typed payload named by ``type``."""

    model_config = ConfigDict(frozen=True)

    specversion: str = SPEC_VERSION
    id: str = Field(default_factory=new_event_id, description="ULID: unique, sortable by time")
    type: str = Field(description="event type, e.g. alert.created")
    source: str = Field(description="producing service/instance, e.g. alerts-api/host-1234")
    time: AwareDatetime = Field(default_factory=utcnow)
    subject: str | None = Field(default=None, description="what the event is about")
    datacontenttype: str = "application/json"
    schemaversion: int = SCHEMA_VERSION
    data: DataT

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


def encode_entry(envelope: EventEnvelope[Any], *, json_text: str | None = None) -> dict[str, str]:
    """Stream entry fields for an envelope (the only place the wire layout is written).

    ``json_text`` is the envelope already serialized (an outbox row), so it is not dumped twice.
    """
    text = envelope.model_dump_json() if json_text is None else json_text
    return {"type": envelope.type, "id": envelope.id, "envelope": text}


def decode_entry(fields: dict[str, str] | dict[bytes, bytes]) -> EventEnvelope[dict[str, Any]]:
    """Parse stream entry fields back into an envelope with untyped ``data``.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) when the entry is not an
    envelope; callers dead-letter such entries rather than crash.
    """
    raw: Any = None
    for key, value in fields.items():
        name = key.decode() if isinstance(key, bytes) else key
        if name == "envelope":
            raw = value
            break
    if raw is None:
        raise ValueError("stream entry has no 'envelope' field")
    return EventEnvelope[dict[str, Any]].model_validate_json(raw)
