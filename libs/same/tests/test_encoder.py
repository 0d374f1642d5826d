from __future__ import annotations

import numpy as np
import pytest

from eas_same.encoder import (
    BAUD,
    COMMON_RATES,
    MARK_HZ,
    SPACE_HZ,
    attention_tone,
    bytes_to_bits,
    encode_burst,
    generate,
    modulate_bits,
    write_wav,
)
from eas_same.header import SameHeaderError


def test_constants() -> None:
    assert pytest.approx(520.8333333, abs=1e-6) == BAUD
    assert pytest.approx(2083.3333333, abs=1e-6) == MARK_HZ
    assert SPACE_HZ == 1562.5


def test_bits_lsb_first_no_framing() -> None:
    assert bytes_to_bits(b"\xab").tolist() == [1, 1, 0, 1, 0, 1, 0, 1]
    assert bytes_to_bits(b"Z").tolist() == [0, 1, 0, 1, 1, 0, 1, 0]
    # 8 bits per character, no start/stop bits: burst length = (16 + n) * 8 bits
    x = encode_burst("NNNN", 48000)
    assert len(x) == -(-(20 * 8 * 6 * 48000) // 3125)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_bit_timing_exact_over_long_burst(rate: int) -> None:
    rng = np.random.default_rng(1)
    nbits = 20000  # 38.4 s: a per-bit rounding would drift by many bits
    bits = rng.integers(0, 2, nbits)
    x = modulate_bits(bits, rate, amplitude=1.0).astype(np.float64)
    assert len(x) == -(-(nbits * 6 * rate) // 3125)
    assert len(x) / rate == pytest.approx(nbits / BAUD, abs=1.0 / rate)
    # correlate each bit over its exact time span with both tones: every bit is recovered,
    # including the last ones (no accumulated timing error)
    t = np.arange(len(x)) / rate
    edges = np.ceil(np.arange(nbits + 1) * 6 * rate / 3125).astype(int)
    cm = np.exp(-2j * np.pi * MARK_HZ * t) * x
    cs = np.exp(-2j * np.pi * SPACE_HZ * t) * x
    cum_m = np.concatenate([[0], np.cumsum(cm)])
    cum_s = np.concatenate([[0], np.cumsum(cs)])
    em = np.abs(cum_m[edges[1:]] - cum_m[edges[:-1]])
    es = np.abs(cum_s[edges[1:]] - cum_s[edges[:-1]])
    assert np.array_equal((em > es).astype(int), bits)
    # the same holds at the end: bit energy is not smeared into the neighbour
    assert np.min(np.abs(em - es)[-100:]) > 0.3 * np.max(np.abs(em - es))


def test_phase_continuity() -> None:
    rate = 22050
    bits = np.tile([1, 0, 0, 1, 1, 1, 0], 200)
    x = modulate_bits(bits, rate, amplitude=1.0).astype(np.float64)
    # no jumps: sample-to-sample change bounded by the mark tone's maximum slope
    assert np.max(np.abs(np.diff(x))) <= 2 * np.pi * MARK_HZ / rate * 1.001
    # instantaneous frequency only takes the two tone values (analytic signal)
    from scipy.signal import hilbert

    ph = np.unwrap(np.angle(hilbert(x)))
    f = np.diff(ph) * rate / (2 * np.pi)
    core = f[200:-200]
    near = np.minimum(np.abs(core - MARK_HZ), np.abs(core - SPACE_HZ))
    assert np.median(near) < 15.0


@pytest.mark.parametrize(("bit", "freq"), [(1, MARK_HZ), (0, SPACE_HZ)])
def test_tone_frequencies(bit: int, freq: float) -> None:
    rate = 48000
    x = modulate_bits([bit] * 5208, rate, amplitude=1.0).astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.argmax(spec) * rate / len(x)
    assert peak == pytest.approx(freq, abs=0.5)


def test_attention_tones() -> None:
    rate = 16000
    for kind, freqs in (("broadcast", (853.0, 960.0)), ("nwr", (1050.0,))):
        x = attention_tone(2.0, rate, kind).astype(np.float64)  # type: ignore[arg-type]
        assert len(x) == 2 * rate
        spec = np.abs(np.fft.rfft(x))
        f = np.fft.rfftfreq(len(x), 1 / rate)
        top = sorted(f[np.argsort(spec)[-len(freqs) :]])
        assert top == pytest.approx(list(freqs), abs=1.0)


def test_generate_structure_and_wav(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import soundfile as sf

    rate = 8000
    header = "ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -"
    narration = np.zeros(rate, dtype=np.float32)
    x = generate(header, rate, attention=8.0, tone="nwr", audio=narration, lead=0, tail=0)
    burst = len(encode_burst(header, rate))
    eom = len(encode_burst("NNNN", rate))
    n = 3 * burst + 2 * rate + rate + 8 * rate + rate + rate + rate + 3 * eom + 2 * rate
    assert len(x) == n
    assert x.dtype == np.float32 and np.max(np.abs(x)) <= 0.5 + 1e-6
    p = tmp_path / "a.wav"
    write_wav(p, x, rate)
    info = sf.info(str(p))
    assert info.samplerate == rate and info.subtype == "PCM_16" and info.channels == 1
    with pytest.raises(SameHeaderError, match="event"):
        generate("ZCZC-WXR-XXX-039035+0100-3181518-KXYZ/FM -", rate)


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_every_common_rate_has_right_length(rate: int) -> None:
    x = encode_burst("ZCZC", rate)
    assert abs(len(x) / rate - 20 * 8 / BAUD) < 1.0 / rate
