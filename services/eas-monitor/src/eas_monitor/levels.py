"""Input level metering (peak/RMS dBFS, silence, clipping) and the change-only rate gate.

Levels are sent on ``audio.metrics`` at most once per ``min_interval_s`` and only when they
differ from what was last sent: a steady input costs the bus nothing (the Flask system pushed
identical level data ten times a second).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FULL_SCALE = 32768.0
FLOOR_DBFS = -120.0  # digital silence has no finite dB value; report this floor instead


def dbfs(amplitude: float) -> float:
    """dB relative to int16 full scale, floored, rounded to 0.1 dB."""
    if amplitude <= 0:
        return FLOOR_DBFS
    return round(max(FLOOR_DBFS, min(0.0, 20.0 * math.log10(amplitude / FULL_SCALE))), 1)


@dataclass(frozen=True, slots=True)
class Level:
    peak_dbfs: float
    rms_dbfs: float
    silence: bool
    clipping: bool
    window_s: float


class LevelMeter:
    """Accumulates int16 samples; yields one :class:`Level` per full window."""

    def __init__(
        self, rate: int, window_s: float, silence_dbfs: float = -50.0, clip_dbfs: float = -0.1
    ) -> None:
        self.rate = rate
        self.window = max(1, round(rate * window_s))
        self.silence_dbfs = silence_dbfs
        self.clip_level = FULL_SCALE * 10 ** (clip_dbfs / 20.0)
        self._n = 0
        self._peak = 0.0
        self._sumsq = 0.0
        self._clipped = False
        self.last: Level | None = None

    def feed(self, samples: npt.NDArray[np.int16]) -> list[Level]:
        out: list[Level] = []
        x = samples
        while len(x):
            take = min(self.window - self._n, len(x))
            part = x[:take].astype(np.float64)
            x = x[take:]
            if take:
                self._peak = max(self._peak, float(np.max(np.abs(part))))
                self._sumsq += float(np.dot(part, part))
                self._clipped = self._clipped or self._peak >= self.clip_level
                self._n += take
            if self._n >= self.window:
                out.append(self._close())
        return out

    def _close(self) -> Level:
        rms = math.sqrt(self._sumsq / self._n) if self._n else 0.0
        rms_db = dbfs(rms)
        level = Level(
            peak_dbfs=dbfs(self._peak),
            rms_dbfs=rms_db,
            silence=rms_db < self.silence_dbfs,
            clipping=self._clipped,
            window_s=round(self._n / self.rate, 3),
        )
        self._n, self._peak, self._sumsq, self._clipped = 0, 0.0, 0.0, False
        self.last = level
        return level


class ChangeGate:
    """Lets a level through when it changed (flags, or a value by ``change_db``) and at least
    ``min_interval_s`` passed since the last one let through."""

    def __init__(
        self,
        min_interval_s: float,
        change_db: float,
        clock: Callable[[], float],
    ) -> None:
        self.min_interval_s = min_interval_s
        self.change_db = change_db
        self.clock = clock
        self.sent: Level | None = None
        self._sent_at = -math.inf

    def changed(self, level: Level) -> bool:
        prev = self.sent
        if prev is None:
            return True
        return (
            level.silence != prev.silence
            or level.clipping != prev.clipping
            or abs(level.peak_dbfs - prev.peak_dbfs) >= self.change_db
            or abs(level.rms_dbfs - prev.rms_dbfs) >= self.change_db
        )

    def offer(self, level: Level) -> bool:
        """True if ``level`` should be published now (and remember it as sent)."""
        now = self.clock()
        if now - self._sent_at < self.min_interval_s or not self.changed(level):
            return False
        self.sent = level
        self._sent_at = now
        return True
