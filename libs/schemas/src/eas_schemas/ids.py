"""Sortable unique event identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(now_ms: int | None = None) -> str:
    """Return a 26-character ULID: lexical order follows creation time across processes."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def event_id_time_ms(event_id: str) -> int:
    """Milliseconds since the epoch encoded in an id made by `new_event_id`."""
    value = 0
    for ch in event_id[:10]:
        value = (value << 5) | _CROCKFORD.index(ch)
    return value
