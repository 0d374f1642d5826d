"""An EAS message as audio (47 CFR 11.31, ECIG V1.0 3.2), with a map of what is where.

Layout, every gap one second::

    lead silence | header | 1 s | header | 1 s | header | 1 s
    [ attention signal | 1 s | narration | 1 s ]      only when there is narration (ECIG 3.2)
    EOM | 1 s | EOM | 1 s | EOM | 1 s

This is the same sample sequence :func:`eas_same.encoder.generate` makes (a test holds the
two equal), built from the encoder's own pieces so each component's first sample and length
are known exactly rather than found again afterwards.

Strict on send: the header is parsed again strictly, so a header accepted leniently from the
air (a purge time off the legal steps) cannot be re-sent as it came; the attention signal is
held to 8-25 s (47 CFR 11.31(a)(2)); narration is cut at 120 s except for an EAN (ECIG 3.5.2,
3.5.4), and the cut is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eas_same.encoder import COMMON_RATES, attention_tone, encode_burst, silence
from eas_same.header import SameHeader, SameHeaderError, parse_header

from .audio_files import FloatArray, wav_bytes, write_wav
from .narration import Narration, NarrationSource, SourceFailure, fade_cut

__all__ = [
    "ATTENTION_MAX_S",
    "ATTENTION_MIN_S",
    "NARRATION_LIMIT_S",
    "AttentionKind",
    "Component",
    "ComponentKind",
    "ComposeError",
    "ComposedMessage",
    "compose",
]

AttentionKind = Literal["broadcast", "nwr"]
ComponentKind = Literal["header", "attention", "narration", "eom", "silence"]

ATTENTION_MIN_S = 8.0  # 47 CFR 11.31(a)(2): "not less than 8 seconds nor more than 25"
ATTENTION_MAX_S = 25.0
NARRATION_LIMIT_S = 120.0  # ECIG 3.5.2 / 3.5.4, every alert except EAN
GAP_S = 1.0  # ECIG 3.2: about one second after each header and EOM burst
TONE_FREQUENCIES: Mapping[AttentionKind, tuple[float, ...]] = {
    "broadcast": (853.0, 960.0),
    "nwr": (1050.0,),
}


class ComposeError(ValueError):
    """A message that must not be sent as asked; ``str()`` names the field and why."""


@dataclass(frozen=True, slots=True)
class Component:
    kind: ComponentKind
    start_sample: int
    n_samples: int
    rate: int
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def start_s(self) -> float:
        return self.start_sample / self.rate

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.n_samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_s": round(self.start_s, 6),
            "duration_s": round(self.duration_s, 6),
            "start_sample": self.start_sample,
            "n_samples": self.n_samples,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    header: SameHeader
    samples: FloatArray  # float32 mono in [-1, 1]
    rate: int
    components: tuple[Component, ...]
    narration_source: NarrationSource | Literal["none"]
    narration_truncated: bool
    narration_failures: tuple[SourceFailure, ...]
    narration_detail: Mapping[str, Any] | None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def of_kind(self, kind: ComponentKind) -> list[Component]:
        return [c for c in self.components if c.kind == kind]

    def wav_bytes(self) -> bytes:
        """The message as a 16-bit PCM mono WAV."""
        return wav_bytes(self.samples, self.rate)

    def write_wav(self, path: str | Path) -> None:
        write_wav(path, self.samples, self.rate)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the samples, JSON-ready (for storing beside the WAV)."""
        return {
            "header": self.header.text,
            "rate": self.rate,
            "duration_s": round(self.duration_s, 6),
            "narration_source": self.narration_source,
            "narration_truncated": self.narration_truncated,
            "narration_failures": [f.to_dict() for f in self.narration_failures],
            "narration": dict(self.narration_detail) if self.narration_detail else None,
            "components": [c.to_dict() for c in self.components],
        }


def _strict_header(header: SameHeader | str) -> SameHeader:
    text = header.text if isinstance(header, SameHeader) else header
    try:
        return parse_header(text)
    except SameHeaderError as exc:
        raise ComposeError(f"header {text!r} is not sent: {exc}") from exc


