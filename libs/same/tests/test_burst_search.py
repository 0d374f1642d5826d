"""The transmission-level steps of the decoder: a burst that no tracker synchronises to is
found where the other two put it, and the three bursts are re-timed on one clock."""

from __future__ import annotations

import numpy as np

from eas_same.decoder import HeaderDecoded, SameDecoder
from eas_same.encoder import BAUD
from eas_same.simulate import band_noise, transmission

RATE = 22050
HEADER = "ZCZC-WXR-TOR-039035-039049+0030-3181518-KCLE/NWS-"


def _decode(x: np.ndarray) -> tuple[list[HeaderDecoded], SameDecoder]:
    dec = SameDecoder(RATE)
    events = dec.feed(x)
    events.extend(dec.flush())
    return [e for e in events if isinstance(e, HeaderDecoded)], dec


def test_a_burst_whose_sync_word_is_lost_is_found_where_the_others_put_it() -> None:
    tx = transmission(HEADER, RATE, clock_offset=0.012)
    x = tx.samples.astype(np.float64)
    rng = np.random.default_rng(7)
    x += 0.3 * 10 ** (-15 / 20) * band_noise(len(x), RATE, rng)
    # loud noise over the last two preamble bytes of the middle burst: its sync word
    # (AB AB ZCZC) has far more than 5 wrong bits, so no tracker locks onto it, while 144 of
    # the 160 bits the search correlates are intact
    s, _ = tx.burst_spans[1]
    spb = RATE / (BAUD * (1 + tx.clock_offset))
    a, b = s + round(112 * spb), s + round(128 * spb)
    x[a:b] = 3.0 * band_noise(b - a, RATE, rng)
    heard, dec = _decode(x)
    assert dec.stats.syncs_header == 2
    assert dec.stats.bursts_searched == 1
    assert [h.text for h in heard] == [HEADER]
    assert heard[0].bursts == 3


def test_clean_transmission_needs_no_search() -> None:
    tx = transmission(HEADER, RATE, clock_offset=-0.015)
    heard, dec = _decode(tx.samples.astype(np.float64))
    assert dec.stats.syncs_header == 3
    assert dec.stats.bursts_searched == 0
    assert [h.text for h in heard] == [HEADER]
    assert heard[0].agreed == 3
