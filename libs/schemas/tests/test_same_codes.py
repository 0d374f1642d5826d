"""The one SAME code table agrees with its source files and with 47 CFR 11.31(e)."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from eas_schemas import same_codes as sc

# 47 CFR 11.31(e), transcribed independently of data/same_events.csv.
CFR_11_31_E = {
    "EAN", "NIC", "NPT", "RMT", "RWT",
    "ADR", "AVW", "AVA", "BZW", "BLU", "CAE", "CDW", "CEM", "CFW", "CFA", "DSW", "EQW", "EVI",
    "EWW", "FRW", "FFW", "FFA", "FFS", "FLW", "FLA", "FLS", "HMW", "HWW", "HWA", "HUW", "HUA",
    "HLS", "LEW", "LAE", "NMN", "TOE", "NUW", "DMO", "RHW", "SVR", "SVA", "SVS", "SPW", "SMW",
    "SPS", "SSA", "SSW", "TOR", "TOA", "TRW", "TRA", "TSW", "TSA", "VOW", "WSW", "WSA",
}  # fmt: skip


def _source(name: str) -> list[dict[str, str]]:
    text = resources.files("eas_schemas").joinpath(f"data/{name}").read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_event_table_is_its_source_file() -> None:
    rows = _source("same_events.csv")
    assert len({r["code"] for r in rows}) == len(rows), "a code is listed twice"
    assert {r["code"]: (r["name"], r["class"], r["source"]) for r in rows} == {
        c: (e.name, e.event_class.value, e.source.value) for c, e in sc.EVENT_TABLE.items()
    }
    assert {r["code"]: r["name"] for r in rows} == sc.EVENT_CODES


def test_fcc_codes_are_exactly_11_31_e() -> None:
    fcc = {c for c, e in sc.EVENT_TABLE.items() if e.source is sc.EventSource.FCC}
    assert fcc == CFR_11_31_E
    # codes heard on air that the API refused before there was one table
    assert {"SQW", "TXB", "FSW", "EAT"} <= set(sc.EVENT_CODES)
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in sc.EVENT_CODES)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("EAN", sc.EventClass.NATIONAL),
        ("NPT", sc.EventClass.NATIONAL),
        ("EAT", sc.EventClass.NATIONAL),
        ("RWT", sc.EventClass.TEST),
        ("RMT", sc.EventClass.TEST),
        ("DMO", sc.EventClass.TEST),
        ("TOR", sc.EventClass.LOCAL),
        ("CEM", sc.EventClass.LOCAL),
    ],
)
def test_event_classes(code: str, cls: sc.EventClass) -> None:
    assert sc.event_class(code) is cls


def test_state_and_county_tables_are_their_source_files() -> None:
    states = _source("fips_states.csv")
    assert {r["state_fips"]: r["state_abbr"] for r in states} == sc.STATE_FIPS
    assert sc.states()["39"] == ("OH", "Ohio")
    counties = _source("fips_counties.csv")
    assert len(sc.counties()) == len(counties)
    assert sc.counties()["39035"] == "Cuyahoga County"


@pytest.mark.parametrize(
    ("code", "exists"),
    [
        ("039035", True),  # Cuyahoga County, OH
        ("539035", True),  # a subdivision of it
        ("039000", True),  # all of Ohio
        ("000000", True),  # the nation
        ("073530", True),  # a marine zone: not tabled, never called unknown
        ("039999", False),
        ("039002", False),  # Ohio's county codes are odd
    ],
)
def test_county_exists(code: str, exists: bool) -> None:
    assert sc.county_exists(code) is exists


def test_every_deviation_has_plain_text() -> None:
    assert list(sc.DEVIATIONS) == [
        "callsign_length",
        "callsign_characters",
        "purge_step",
        "missing_trailing_dash",
        "location_count",
        "unknown_county",
        "unknown_event",
    ]
    assert all(text.endswith(".") and len(text) > 20 for text in sc.DEVIATIONS.values())
    assert sc.deviation_text("purge_step") == sc.DEVIATIONS["purge_step"]
