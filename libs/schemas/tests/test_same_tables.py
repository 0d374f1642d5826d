"""The SAME tables a receiver and the relevance rules consult: states, counties, marine
areas, event classes. Each row here is a code that would be misread by a slip in the lookups
(a county of another state, a marine zone taken for a county, a test taken for a warning)."""

from __future__ import annotations

import pytest

from eas_schemas.same_codes import (
    DEVIATIONS,
    EVENT_CODES,
    EVENT_TABLE,
    NATIONAL_EVENTS,
    STATE_ABBREVIATIONS,
    STATE_FIPS,
    TEST_EVENTS,
    EventClass,
    EventSource,
    counties,
    county_exists,
    deviation_text,
    event_class,
    event_name,
    states,
    valid_state_code,
)


@pytest.mark.parametrize(
    ("ss", "valid"),
    [
        ("00", True),  # the nation
        ("39", True),
        ("11", True),  # DC
        ("72", True),  # Puerto Rico
        ("78", True),  # US Virgin Islands
        ("96", True),  # Lake Erie (marine)
        ("57", True),
        ("03", False),  # never assigned
        ("43", False),
        ("99", False),
        ("0", False),
        ("", False),
    ],
)
def test_valid_state_codes(ss: str, valid: bool) -> None:
    assert valid_state_code(ss) is valid


@pytest.mark.parametrize(
    ("code", "exists"),
    [
        ("039035", True),  # Cuyahoga, OH
        ("139035", True),  # a part of it
        ("051760", True),  # Richmond city, VA
        ("072127", True),  # San Juan, PR
        ("039000", True),  # all of Ohio
        ("000000", True),  # the nation
        ("096142", True),  # a Lake Erie zone: marine zones are not tabled
        ("039999", False),  # no county 999 in Ohio
        ("039002", False),  # Ohio's counties are odd-numbered
        ("048035", True),  # Bosque, TX: the same county number in another state
        ("011003", False),  # DC has one "county", 001
    ],
)
def test_county_exists(code: str, exists: bool) -> None:
    assert county_exists(code) is exists


def test_state_and_county_tables() -> None:
    assert states()["39"] == ("OH", "Ohio")
    assert STATE_FIPS["39"] == "OH" and STATE_ABBREVIATIONS["OH"] == "39"
    assert len({k for k in states() if int(k) <= 56}) == 51  # 50 states and DC
    assert counties()["39035"] == "Cuyahoga County"
    assert counties()["51760"] == "Richmond city"
    assert counties()["48035"] == "Bosque County"
    assert all(len(k) == 5 and k.isdigit() for k in counties())


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("EAN", EventClass.NATIONAL),
        ("NPT", EventClass.NATIONAL),
        ("NIC", EventClass.NATIONAL),
        ("RWT", EventClass.TEST),
        ("RMT", EventClass.TEST),
        ("DMO", EventClass.TEST),
        ("TOR", EventClass.LOCAL),
        ("CAE", EventClass.LOCAL),
        ("XYZ", None),
        ("tor", None),
    ],
)
def test_event_classes(code: str, cls: EventClass | None) -> None:
    assert event_class(code) is cls
    assert (code in NATIONAL_EVENTS) is (cls is EventClass.NATIONAL)
    assert (code in TEST_EVENTS) is (cls is EventClass.TEST)


def test_event_names_and_table() -> None:
    assert event_name("TOR") == "Tornado Warning"
    assert event_name("XYZ") == "Unknown event XYZ"
    assert EVENT_CODES["RWT"] == "Required Weekly Test"
    tor = EVENT_TABLE["TOR"]
    assert (tor.code, tor.name, tor.event_class, tor.source) == (
        "TOR",
        "Tornado Warning",
        EventClass.LOCAL,
        EventSource.FCC,
    )
    assert all(code == entry.code and len(code) == 3 for code, entry in EVENT_TABLE.items())
    assert NATIONAL_EVENTS.isdisjoint(TEST_EVENTS)


def test_deviation_texts() -> None:
    assert deviation_text("purge_step") == DEVIATIONS["purge_step"]
    assert deviation_text("new_kind") == "Deviation from 47 CFR 11.31: new_kind."


def test_the_event_table_cannot_be_changed_by_a_caller() -> None:
    # One table shared by every service in the process: an entry changed in place by one
    # caller (say, a test event made local) would change precedence for all of them.
    from dataclasses import FrozenInstanceError

    from eas_schemas.same_codes import EVENT_TABLE, EventClass

    with pytest.raises(FrozenInstanceError):
        EVENT_TABLE["RWT"].event_class = EventClass.LOCAL  # type: ignore[misc]
    assert EVENT_TABLE["RWT"].event_class is EventClass.TEST
