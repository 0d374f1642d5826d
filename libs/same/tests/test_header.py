from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eas_same import codes
from eas_same.header import (
    SameHeader,
    SameHeaderError,
    describe_location,
    header_length,
    parse_header,
    resolve_issue_time,
    validate_duration,
)

GOOD = "ZCZC-WXR-TOR-039035-039055+0100-3181518-KXYZ/FM -"


def test_parse_fields() -> None:
    h = parse_header(GOOD)
    assert h.originator == "WXR"
    assert h.event == "TOR"
    assert h.locations == ("039035", "039055")
    assert h.duration == "0100"
    assert h.purge_duration == timedelta(hours=1)
    assert h.issued_text == "3181518"
    assert (h.issue_day, h.issue_hour, h.issue_minute) == (318, 15, 18)
    assert h.callsign == "KXYZ/FM "
    assert h.text == GOOD == h.raw
    assert len(GOOD) == header_length(2)


def test_real_headers_parse() -> None:
    for text in (
        "ZCZC-CIV-LEW-004013+1000-3032318-WOLF/IP -",
        "ZCZC-EAS-RWT-042001-042071-042133+0300-3040858-WJON/TV -",
        "ZCZC-PEP-EAN-000000+0400-0011200-WHITEHSE-",
    ):
        assert parse_header(text).text == text


def test_create_pads_callsign_and_formats() -> None:
    h = SameHeader.create(
        originator="WXR",
        event="SVR",
        locations=["039035"],
        duration="0045",
        issued=datetime(2024, 2, 1, 9, 5, tzinfo=UTC),
        callsign="KXYZ",
    )
    assert h.text == "ZCZC-WXR-SVR-039035+0045-0320905-KXYZ    -"


def test_31_locations_ok_32_not() -> None:
    locs = [f"0{39000 + i:05d}" for i in range(1, 64, 2)][:31]
    h = SameHeader.create(
        originator="CIV",
        event="EVI",
        locations=locs,
        duration="0200",
        issued="0010000",
        callsign="ABCDEFGH",
    )
    assert len(h.locations) == 31 and len(h.text) == header_length(31)
    with pytest.raises(SameHeaderError, match="location"):
        SameHeader.create(
            originator="CIV",
            event="EVI",
            locations=[*locs, "039001"],
            duration="0200",
            issued="0010000",
            callsign="ABCDEFGH",
        )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ZCZC-PEP-WSW-", "form"),
        ("ZCZC-EAN-TOR-039035+0100-3181518-KXYZ/FM -", "originator"),  # EAN is not an ORG
        ("ZCZC-XYZ-TOR-039035+0100-3181518-KXYZ/FM -", "originator"),
        ("ZCZC-WXR-TOX-039035+0100-3181518-KXYZ/FM -", "event"),
        ("ZCZC-WXR-tor-039035+0100-3181518-KXYZ/FM -", "event"),
        ("ZCZC-WXR-TOR-+0100-3181518-KXYZ/FM -", "location"),
        ("ZCZC-WXR-TOR-39035+0100-3181518-KXYZ/FM -", "location"),
        ("ZCZC-WXR-TOR-03903A+0100-3181518-KXYZ/FM -", "location"),
        ("ZCZC-WXR-TOR-003035+0100-3181518-KXYZ/FM -", "state"),  # state 03 unused
        ("ZCZC-WXR-TOR-099035+0100-3181518-KXYZ/FM -", "state"),
        ("ZCZC-WXR-TOR-000035+0100-3181518-KXYZ/FM -", "national"),
        ("ZCZC-WXR-TOR-039035+0010-3181518-KXYZ/FM -", "15-minute"),
        ("ZCZC-WXR-TOR-039035+0000-3181518-KXYZ/FM -", "15-minute"),
        ("ZCZC-WXR-TOR-039035+0115-3181518-KXYZ/FM -", "30-minute"),
        ("ZCZC-WXR-TOR-039035+0160-3181518-KXYZ/FM -", "minutes"),
        ("ZCZC-WXR-TOR-039035+01O0-3181518-KXYZ/FM -", "four digits"),
        ("ZCZC-WXR-TOR-039035+0100-0001518-KXYZ/FM -", "day of year"),
        ("ZCZC-WXR-TOR-039035+0100-3671518-KXYZ/FM -", "day of year"),
        ("ZCZC-WXR-TOR-039035+0100-3182418-KXYZ/FM -", "hour"),
        ("ZCZC-WXR-TOR-039035+0100-3181560-KXYZ/FM -", "minute"),
        ("ZCZC-WXR-TOR-039035+0100-318151-KXYZ/FM -", "form"),
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM-", "form"),  # 7-char callsign
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM  -", "form"),  # 9-char callsign
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ\x01FM -", "invalid character"),
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM ", "form"),  # no final dash
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -x", "form"),
        ("ZCZD-WXR-TOR-039035+0100-3181518-KXYZ/FM -", "ZCZC"),
        ("ZCZC-WXR-TOR-039035-+0100-3181518-KXYZ/FM -", "location"),
        ("", "ZCZC"),
    ],
)
def test_invalid_headers(text: str, reason: str) -> None:
    with pytest.raises(SameHeaderError, match=reason):
        parse_header(text)


