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


# ---- attention signal, limits and file output, at their edges --------------------------------


def raised_cosine_envelope(n: int, ramp: int) -> np.ndarray:
    """1 in the middle, a raised-cosine rise over the first ``ramp`` samples from 0, and the
    mirror image at the end."""
    env = np.ones(n)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[:ramp] *= rise
    env[n - ramp :] *= rise[::-1]
    return env


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_attention_tone_has_5_ms_raised_cosine_ramps(rate: int) -> None:
    # No click at either end: the tone rises from silence over 5 ms and falls back to it.
    x = attention_tone(1.0, rate, "nwr", amplitude=0.8).astype(np.float64)
    t = np.arange(rate) / rate
    ramp = int(0.005 * rate)
    expected = 0.8 * np.sin(2 * np.pi * 1050.0 * t) * raised_cosine_envelope(rate, ramp)
    assert np.allclose(x, expected, atol=1e-6)
    assert np.max(np.abs(x[: ramp // 4])) < 0.8 * 0.15  # the first quarter of the ramp is quiet
    assert np.max(np.abs(x[ramp : 2 * ramp])) == pytest.approx(0.8, abs=0.01)


def test_an_attention_tone_shorter_than_two_ramps_is_ramped_over_its_halves() -> None:
    rate = 22050
    x = attention_tone(0.004, rate, "nwr").astype(np.float64)  # 88 samples < 2 x 110
    assert len(x) == 88
    t = np.arange(88) / rate
    expected = 0.5 * np.sin(2 * np.pi * 1050.0 * t) * raised_cosine_envelope(88, 44)
    assert np.allclose(x, expected, atol=1e-6)
    # three samples: a ramp of one, so the tone still ends at zero
    x = attention_tone(3 / rate, rate, "nwr").astype(np.float64)
    assert len(x) == 3 and x[0] == 0.0 and x[2] == 0.0 and x[1] != 0.0


@pytest.mark.parametrize(("kind", "freqs"), [("broadcast", (853.0, 960.0)), ("nwr", (1050.0,))])
def test_attention_tone_frequencies_within_half_a_hertz(
    kind: str, freqs: tuple[float, ...]
) -> None:
    # 10 s at 8 kHz: 0.1 Hz per FFT bin, fine enough to tell 960 Hz from 959 Hz.
    rate = 8000
    x = attention_tone(10.0, rate, kind).astype(np.float64)  # type: ignore[arg-type]
    spec = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(len(x), 1 / rate)
    top = sorted(f[np.argsort(spec)[-len(freqs) :]])
    assert top == pytest.approx(list(freqs), abs=0.5 / 2)
    # and nothing else: all but a sliver of the energy is within 2 Hz of the tones
    near = np.zeros(len(f), dtype=bool)
    for freq in freqs:
        near |= np.abs(f - freq) <= 2.0
    assert np.sum(spec[near] ** 2) > 0.99 * np.sum(spec**2)


def test_broadcast_attention_tone_peaks_at_the_amplitude_not_above() -> None:
    # 853 + 960 Hz, each at half the amplitude: the sum reaches the amplitude, never more.
    x = attention_tone(2.0, 22050, "broadcast", amplitude=0.6).astype(np.float64)
    assert np.max(np.abs(x)) <= 0.6 + 1e-6
    assert np.max(np.abs(x)) > 0.59


def test_attention_tone_kind_is_compared_by_value() -> None:
    # A kind read from JSON or a form is an equal string, not the same object as the literal.
    kind = "".join(["n", "w", "r"])
    x = attention_tone(1.0, 16000, kind).astype(np.float64)  # type: ignore[arg-type]
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    assert f[np.argmax(np.abs(np.fft.rfft(x)))] == pytest.approx(1050.0, abs=1.0)
    for wrong in ("tone", "alarm", "Broadcast", ""):  # after, before, beside the two kinds
        with pytest.raises(ValueError, match=f"unknown attention tone kind '{wrong}'"):
            attention_tone(1.0, 16000, wrong)  # type: ignore[arg-type]


HEADER = "ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -"


def test_lowest_sample_rate_is_6000_hz() -> None:
    x = generate(HEADER, 6000, attention=None, lead=0, tail=0, eom=False)
    assert len(x) == 3 * len(encode_burst(HEADER, 6000)) + 2 * 6000
    with pytest.raises(ValueError, match="at least 6000 Hz"):
        generate(HEADER, 5999)


def test_long_bursts_stay_phase_continuous_at_every_rate() -> None:
    # A full-length header (31 locations) is over 2000 bits: well past the bit index where a
    # phase error from mixing up the exact integer arithmetic would begin.
    bits = np.tile([1, 0, 0, 1, 1, 1, 0], 500)  # 3500 bits
    for rate in COMMON_RATES:
        x = modulate_bits(bits, rate, amplitude=1.0).astype(np.float64)
        assert np.max(np.abs(np.diff(x))) <= 2 * np.pi * MARK_HZ / rate * 1.001, rate


def test_default_rate_is_22050() -> None:
    assert len(generate(HEADER)) == len(generate(HEADER, 22050))
    # an 8-second attention signal (47 CFR 11.31: 8 to 25 s)
    with_tone = generate(HEADER, 8000, eom=False)
    assert len(with_tone) == len(generate(HEADER, 8000, attention=8.0, eom=False))
    assert len(with_tone) == len(generate(HEADER, 8000, attention=None, eom=False)) + 9 * 8000
    # half a second of silence before and after by default
    bare = 3 * len(encode_burst(HEADER, 8000)) + 2 * 8000
    assert len(generate(HEADER, 8000, attention=None, eom=False)) == bare + 8000
    assert len(generate(HEADER, attention=None, eom=False, lead=1.0, tail=0, gap=0)) == (
        22050 + 3 * len(encode_burst(HEADER, 22050))
    )


@pytest.mark.parametrize("byte", [0x80, 0xAB, 0xFF])
def test_a_burst_of_eight_bit_bytes_is_refused(byte: int) -> None:
    with pytest.raises(ValueError, match="7-bit ASCII"):
        encode_burst(b"ZCZC" + bytes([byte]), 22050)


def test_seven_bit_bytes_are_all_sent() -> None:
    # 0x7F is the highest 7-bit value: sent, eight bits, eighth bit 0.
    x = encode_burst(bytes([0x00, 0x7F]), 8000)
    assert len(x) == len(modulate_bits(bytes_to_bits(bytes(18)), 8000))
    assert bytes_to_bits(b"\x7f").tolist() == [1, 1, 1, 1, 1, 1, 1, 0]


def test_wav_holds_the_samples_clipped_to_full_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import soundfile as sf

    p = tmp_path / "c.wav"
    write_wav(p, [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], 8000)
    got, rate = sf.read(str(p), dtype="int16")
    assert rate == 8000
    assert got.tolist() == [-32768, -32768, -16384, 0, 16384, 32767, 32767]


def test_narration_is_sent_as_given_between_tone_and_eom() -> None:
    rate = 8000
    narration = np.linspace(-0.25, 0.25, rate, dtype=np.float32).reshape(-1, 1)  # a column
    x = generate(HEADER, rate, attention=None, audio=narration, eom=False, lead=0, tail=0)
    start = 3 * len(encode_burst(HEADER, rate)) + 3 * rate
    assert np.array_equal(x[start : start + rate], narration.reshape(-1))
    assert len(x) == start + rate


def test_the_encoder_is_proven_at_exactly_the_rates_settings_accept() -> None:
    from eas_schemas.station_settings import MESSAGE_SAMPLE_RATES

    assert COMMON_RATES == MESSAGE_SAMPLE_RATES
    assert COMMON_RATES == (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
