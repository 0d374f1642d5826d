"""Redis keys of the pollers' own state, under the bus namespace like the streams."""

from __future__ import annotations

import hashlib

from servicekit.bus import stream_key


def state_key(namespace: str, *parts: str) -> str:
    return stream_key(":".join(("pollers", *parts)), namespace)


def digest(text: str, length: int = 32) -> str:
    """Fixed-length key part for values of any length and character set."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def ipaws_cursor_key(namespace: str) -> str:
    return state_key(namespace, "ipaws", "cursor")
