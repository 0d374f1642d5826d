from __future__ import annotations

import random

import numpy as np
import pytest

from eas_same.encoder import PREAMBLE, bytes_to_bits, modulate_bits, silence
from eas_same.simulate import band_noise, impair, random_header, transmission

from .conftest import decode_all, eoms, headers

RATE = 22050
HEADER = "ZCZC-WXR-SVR-039035-039055-039093+0045-1231742-KCLE/NWS-"


def _decode(x: np.ndarray, rate: int = RATE) -> list[str]:
    events, _ = decode_all(x, rate)
    return headers(events)


@pytest.mark.parametrize("clock", [-0.02, -0.01, 0.0, 0.01, 0.02])
def test_clock_offset_with_noise(clock: float) -> None:
    tx = transmission(HEADER, RATE, clock_offset=clock)
    tx = impair(tx, snr_db=8.0, seed=int(clock * 1000) + 50)
    events, _ = decode_all(tx.samples, RATE)
    assert headers(events) == [HEADER]
    assert len(eoms(events)) == 1


@pytest.mark.parametrize(("gain", "dc"), [(0.01 / 0.3, 0.0), (3.2, 0.0), (1.0, 0.4), (0.5, -0.3)])
def test_level_and_dc(gain: float, dc: float) -> None:
    # -40 dBFS (amplitude 0.01), near clipping (peak ~0.96 + noise), DC offsets
    tx = impair(transmission(HEADER, RATE), snr_db=15.0, seed=3, gain=gain, dc=dc)
    x = np.clip(tx.samples, -1.0, 1.0)
    assert _decode(x) == [HEADER]


def test_one_damaged_burst_still_decodes() -> None:
    for seed in (11, 12, 13, 14):
        tx = impair(
            transmission(HEADER, RATE, clock_offset=0.005), snr_db=6.0, seed=seed, damage=True
        )
        events, _ = decode_all(tx.samples, RATE)
        hs = [e for e in events if e.type == "header"]
        assert [h.text for h in hs] == [HEADER]
        assert hs[0].bursts >= 2


def test_random_headers_moderate_noise() -> None:
    rng = random.Random(7)
    for i in range(6):
        h = random_header(rng).text
        tx = impair(
            transmission(h, RATE, clock_offset=rng.uniform(-0.02, 0.02), attention=0),
            snr_db=5.0,
            seed=100 + i,
            damage=(i % 3 == 0),
        )
        assert _decode(tx.samples) == [h]


def _burst_with_flips(text: str, flips: list[int]) -> np.ndarray:
    bits = bytes_to_bits(PREAMBLE + text.encode()).copy()
    for f in flips:
        bits[8 * len(PREAMBLE) + f] ^= 1
    return modulate_bits(bits, RATE, 0.3)


def test_only_bit_voting_recovers() -> None:
    """Each burst carries different bit errors, so no single burst (and no pair with a
    tie) is right; the three-burst soft vote is."""
    # bit 6 of a digit or letter: '3' -> 's', 'S' -> 'r'... invalid characters
    flips = [[8 * 14 + 6, 8 * 30 + 6], [8 * 21 + 6, 8 * 40 + 6], [8 * 27 + 6, 8 * 47 + 6]]
    rng = np.random.default_rng(5)
    parts = [silence(0.5, RATE)]
    for f in flips:
        parts += [_burst_with_flips(HEADER, f), silence(1.0, RATE)]
    parts.append(silence(2.5, RATE))
    x = np.concatenate(parts).astype(np.float64)
    x += 0.02 * band_noise(len(x), RATE, rng)
    events, _ = decode_all(x, RATE)
    hs = [e for e in events if e.type == "header"]
    assert [h.text for h in hs] == [HEADER]
    assert hs[0].bursts == 3 and hs[0].bursts_used == 3
    assert hs[0].agreed == 0  # no single burst was right


def test_truncated_header_is_never_emitted() -> None:
    parts = [silence(0.5, RATE)]
    for _ in range(3):
        parts += [_burst_with_flips("ZCZC-PEP-WSW-", []), silence(1.0, RATE)]
    parts.append(silence(2.5, RATE))
    x = np.concatenate(parts)
    events, dec = decode_all(x, RATE)
    assert headers(events) == []
    assert dec.stats.headers_rejected == 1


def _three_bursts(text: str) -> np.ndarray:
    parts = [silence(0.5, RATE)]
    for _ in range(3):
        parts += [_burst_with_flips(text, []), silence(1.0, RATE)]
    return np.concatenate([*parts, silence(2.5, RATE)])


def test_invalid_field_is_never_emitted() -> None:
    bad = "ZCZC-WXR-TOR-039035+0060-3181518-KXYZ/FM -"  # purge time with 60 minutes
    events, dec = decode_all(_three_bursts(bad), RATE)
    assert headers(events) == []
    assert dec.stats.headers_rejected == 1


def test_purge_time_off_the_steps_is_decoded_and_named() -> None:
    off_step = "ZCZC-WXR-TOR-039035+0010-3181518-KXYZ/FM -"  # issue 3's closing note
    events, dec = decode_all(_three_bursts(off_step), RATE)
    assert headers(events) == [off_step]
    assert next(e for e in events if e.type == "header").header.deviations == ("purge_step",)
    assert dec.stats.headers_rejected == 0


def test_single_and_two_burst_timeouts() -> None:
    one = np.concatenate([silence(0.5, RATE), _burst_with_flips(HEADER, []), silence(3.0, RATE)])
    events, _ = decode_all(one, RATE)
    hs = [e for e in events if e.type == "header"]
    assert [h.text for h in hs] == [HEADER]
    assert hs[0].bursts == 1 and hs[0].confidence < 0.9
    b = _burst_with_flips(HEADER, [])
    two = np.concatenate([silence(0.5, RATE), b, silence(1.0, RATE), b, silence(3.0, RATE)])
    events, _ = decode_all(two, RATE)
    hs = [e for e in events if e.type == "header"]
    assert [(h.text, h.bursts) for h in hs] == [(HEADER, 2)]


def test_two_transmissions_are_two_headers() -> None:
    other = "ZCZC-CIV-CEM-039035+0100-1231800-KCLE/NWS-"
    a = transmission(HEADER, RATE, attention=0, eom=False).samples
    b = transmission(other, RATE, attention=0, eom=False).samples
    x = np.concatenate([a, silence(3.0, RATE), b])
    assert _decode(x) == [HEADER, other]