def test_lenient_duration() -> None:
    text = "ZCZC-WXR-TOR-039035+0010-3181518-KXYZ/FM -"
    assert parse_header(text, lenient_duration=True).purge_duration == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("ttt", "minutes"),
    [
        ("0015", 15),
        ("0030", 30),
        ("0045", 45),
        ("0100", 60),
        ("0130", 90),
        ("0600", 360),
        ("9930", 99 * 60 + 30),
    ],
)
def test_purge_is_hhmm_not_minutes(ttt: str, minutes: int) -> None:
    h = parse_header(f"ZCZC-WXR-TOR-039035+{ttt}-3181518-KXYZ/FM -")
    assert h.purge_duration == timedelta(minutes=minutes)
    assert h.purge_at(2024) - h.issued_at(2024) == timedelta(minutes=minutes)


def test_times_utc_and_year_boundary() -> None:
    h = parse_header("ZCZC-WXR-WSW-039035+0200-3652330-KXYZ/FM -")
    issued = h.issued_at(2023)
    assert issued == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)
    assert issued.tzinfo is UTC
    assert h.purge_at(2023) == datetime(2024, 1, 1, 1, 30, tzinfo=UTC)
    # decoded on 1 January 2024: day 365 belongs to the previous year
    assert h.issued_near(datetime(2024, 1, 1, 0, 10, tzinfo=UTC)).year == 2023
    # day 366 only exists in leap years
    h366 = parse_header("ZCZC-WXR-WSW-039035+0200-3661200-KXYZ/FM -")
    assert h366.issued_at(2024) == datetime(2024, 12, 31, 12, 0, tzinfo=UTC)
    with pytest.raises(SameHeaderError):
        h366.issued_at(2023)
    assert resolve_issue_time(366, 12, 0, datetime(2025, 1, 2, tzinfo=UTC)).year == 2024
    # day 1 heard on 31 December is next year's (clock skew at the sender), in odd years too
    assert resolve_issue_time(1, 0, 5, datetime(2024, 12, 31, 23, 58, tzinfo=UTC)).year == 2025
    assert resolve_issue_time(1, 0, 5, datetime(2025, 12, 31, 23, 58, tzinfo=UTC)).year == 2026
    # naive "now" is treated as UTC
    assert resolve_issue_time(100, 1, 2, datetime(2024, 5, 1)).year == 2024
    # day 366 heard mid-way through a leap year: the year before has no day 366, the search
    # goes on to this year
    assert resolve_issue_time(366, 12, 0, datetime(2024, 6, 1, tzinfo=UTC)) == datetime(
        2024, 12, 31, 12, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "national"),
    [
        ("ZCZC-PEP-EAN-000000+0400-0011200-WHITEHSE-", True),
        ("ZCZC-PEP-NPT-000000+0400-0011200-WHITEHSE-", True),
        ("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -", False),
        ("ZCZC-EAS-RWT-042001+0300-3040858-WJON/TV -", False),
    ],
)
def test_national_events(text: str, national: bool) -> None:
    assert parse_header(text).is_national is national


