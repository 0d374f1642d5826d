"""SAME AFSK encoder (47 CFR 11.31).

* 520 5/6 baud exactly: sample ``n`` belongs to bit ``floor(n * 3125 / (6 * rate))``,
  computed in integers, so the fractional sample position is carried over the whole burst
  and never rounded per bit;
* mark 2083 1/3 Hz (bit 1) = 4 cycles per bit, space 1562.5 Hz (bit 0) = 3 cycles per bit:
  every bit holds a whole number of cycles, so restarting the sine at each bit boundary
  (at the exact fractional time) gives a continuous-phase signal;
* bytes LSB first, 7-bit ASCII with the eighth bit 0, no start/stop bits;
* preamble 16 x 0xAB before every header and EOM burst;
* three bursts with one second of silence between them; attention signal 853 + 960 Hz
  (broadcast) or 1050 Hz (NOAA Weather Radio); optional audio (narration) after it;
  EOM (preamble + ``NNNN``) three times.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf

from .header import SameHeader, SameHeaderError, parse_header

__all__ = [
    "BAUD",
    "COMMON_RATES",
    "MARK_HZ",
    "PREAMBLE",
    "SPACE_HZ",
    "attention_tone",
    "bytes_to_bits",
    "encode_burst",
    "generate",
    "modulate_bits",
    "silence",
    "write_wav",
]

BAUD_NUM, BAUD_DEN = 3125, 6  # 520 5/6 baud
BAUD = BAUD_NUM / BAUD_DEN
MARK_HZ = 4 * BAUD  # 2083 1/3 Hz
SPACE_HZ = 3 * BAUD  # 1562.5 Hz
PREAMBLE = bytes([0xAB] * 16)
COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)

ToneKind = Literal["broadcast", "nwr"]
FloatArray = npt.NDArray[np.float32]


def bytes_to_bits(data: bytes) -> npt.NDArray[np.uint8]:
    """Bits of ``data``, least significant bit of each byte first."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return np.unpackbits(arr, bitorder="little")


def modulate_bits(
    bits: Sequence[int] | npt.NDArray[np.integer], rate: int, amplitude: float = 0.5
) -> FloatArray:
    """AFSK-modulate ``bits`` at exactly 520 5/6 baud and ``rate`` samples per second."""
    bits_arr = np.asarray(bits, dtype=np.int64)
    nbits = len(bits_arr)
    # number of samples whose time n/rate falls before the end of the last bit
    nsamp = -((-nbits * BAUD_DEN * rate) // BAUD_NUM)
    n = np.arange(nsamp, dtype=np.int64)
    k = (n * BAUD_NUM) // (BAUD_DEN * rate)  # bit index of each sample, exact
    # time since the start of the bit, in bit periods, from exact integers
    frac = (n * BAUD_NUM - k * BAUD_DEN * rate) / (BAUD_DEN * rate)
    cycles = np.where(bits_arr[k] != 0, 4.0, 3.0)
    return (amplitude * np.sin(2.0 * np.pi * cycles * frac)).astype(np.float32)


def encode_burst(text: str | bytes, rate: int, amplitude: float = 0.5) -> FloatArray:
    """One burst: preamble (16 x 0xAB) followed by ``text`` (ASCII, eighth bit 0)."""
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if any(b > 0x7F for b in data):
        raise ValueError("SAME text must be 7-bit ASCII")
    return modulate_bits(bytes_to_bits(PREAMBLE + data), rate, amplitude)


def silence(seconds: float, rate: int) -> FloatArray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def attention_tone(
    seconds: float, rate: int, kind: ToneKind = "broadcast", amplitude: float = 0.5
) -> FloatArray:
    """Attention signal: 853 + 960 Hz (broadcast, each at half ``amplitude``) or 1050 Hz."""
    t = np.arange(round(seconds * rate)) / rate
    if kind == "broadcast":
        sig = 0.5 * (np.sin(2 * np.pi * 853.0 * t) + np.sin(2 * np.pi * 960.0 * t))
    elif kind == "nwr":
        sig = np.sin(2 * np.pi * 1050.0 * t)
    else:
        raise ValueError(f"unknown attention tone kind {kind!r}")
    # 5 ms raised-cosine ramps avoid clicks
    ramp = min(len(t) // 2, int(0.005 * rate))
    if ramp > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        sig[:ramp] *= w
        sig[len(sig) - ramp :] *= w[::-1]
    return (amplitude * sig).astype(np.float32)


def generate(
    header: str | SameHeader,
    rate: int = 22050,
    *,
    attention: float | None = 8.0,
    tone: ToneKind = "broadcast",
    audio: npt.ArrayLike | None = None,
    eom: bool = True,
    gap: float = 1.0,
    lead: float = 0.5,
    tail: float = 0.5,
    amplitude: float = 0.5,
    validate: bool = True,
    allow_deviations: bool = False,
) -> FloatArray:
    """A complete EAS message as float32 samples in [-1, 1]:

    lead silence, header x3 (``gap`` s apart), ``gap`` s, attention signal (``attention``
    seconds, None or 0 for none), ``gap`` s, ``audio`` (mono float samples at ``rate``, the
    narration insertion point), ``gap`` s, EOM x3 (``gap`` s apart), tail silence.

    Strict on send: a header that deviates from 11.31 (one parsed leniently from the air) is
    refused with :class:`SameHeaderError`. ``allow_deviations=True`` sends it as it reads; it
    exists for the deviation corpus and tests, never for the station's send path.
    ``validate=False`` sends any text unchecked (tests of what a receiver must refuse).
    """
    if rate < 6000:
        raise ValueError("sample rate must be at least 6000 Hz for 2083 Hz tones")
    if isinstance(header, SameHeader):
        parsed: SameHeader | None = header
    elif validate:
        parsed = parse_header(header, lenient=allow_deviations)
    else:
        parsed = None
    if parsed is not None and parsed.deviations and not allow_deviations:
        raise SameHeaderError(
            f"header deviates from 47 CFR 11.31 ({', '.join(parsed.deviations)}): the encoder "
            "sends standard headers only"
        )
    text = parsed.text if parsed is not None else str(header)
    parts: list[FloatArray] = [silence(lead, rate)]
    burst = encode_burst(text, rate, amplitude)
    for i in range(3):
        if i:
            parts.append(silence(gap, rate))
        parts.append(burst)
    if attention:
        parts.append(silence(gap, rate))
        parts.append(attention_tone(attention, rate, tone, amplitude))
    if audio is not None:
        parts.append(silence(gap, rate))
        parts.append(np.asarray(audio, dtype=np.float32).reshape(-1))
    if eom:
        parts.append(silence(gap, rate))
        eom_burst = encode_burst("NNNN", rate, amplitude)
        for i in range(3):
            if i:
                parts.append(silence(gap, rate))
            parts.append(eom_burst)
    parts.append(silence(tail, rate))
    return np.concatenate(parts).astype(np.float32, copy=False)


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int) -> None:
    """Write mono samples (float in [-1, 1]) as a 16-bit PCM WAV file."""
    data = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    sf.write(str(path), data, rate, subtype="PCM_16", format="WAV")
