"""SAME (47 CFR 11.31) header model, encoder and streaming decoder."""

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
from .header import SameHeader, SameHeaderError, parse_header

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
