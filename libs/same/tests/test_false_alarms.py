from __future__ import annotations

import numpy as np

from eas_same.encoder import MARK_HZ, SPACE_HZ, bytes_to_bits, modulate_bits

from .conftest import decode_all

RATE = 22050


def _assert_quiet(x: np.ndarray) -> None:
    events, dec = decode_all(x, RATE)
    assert [e for e in events if e.type in ("header", "eom")] == []
    assert dec.stats.headers_emitted == 0


def test_white_and_band_noise() -> None:
    rng = np.random.default_rng(0)
    _assert_quiet(0.3 * rng.standard_normal(RATE * 60))


def test_music_like_signal() -> None:
    """Chords, glides and percussive noise, with energy at the SAME tones."""
    rng = np.random.default_rng(1)
    t = np.arange(RATE * 40) / RATE
    x = np.zeros_like(t)
    notes = [220.0, 261.6, 329.6, 392.0, 523.3, 659.3, 784.0, 1046.5, 1568.0, 2093.0]
    for start in np.arange(0, 40, 0.25):
        f = rng.choice(notes) * (1 + 0.002 * rng.standard_normal())
        seg = (t >= start) & (t < start + 0.5)
        x[seg] += 0.2 * np.sin(2 * np.pi * f * t[seg]) * np.exp(-3 * (t[seg] - start))
    x += 0.1 * np.sin(2 * np.pi * (1500 + 600 * np.sin(2 * np.pi * 0.3 * t)) * t)
    x += 0.05 * rng.standard_normal(len(t))
    _assert_quiet(x)


def test_steady_and_switching_tones() -> None:
    t = np.arange(RATE * 10) / RATE
    _assert_quiet(0.5 * np.sin(2 * np.pi * MARK_HZ * t))
    _assert_quiet(0.5 * np.sin(2 * np.pi * SPACE_HZ * t))
    # random AFSK data with the right modulation but no preamble/sync
    rng = np.random.default_rng(2)
    _assert_quiet(modulate_bits(rng.integers(0, 2, 520 * 20), RATE).astype(np.float64))
    # an endless preamble without a sync word
    _assert_quiet(modulate_bits(np.tile(bytes_to_bits(b"\xab"), 520 * 2), RATE).astype(float))


def test_digital_silence() -> None:
    _assert_quiet(np.zeros(RATE * 5))