def compose(
    header: SameHeader | str,
    narration: Narration | None,
    *,
    rate: int,
    attention: AttentionKind,
    attention_s: float,
    is_ean: bool | None = None,
    narration_max_s: float = NARRATION_LIMIT_S,
    narration_failures: Sequence[SourceFailure] = (),
    lead_s: float = 0.5,
    tone_amplitude: float = 0.5,
) -> ComposedMessage:
    """Compose one EAS message. ``is_ean`` defaults to whether the event is EAN (the only
    event whose narration is not limited); ``narration_failures`` are the sources that were
    tried before ``narration`` (or before giving up, when it is None) and why they failed."""
    strict = _strict_header(header)
    if rate not in COMMON_RATES:
        raise ComposeError(
            f"rate: {rate} Hz is not one of {', '.join(str(r) for r in COMMON_RATES)}"
        )
    if attention not in TONE_FREQUENCIES:
        raise ComposeError(f"attention: {attention!r} is not 'broadcast' or 'nwr'")
    if not (math.isfinite(attention_s) and ATTENTION_MIN_S <= attention_s <= ATTENTION_MAX_S):
        raise ComposeError(
            f"attention_s: {attention_s} s is outside {ATTENTION_MIN_S:g}-{ATTENTION_MAX_S:g} s "
            "(47 CFR 11.31)"
        )
    if not (0 < narration_max_s <= NARRATION_LIMIT_S):
        raise ComposeError(
            f"narration_max_s: {narration_max_s} s; the limit is at most {NARRATION_LIMIT_S:g} s"
        )
    if not (0 <= lead_s <= 10):
        raise ComposeError(f"lead_s: {lead_s} s is outside 0-10 s")
    if not (0 < tone_amplitude <= 1.0):
        raise ComposeError(f"tone_amplitude: {tone_amplitude} is outside (0, 1]")
    if narration is not None and narration.rate != rate:
        raise ComposeError(f"narration is at {narration.rate} Hz but the message is at {rate} Hz")
    ean = strict.event == "EAN" if is_ean is None else is_ean

    parts: list[FloatArray] = []
    components: list[Component] = []
    position = 0

    def add(kind: ComponentKind, samples: FloatArray, **detail: Any) -> None:
        nonlocal position
        if not len(samples):
            return
        parts.append(samples)
        components.append(Component(kind, position, len(samples), rate, detail))
        position += len(samples)

    gap = silence(GAP_S, rate)
    add("silence", silence(lead_s, rate), role="lead")
    burst = encode_burst(strict.text, rate, tone_amplitude)
    for i in range(1, 4):
        add("header", burst, burst=i, text=strict.text)
        add("silence", gap, role=f"after header {i}")

    truncated = False
    narration_detail: dict[str, Any] | None = None
    if narration is not None:
        # ECIG 3.2: the attention signal only when a message follows it.
        add(
            "attention",
            attention_tone(attention_s, rate, attention, tone_amplitude),
            tone=attention,
            frequencies_hz=list(TONE_FREQUENCIES[attention]),
        )
        add("silence", gap, role="after attention signal")
        audio = narration.samples
        cut = False
        if not ean:
            audio, cut = fade_cut(audio, rate, narration_max_s)
        truncated = cut or narration.source_truncated
        narration_detail = narration.to_dict()
        add(
            "narration",
            audio,
            source=narration.source,
            truncated=truncated,
            source_duration_s=round(narration.duration_s, 3),
            limit_s=None if ean else narration_max_s,
        )
        add("silence", gap, role="after narration")
    eom = encode_burst("NNNN", rate, tone_amplitude)
    for i in range(1, 4):
        add("eom", eom, burst=i)
        add("silence", gap, role=f"after EOM {i}")

    samples = np.concatenate(parts).astype(np.float32, copy=False)
    peak = float(np.max(np.abs(samples)))
    if not peak <= 1.0:
        # Every piece is bounded (tones by tone_amplitude, narration by normalisation); this
        # is the last guard before a clipped message could reach the air.
        raise ComposeError(f"composed audio peaks at {peak:.3f}, above full scale")
    return ComposedMessage(
        header=strict,
        samples=samples,
        rate=rate,
        components=tuple(components),
        narration_source=narration.source if narration is not None else "none",
        narration_truncated=truncated,
        narration_failures=tuple(narration_failures),
        narration_detail=narration_detail,
    )
