"""Level metering (peak/RMS dBFS, silence, clipping) and change-only, rate-limited sending."""

from __future__ import annotations

import numpy as np
import pytest

from eas_monitor.levels import FLOOR_DBFS, ChangeGate, Level, LevelMeter, dbfs

RATE = 8000


def tone(amplitude: float, seconds: float = 0.25, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(round(RATE * seconds)) / RATE
    x = np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * t))
    return np.clip(x, -32768, 32767).astype(np.int16)  # overdriven: clipped, as a card would


def test_dbfs_of_full_scale_half_scale_and_silence():
    assert dbfs(32768) == 0.0
    assert dbfs(16384) == pytest.approx(-6.0, abs=0.05)
    assert dbfs(0) == FLOOR_DBFS


def test_sine_peak_and_rms():
    meter = LevelMeter(RATE, 0.25)
    (level,) = meter.feed(tone(0.5))
    assert level.peak_dbfs == pytest.approx(-6.0, abs=0.1)
    assert level.rms_dbfs == pytest.approx(-9.0, abs=0.1)  # sine RMS is 3 dB under its peak
    assert not level.silence and not level.clipping
    assert level.window_s == 0.25


def test_silence_and_clipping_flags():
    meter = LevelMeter(RATE, 0.25, silence_dbfs=-50.0, clip_dbfs=-0.1)
    (quiet,) = meter.feed(tone(0.001))
    assert quiet.silence and not quiet.clipping
    (digital_zero,) = meter.feed(np.zeros(RATE // 4, dtype=np.int16))
    assert digital_zero.silence and digital_zero.rms_dbfs == FLOOR_DBFS
    (clipped,) = meter.feed(tone(1.5))
    assert clipped.clipping and clipped.peak_dbfs == pytest.approx(0.0, abs=0.01)


def test_window_is_independent_of_chunking():
    signal = tone(0.3, seconds=1.0)
    whole = LevelMeter(RATE, 0.25).feed(signal)
    meter = LevelMeter(RATE, 0.25)
    pieces = []
    for i in range(0, len(signal), 333):
        pieces.extend(meter.feed(signal[i : i + 333]))
    assert pieces == whole and len(whole) == 4


def _level(peak: float, rms: float, silence: bool = False, clipping: bool = False) -> Level:
    return Level(peak, rms, silence, clipping, 0.25)


def test_gate_sends_only_changes_and_at_most_once_per_interval():
    now = [0.0]
    gate = ChangeGate(min_interval_s=0.25, change_db=1.0, clock=lambda: now[0])
    assert gate.offer(_level(-6.0, -9.0))  # the first one always
    now[0] = 1.0
    assert not gate.offer(_level(-6.4, -9.5))  # less than 1 dB: not a change
    assert gate.offer(_level(-8.0, -11.0))  # changed
    now[0] = 1.1
    assert not gate.offer(_level(-30.0, -33.0))  # changed, but too soon
    now[0] = 1.3
    assert gate.offer(_level(-30.0, -33.0))
    now[0] = 2.0
    assert gate.offer(_level(-30.0, -33.0, silence=True))  # a flag flip is a change
    now[0] = 3.0
    assert gate.offer(_level(-30.0, -33.0, silence=True, clipping=True))


def test_a_steady_input_sends_once_however_long_it_plays():
    now = [0.0]
    gate = ChangeGate(min_interval_s=0.25, change_db=1.0, clock=lambda: now[0])
    meter = LevelMeter(RATE, 0.25)
    sent = 0
    for _ in range(40):  # 10 s of a steady tone
        for level in meter.feed(tone(0.5)):
            now[0] += 0.25
            sent += gate.offer(level)
    assert sent == 1
