"""AsyncAPI 3.0 document of the bus, generated from `eas_schemas` (streams, types, payloads).

Each service serves the document at ``/asyncapi.json`` with the operations it performs, so a
team subscribing to alert events reads every stream, event type and payload schema there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from eas_schemas.envelope import SCHEMA_VERSION, SPEC_VERSION
from eas_schemas.events import EVENT_TYPES
from eas_schemas.streams import ALL_STREAMS


def _channel_id(stream: str) -> str:
    return stream.replace(".", "_")


def _message_id(event_type: str) -> str:
    return event_type.replace(".", "_")


def build_asyncapi(
    service: str,
    version: str,
    sends: list[str],
    receives: list[str],
    description: str = "",
) -> dict[str, Any]:
    """``sends``/``receives`` are stream names; operations are generated for each."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}

    def add_schema(model: type[BaseModel]) -> str:
        doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in doc.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, doc)
        return f"#/components/schemas/{model.__name__}"

    # Only the streams this service sends or receives: another team's new event type does
    # not change this service's contract (nor make its checked-in document stale).
    used = set(sends) | set(receives)
    unknown = used - {spec.name for spec in ALL_STREAMS}
    if unknown:
        raise ValueError(f"streams not declared in eas_schemas.streams: {sorted(unknown)}")
    for spec in ALL_STREAMS:
        if spec.name not in used:
            continue
        channels[_channel_id(spec.name)] = {
            "address": spec.name,
            "description": f"{spec.description} Capped at ~{spec.maxlen} entries. "
            + ("Fanned out to browsers." if spec.public else "Internal."),
            "messages": {},
        }
    for et in EVENT_TYPES:
        if et.stream not in used:
            continue
        mid = _message_id(et.type)
        payload_ref = add_schema(et.payload)
        messages[mid] = {
            "name": et.type,
            "title": et.summary,
            "contentType": "application/json",
            "summary": f"{et.summary}. Stream entry fields: type, id, envelope (this JSON).",
            "payload": {
                "type": "object",
                "required": ["specversion", "id", "type", "source", "time", "data"],
                "properties": {
                    "specversion": {"const": SPEC_VERSION},
                    "id": {"type": "string", "description": "ULID, sortable"},
                    "type": {"const": et.type},
                    "source": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "subject": {"type": ["string", "null"]},
                    "datacontenttype": {"const": "application/json"},
                    "schemaversion": {"const": SCHEMA_VERSION},
                    "data": {"$ref": payload_ref},
                },
            },
        }
        channels[_channel_id(et.stream)]["messages"][mid] = {"$ref": f"#/components/messages/{mid}"}

    operations: dict[str, Any] = {}
    for action, names in (("send", sends), ("receive", receives)):
        for name in names:
            cid = _channel_id(name)
            operations[f"{action}_{cid}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [
                    {"$ref": f"#/channels/{cid}/messages/{m}"} for m in channels[cid]["messages"]
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"EAS Station {service} bus",
            "version": version,
            "description": description,
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {"host": "redis:6379", "protocol": "redis", "description": "Redis Streams"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
