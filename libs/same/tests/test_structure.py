"""Decoding against the header's structure (``eas_same._structure``): the most likely value
of each field given the bits, and the reliability that decides whether it may be emitted."""

from __future__ import annotations

import numpy as np
import pytest

from eas_same._structure import correct, frame, structured_error
from eas_same.decoder import MAX_EXPECTED_ERRORS
from eas_same.encoder import bytes_to_bits
from eas_same.header import SameHeaderError, parse_header

HEADER = "ZCZC-WXR-TOR-039035-039093+0100-3181518-KXYZ/FM -"


def llr_of(text: str, strength: float = 14.0) -> np.ndarray:
    bits = bytes_to_bits(text.encode("ascii")).astype(np.float64)
    return (2.0 * bits - 1.0) * strength


def text_of(llr: np.ndarray) -> str:
    b = (llr > 0).astype(np.int64).reshape(-1, 8)
    return "".join(chr(int(v)) for v in (b[:, :7] << np.arange(7)).sum(axis=1))


@pytest.mark.parametrize(
    "text",
    [
        HEADER,
        "ZCZC-CIV-XYZ-000000+0010-0010000-N0CALL@ -",  # unknown event, purge off the steps
        "ZCZC-EAS-RWT-042001-042071-042133+0300-3040858-WJON/TV ",  # no final dash
        "ZCZC-PEP-EAN-000000+0015-3660000-KX-",  # short callsign
        "ZCZC-WXR-SVR-139000-539999+0045-0012359-WXL58   -",  # statewide, unknown county
    ],
)
def test_a_clean_decode_is_kept_as_it_is(text: str) -> None:
    llr = llr_of(text)
    fr = frame(text, final=True)
    assert fr is not None and fr.length == len(text)
    assert correct(text, llr, fr) == text
    assert structured_error(text, llr, fr) < MAX_EXPECTED_ERRORS


def _flip(llr: np.ndarray, char: int, bit: int, value: float) -> np.ndarray:
    out = llr.copy()
    out[8 * char + bit] = value
    return out


def test_a_weak_bit_that_turns_a_digit_into_a_letter_is_read_as_the_digit() -> None:
    i = HEADER.index("039035") + 1  # the '3' of the state code
    llr = _flip(llr_of(HEADER), i, 6, 2.0)  # '3' 0x33 -> 's' 0x73 on one unsure bit
    hard = text_of(llr)
    assert hard[i] == "s"
    with pytest.raises(SameHeaderError):
        parse_header(hard, lenient=True)
    fr = frame(hard, final=True)
    assert fr is not None
    fixed = correct(hard, llr, fr)
    assert fixed == HEADER
    assert structured_error(fixed, llr, fr) < MAX_EXPECTED_ERRORS
    # the same flip on a bit that is nearly a coin toss: corrected, but a share of the
    # bitwise estimate still counts it (the text heard may not have been a header at all)
    llr = _flip(llr_of(HEADER), i, 6, 0.3)
    assert correct(text_of(llr), llr, fr) == HEADER
    assert structured_error(HEADER, llr, fr) > MAX_EXPECTED_ERRORS


def test_a_possible_value_is_never_replaced() -> None:
    # purge time 0010 is off the steps (prior 2 %) and one bit from 0030: heard on a weak
    # bit it stays 0010 (and is not trusted), it does not become the legal step
    text = "ZCZC-CIV-RWT-039035+0010-0010000-KXYZ/FM -"
    i = text.index("+0010") + 3
    llr = _flip(llr_of(text), i, 1, -0.5)
    fr = frame(text, final=True)
    assert fr is not None
    assert correct(text_of(llr), llr, fr) == text
    assert structured_error(text, llr, fr) > MAX_EXPECTED_ERRORS


def test_a_county_that_does_not_exist_needs_strong_bits() -> None:
    # 039035 (Cuyahoga, OH) -> 039034 by its last bit: Ohio's county numbers are odd. A
    # weakly heard 034 is a possible value and stays as heard, but is not trusted (the
    # prior makes 035 the likely county); a strongly heard 034 (the deviation
    # "unknown_county") is trusted; a weakly heard 035 gains from the prior
    text = "ZCZC-CIV-RWT-039035+0030-0010000-KXYZ/FM -"
    i = text.index("039035") + 5
    fr = frame(text, final=True)
    assert fr is not None
    weak = _flip(llr_of(text), i, 0, -1.0)
    assert text_of(weak)[i] == "4"
    other = text.replace("039035", "039034")
    assert correct(text_of(weak), weak, fr) == other
    assert structured_error(other, weak, fr) > 0.5
    unsure = _flip(llr_of(text), i, 0, 1.5)  # 035 heard, its last bit unsure
    assert structured_error(text, unsure, fr) < 0.04
    strong = llr_of(other)
    assert correct(other, strong, fr) == other
    assert structured_error(other, strong, fr) < MAX_EXPECTED_ERRORS


def test_an_ambiguous_field_is_corrected_but_not_trusted() -> None:
    # minute '18' -> its '1' with a bit that is as likely wrong as right: '1' (0x31) or '0'
    # (0x30) are both valid minutes, so the decode is not reliable whichever is chosen
    i = HEADER.index("3181518") + 5
    llr = _flip(llr_of(HEADER), i, 0, 0.01)
    fr = frame(text_of(llr), final=True)
    assert fr is not None
    fixed = correct(text_of(llr), llr, fr)
    assert fixed == HEADER
    assert structured_error(fixed, llr, fr) > 0.4


def test_the_fixed_characters_come_from_the_grammar() -> None:
    llr = llr_of(HEADER)
    for pos in (4, 8, HEADER.index("+0100") + 5):  # the dashes around fields
        llr = _flip(llr, pos, 0, -0.2)  # "-" 0x2D -> "," 0x2C
    hard = text_of(llr)
    assert hard.count(",") == 3
    fr = frame(hard, final=True)
    assert fr is not None
    assert correct(hard, llr, fr) == HEADER


def test_the_national_code_is_read_whole() -> None:
    # 00 names the nation only with county 000: a weak bit making it 000001 is read as the
    # national code, not as a state whose digits the bits do not support
    text = "ZCZC-PEP-EAN-000000+0015-3660000-KXYZ/FM -"
    i = text.index("000000")
    llr = _flip(llr_of(text), i + 5, 0, 0.2)
    hard = text_of(llr)
    assert hard[i : i + 6] == "000001"
    with pytest.raises(SameHeaderError):
        parse_header(hard, lenient=True)
    fr = frame(hard, final=True)
    assert fr is not None
    assert correct(hard, llr, fr) == text
