"""The same transmission received as CAP and on air (or twice) is one decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audio_control.rules import (
    Candidate,
    decision_event,
    evaluate,
    match_transmissions,
    same_transmission,
)
from eas_schemas.station_settings import LocationSettings, RelayRules

NOW = datetime(2025, 5, 1, 18, 0, tzinfo=UTC)  # the builders' time (conftest `now`)
WINDOW = 900
Factory = Callable[..., Candidate]


@pytest.mark.parametrize(
    ("cap", "air", "same", "why"),
    [
        ({}, {}, True, "same TOR for the same 1 locations, issued 0 s apart"),
        # ECIG 3.11 leaves out LLLLLLLL; the originator differs too when EAS-ORG is absent.
        ({"parameters": ()}, {"originator": "WXR"}, True, "same TOR"),
        ({"codes": ("039035", "039093")}, {"locations": ("039093", "039035")}, True, "same"),
        ({}, {"issued": NOW + timedelta(seconds=WINDOW)}, True, "900 s apart"),
        ({}, {"issued": NOW - timedelta(seconds=WINDOW)}, True, "900 s apart"),
        ({}, {"issued": NOW + timedelta(seconds=WINDOW + 60)}, False, "more than the 900 s"),
        ({"sent": NOW + timedelta(seconds=42)}, {}, True, "42 s apart"),  # CAP has seconds
        # The CAP alert's valid time is rounded up to a legal step, as its header would be.
        ({"expires_in": timedelta(minutes=50)}, {"duration": "0100"}, True, "same"),
        ({"expires_in": timedelta(minutes=50)}, {"duration": "0045"}, False, "purge times"),
        ({"expires_in": timedelta(hours=2)}, {"duration": "0100"}, False, "+0200 / +0100"),
        ({}, {"event": "SVR"}, False, "events differ (TOR / SVR)"),
        ({"codes": ("039035", "039093")}, {}, False, "only ['039093'] / only []"),
        (
            {"codes": ("039035", "039093")},
            {"locations": ("039035", "039101")},
            False,
            "only ['039093'] / only ['039101']",
        ),
        ({}, {"locations": ("039035", "039093")}, False, "locations differ"),
        # Without a SAME code the event looked up from the name is compared...
        ({"same_event": None}, {}, True, "same TOR"),
        # ...and with no code at all there is nothing to compare on.
        ({"same_event": None, "event": "Gas Leak"}, {}, False, "event code is missing"),
    ],
)
def test_cap_and_air_copies(
    make_cap: Factory,
    make_air: Factory,
    cap: dict[str, Any],
    air: dict[str, Any],
    same: bool,
    why: str,
) -> None:
    a, b = make_cap(**cap), make_air(**air)
    result = match_transmissions(a, b, WINDOW)
    assert result.same is same and why in result.reason
    assert same_transmission(b, a, WINDOW) is same  # symmetric


def test_window_is_the_station_setting(make_cap: Factory, make_air: Factory) -> None:
    a, b = make_cap(), make_air(issued=NOW + timedelta(minutes=3))
    assert same_transmission(a, b, 300)
    assert not same_transmission(a, b, 120)


def test_more_than_31_locations_compare_on_the_header(make_cap: Factory, make_air: Factory) -> None:
    codes = tuple(f"039{n:03d}" for n in range(1, 71, 2))
    cap = make_cap(codes=codes)
    assert same_transmission(cap, make_air(locations=codes), WINDOW)
    assert same_transmission(cap, make_air(locations=codes[:31]), WINDOW)


def test_a_stored_decision_compares_like_a_candidate(make_cap: Factory, make_air: Factory) -> None:
    cap = make_cap()
    rules = RelayRules(enabled=True, events=["TOR"])
    result = evaluate(cap, rules, LocationSettings(same_codes=["039035"]), NOW)
    stored = decision_event(cap, result, decision_id=1, decided_at=NOW)
    assert same_transmission(stored, make_air(issued=NOW + timedelta(minutes=2)), WINDOW)
    assert not same_transmission(stored, make_air(event="SVR"), WINDOW)


def test_two_air_copies_of_one_transmission(make_air: Factory) -> None:
    first = make_air(callsign="KCLE/NWS")
    relayed = make_air(callsign="WKYC/TV ", originator="WXR", issued=NOW)
    assert same_transmission(first, relayed, WINDOW)


def test_a_copy_without_a_purge_time_compares_on_the_rest(
    make_cap: Factory, make_air: Factory
) -> None:
    untimed = dataclasses.replace(make_cap(), purge_at=None)
    heard = make_air(duration="0200")  # a purge time that would differ from the CAP one
    assert match_transmissions(untimed, heard, WINDOW).same
    assert match_transmissions(heard, untimed, WINDOW).same
