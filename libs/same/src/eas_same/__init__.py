"""SAME (47 CFR 11.31) header model, encoder and streaming decoder.

The decoder and the encoder (numpy, soundfile) are loaded lazily, so header-only users
(``from eas_same import parse_header``) start fast. The decoder imports numpy only, never
scipy (``tests/test_dsp.py`` holds it to that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .header import SameHeader, SameHeaderError, parse_header

if TYPE_CHECKING:
    from .decoder import (
        AttentionTone,
        DecoderStats,
        EndOfMessage,
        Event,
        HeaderDecoded,
        SameDecoder,
        decode_samples,
    )
    from .encoder import encode_burst, generate, write_wav

_LAZY = {
    "AttentionTone": "decoder",
    "DecoderStats": "decoder",
    "EndOfMessage": "decoder",
    "Event": "decoder",
    "HeaderDecoded": "decoder",
    "SameDecoder": "decoder",
    "decode_samples": "decoder",
    "encode_burst": "encoder",
    "generate": "encoder",
    "write_wav": "encoder",
}

__all__ = [
    "AttentionTone",
    "DecoderStats",
    "EndOfMessage",
    "Event",
    "HeaderDecoded",
    "SameDecoder",
    "SameHeader",
    "SameHeaderError",
    "decode_samples",
    "encode_burst",
    "generate",
    "parse_header",
    "write_wav",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'eas_same' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)
