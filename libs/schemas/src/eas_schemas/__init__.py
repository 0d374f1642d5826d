"""EAS Station bus contract: envelope, streams, event payloads, CAP and SAME domain types.

The package's top-level names load on first use (PEP 562): importing a pure-Python part such
as ``eas_schemas.same_codes`` (the SAME decoder's tables) must not pay for pydantic, which
the envelope needs and the one-shot ``eas-same decode`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
    from eas_schemas.ids import new_event_id

__all__ = ["EventEnvelope", "decode_entry", "encode_entry", "new_event_id"]

_LAZY = {
    "EventEnvelope": "envelope",
    "decode_entry": "envelope",
    "encode_entry": "envelope",
    "new_event_id": "ids",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'eas_schemas' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"eas_schemas.{mod}"), name)
    globals()[name] = value
    return value