def test_describe() -> None:
    h = parse_header("ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -")
    text = h.describe()
    assert text.startswith("The National Weather Service has issued a Tornado Warning for ")
    assert "Cuyahoga County, OH" in text
    assert "beginning at 3:18 PM and ending at 4:18 PM (UTC)" in text
    assert text.endswith("Message from KXYZ/FM.")
    dated = h.describe(year=2024)
    assert "November 13, 2024" in dated
    civ = parse_header("ZCZC-CIV-EVI-000000+0030-0011200-ABC     -").describe()
    assert civ.startswith("The civil authorities have issued an Evacuation Immediate for the")
    assert "the United States" in civ


def test_describe_locations() -> None:
    assert describe_location("039035") == "Cuyahoga County, OH"
    assert describe_location("139035") == "northwest Cuyahoga County, OH"
    assert describe_location("039000") == "all of Ohio"
    assert describe_location("000000") == "the United States"
    assert describe_location("072127") == "San Juan Municipio, PR"
    assert describe_location("004013") == "Maricopa County, AZ"
    assert describe_location("039999") == "area 039999 (OH)"
    assert "Lake Erie" in describe_location("096142")


def test_fips_tables() -> None:
    states = codes.states()
    assert len({k for k in states if int(k) <= 56}) == 51  # 50 states + DC
    for code in ("60", "66", "69", "72", "78"):
        assert code in states
    counties = codes.counties()
    assert len(counties) > 3200
    per_state = {k[:2] for k in counties}
    assert {k for k in states if int(k) <= 56} <= per_state
    assert counties["51760"] == "Richmond city"


def test_event_table() -> None:
    for code in (
        "EAN",
        "NPT",
        "RMT",
        "RWT",
        "NMN",
        "DMO",
        "TOR",
        "SVR",
        "FFW",
        "CEM",
        "EVI",
        "SPW",
        "BLU",
        "CAE",
        "LEW",
        "SQW",
    ):
        assert code in codes.EVENTS
    assert "EAN" not in codes.ORIGINATORS


def test_to_dict() -> None:
    d = parse_header(GOOD).to_dict(now=datetime(2024, 11, 14, tzinfo=UTC))
    assert d["originator"] == "WXR" and d["event_name"] == "Tornado Warning"
    assert d["locations"] == ["039035", "039055"]
    assert d["issued"] == "2024-11-13T15:18:00+00:00"
    assert d["purge_at"] == "2024-11-13T16:18:00+00:00"
    assert d["duration_minutes"] == 60


def test_create_takes_the_issue_time_in_any_zone_as_utc() -> None:
    def issued(at: datetime) -> str:
        return SameHeader.create(
            originator="WXR",
            event="SVR",
            locations=["039035"],
            duration="0045",
            issued=at,
            callsign="KXYZ",
        ).issued_text

    eastern = timezone(timedelta(hours=-5))
    assert issued(datetime(2024, 2, 1, 4, 5, tzinfo=eastern)) == "0320905"  # 09:05 UTC
    assert issued(datetime(2024, 2, 1, 4, 5)) == "0320405"  # a naive time is taken as UTC


def test_a_parsed_header_cannot_be_changed() -> None:
    h = parse_header(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.event = "EAN"  # type: ignore[misc]


def test_strict_is_the_default_on_send() -> None:
    # A header the station makes, and a duration it checks, keep to the legal steps unless a
    # caller asks otherwise by name (the origination API relies on both defaults).
    with pytest.raises(SameHeaderError, match="15-minute step"):
        SameHeader.create(
            originator="CIV",
            event="CEM",
            locations=["039035"],
            duration="0010",
            issued="3181518",
            callsign="KXYZ",
        )
    with pytest.raises(SameHeaderError, match="30-minute step"):
        validate_duration("0145")
