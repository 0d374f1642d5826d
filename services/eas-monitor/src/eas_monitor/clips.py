"""The last seconds of an input's audio, so a clip around a decoded header can be cut after
the decoder reports it (which is only after the third burst)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf


def new_clip_id() -> str:
    return uuid.uuid4().hex


def clip_file_name(clip_id: str) -> str:
    return f"{clip_id}.wav"


class AudioRing:
    """Fixed-size ring of int16 samples addressed by absolute sample index."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self.size = max(1, round(rate * seconds))
        self._buf = np.zeros(self.size, dtype=np.int16)
        self.total = 0  # samples ever written

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        x = samples[-self.size :]
        start = (self.total + len(samples) - len(x)) % self.size
        first = min(len(x), self.size - start)
        self._buf[start : start + first] = x[:first]
        self._buf[: len(x) - first] = x[first:]
        self.total += len(samples)

    def extract(self, start: int, end: int) -> npt.NDArray[np.int16]:
        """Samples [start, end) as far as they are still held (clamped to what exists)."""
        start = max(start, self.total - self.size, 0)
        end = min(end, self.total)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        idx = np.arange(start, end) % self.size
        return self._buf[idx].copy()


def write_clip(directory: Path, clip_id: str, samples: npt.NDArray[np.int16], rate: int) -> Path:
    """Write atomically (temp file + rename) so the API never serves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / clip_file_name(clip_id)
    tmp = directory / f".{clip_id}.tmp"
    sf.write(str(tmp), samples, rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return path
