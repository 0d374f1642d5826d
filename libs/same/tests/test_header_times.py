"""Header times and their words: leap years, purge durations, 12-hour clock, midnight wrap.

What a listener hears and reads ("ending at 1:30 AM") and when an alert is purged come from
these few lines; a slip shows up only on particular dates and hours, so each edge is here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eas_same.header import SameHeaderError, parse_header, validate_duration


def header(tttt: str = "0100", issued: str = "3181518") -> str:
    return f"ZCZC-WXR-TOR-039035+{tttt}-{issued}-KXYZ/FM -"


@pytest.mark.parametrize(
    ("year", "leap"),
    [
        (2023, False),
        (2024, True),
        (2025, False),
        (2026, False),
        (2027, False),
        (2028, True),
        (1900, False),
        (2000, True),
        (2100, False),
        (2400, True),
    ],
)
def test_day_366_exists_in_leap_years_only(year: int, leap: bool) -> None:
    h = parse_header(header(issued="3661200"))
    if leap:
        assert h.issued_at(year) == datetime(year, 12, 31, 12, 0, tzinfo=UTC)
    else:
        with pytest.raises(SameHeaderError, match=f"day of year 366 does not exist in {year}"):
            h.issued_at(year)


@pytest.mark.parametrize(
    ("text", "lenient", "minutes"),
    [
        ("0015", False, 15),
        ("0130", False, 90),
        ("0159", True, 119),  # any minute up to 59 when lenient
        ("0000", True, 0),
        ("9959", True, 99 * 60 + 59),
    ],
)
def test_durations(text: str, lenient: bool, minutes: int) -> None:
    assert validate_duration(text, lenient=lenient) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["010", "01000", "", "0160", "01-0"])
def test_durations_refused_even_when_lenient(text: str) -> None:
    with pytest.raises(SameHeaderError, match="purge time"):
        validate_duration(text, lenient=True)


@pytest.mark.parametrize(
    ("issued", "tttt", "words"),
    [
        # (JJJHHMM, TTTT) -> the clock part of describe() without a year
        ("3180000", "0015", "beginning at 12:00 AM and ending at 12:15 AM (UTC)"),
        ("3181159", "0100", "beginning at 11:59 AM and ending at 12:59 PM (UTC)"),
        ("3181200", "0030", "beginning at 12:00 PM and ending at 12:30 PM (UTC)"),
        ("3181300", "0045", "beginning at 1:00 PM and ending at 1:45 PM (UTC)"),
        ("3182330", "0200", "beginning at 11:30 PM and ending at 1:30 AM (UTC)"),  # wraps
        ("3182359", "0100", "beginning at 11:59 PM and ending at 12:59 AM (UTC)"),
    ],
)
def test_described_clock_times(issued: str, tttt: str, words: str) -> None:
    assert words in parse_header(header(tttt, issued)).describe()


@pytest.mark.parametrize(
    ("tttt", "words"),
    [
        ("0015", "valid for 15 minutes"),
        ("0100", "valid for 1 hour)"),
        ("0130", "valid for 1 hour 30 minutes"),
        ("0200", "valid for 2 hours)"),
        ("1000", "valid for 10 hours)"),
    ],
)
def test_described_validity(tttt: str, words: str) -> None:
    assert words in parse_header(header(tttt)).describe()


def test_one_minute_and_no_time_in_words() -> None:
    # Off-step values only reach describe() through lenient parsing.
    one = parse_header(header("0001"), lenient_duration=True).describe()
    assert "valid for 1 minute)" in one
    zero = parse_header(header("0000"), lenient_duration=True).describe()
    assert "valid for 0 minutes)" in zero
    hour_and_one = parse_header(header("0101"), lenient_duration=True).describe()
    assert "valid for 1 hour 1 minute)" in hour_and_one


@pytest.mark.parametrize(
    ("issued", "year", "words"),
    [
        ("0010000", 2024, "beginning at 12:00 AM on Monday, January 1, 2024"),
        ("0011200", 2024, "beginning at 12:00 PM on Monday, January 1, 2024"),
        ("0011159", 2024, "beginning at 11:59 AM on Monday, January 1, 2024"),
        ("0010059", 2024, "beginning at 12:59 AM on Monday, January 1, 2024"),
        ("0011300", 2024, "beginning at 1:00 PM on Monday, January 1, 2024"),
        ("0012359", 2024, "beginning at 11:59 PM on Monday, January 1, 2024"),
        ("3652330", 2023, "ending at 1:30 AM on Monday, January 1, 2024 (UTC)"),
    ],
)
def test_described_dates(issued: str, year: int, words: str) -> None:
    assert words in parse_header(header("0200", issued)).describe(year=year)


def test_to_dict_duration_minutes_is_hhmm() -> None:
    assert parse_header(header("0130")).to_dict()["duration_minutes"] == 90


def _legal_step(hh: int, mm: int) -> bool:
    """47 CFR 11.31(c), written out once more here on purpose: 15-minute steps below an
    hour, 30-minute steps from one hour up to 99 hours 30."""
    return mm in (15, 30, 45) if hh == 0 else mm in (0, 30)


def test_every_purge_time_is_strict_exactly_on_the_legal_steps() -> None:
    # All 6,000 HHMM values with MM <= 59: strict parsing takes exactly the legal steps; a
    # receiver takes every one, naming the others "purge_step" and none of the legal ones.
    for hh in range(100):
        for mm in range(60):
            text = f"{hh:02d}{mm:02d}"
            lenient = parse_header(header(text), lenient=True)
            if _legal_step(hh, mm):
                assert parse_header(header(text)).duration == text
                assert lenient.deviations == (), text
            else:
                with pytest.raises(SameHeaderError, match="step"):
                    parse_header(header(text))
                assert lenient.deviations == ("purge_step",), text
            assert lenient.purge_duration == timedelta(hours=hh, minutes=mm)
