"""EAS Station bus contract: envelope, streams, event payloads, CAP and SAME domain types."""

from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.ids import new_event_id

__all__ = ["EventEnvelope", "decode_entry", "encode_entry", "new_event_id"]
