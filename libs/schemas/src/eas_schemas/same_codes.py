"""The one table of SAME codes (47 CFR 11.31) and the rules for matching location codes.

Everything that names a SAME code reads it from here: the decoder and header parser
(``eas_same``), every API's validation, the relay rules and (through the events) the
dashboard. Pure Python, no numpy, so the control plane imports it cheaply.

Sources, in ``data/`` beside this module (transcribed 2025; ``tests/test_same_codes.py``
checks that the tables below are exactly what those files hold):

* ``same_events.csv``: event codes with their names, their class for precedence and where
  each comes from: ``fcc`` = the 47 CFR 11.31(e) table (national, state and local codes),
  ``nws`` = codes NOAA Weather Radio transmits (NWS Directive 10-1712, "NWR SAME event
  codes"), which real receivers accept; ``retired`` = EAT, dropped from 11.31(e) but still
  accepted by decoders.
* ``fips_states.csv``: state and territory FIPS codes (US Census Bureau);
* ``fips_counties.csv``: county FIPS codes (US Census Bureau, union of the 2000, 2010, 2015
  and 2020 vintages with current names for renamed areas, plus the Connecticut planning
  regions).

A location code is PSSCCC: P the county subdivision (0 = whole county), SS the state FIPS code
(00 = the whole nation) or an NWS marine area, CCC the county FIPS code (000 = the whole state).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

_LOCATION_RE = re.compile(r"^[0-9]{6}$")
_UGC_RE = re.compile(r"^[A-Z]{2}[CZ]([0-9]{3}|ALL)$")

NATIONAL_CODE = "000000"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("eas_schemas").joinpath(f"data/{name}").read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


# ---- originators (47 CFR 11.31(d)) -----------------------------------------------------------

ORIGINATORS: dict[str, str] = {
    "PEP": "Primary Entry Point System",
    "CIV": "Civil authorities",
    "WXR": "National Weather Service",
    "EAS": "Broadcast station or cable system",
}

#: Phrase used in the plain-language description ("... has issued" / "... have issued").
ORIGINATOR_PHRASES: dict[str, str] = {
    "PEP": "The Primary Entry Point System has issued",
    "CIV": "The civil authorities have issued",
    "WXR": "The National Weather Service has issued",
    "EAS": "A broadcast station or cable system has issued",
}


# ---- events ----------------------------------------------------------------------------------


class EventClass(StrEnum):
    """An event's own class for precedence. ``local`` covers the state and local codes of
    11.31(e): whether one airs as a state or a local message follows from its locations."""

    NATIONAL = "national"
    LOCAL = "local"
    TEST = "test"


class EventSource(StrEnum):
    FCC = "fcc"
    NWS = "nws"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class EventCode:
    code: str
    name: str
    event_class: EventClass
    source: EventSource


def _event_table() -> dict[str, EventCode]:
    out: dict[str, EventCode] = {}
    for row in _rows("same_events.csv"):
        code = row["code"]
        out[code] = EventCode(
            code, row["name"], EventClass(row["class"]), EventSource(row["source"])
        )
    return out


#: Every event code a receiver accepts, with its name, class and source.
EVENT_TABLE: dict[str, EventCode] = _event_table()
#: Code -> name, for every accepted event code.
EVENT_CODES: dict[str, str] = {c: e.name for c, e in EVENT_TABLE.items()}
#: Codes whose class is national (EAN, EAT, NIC, NPT).
NATIONAL_EVENTS: frozenset[str] = frozenset(
    c for c, e in EVENT_TABLE.items() if e.event_class is EventClass.NATIONAL
)
#: Codes that are tests (RWT, RMT, DMO, ...): they air last whatever their area.
TEST_EVENTS: frozenset[str] = frozenset(
    c for c, e in EVENT_TABLE.items() if e.event_class is EventClass.TEST
)


def event_name(code: str) -> str:
    return EVENT_CODES.get(code, f"Unknown event {code}")


def event_class(code: str) -> EventClass | None:
    entry = EVENT_TABLE.get(code)
    return entry.event_class if entry is not None else None


# ---- states, marine areas, counties, subdivisions ---------------------------------------------


@cache
def states() -> dict[str, tuple[str, str]]:
    """State FIPS code -> (postal abbreviation, name), for states, DC and territories."""
    return {r["state_fips"]: (r["state_abbr"], r["state_name"]) for r in _rows("fips_states.csv")}


@cache
def counties() -> dict[str, str]:
    """Five-digit county FIPS code (SSCCC) -> county name."""
    return {
        r["state_fips"] + r["county_fips"]: r["county_name"] for r in _rows("fips_counties.csv")
    }


#: State FIPS code -> postal abbreviation.
STATE_FIPS: dict[str, str] = {fips: abbr for fips, (abbr, _) in states().items()}
STATE_ABBREVIATIONS: dict[str, str] = {abbr: fips for fips, abbr in STATE_FIPS.items()}

#: NWS marine area codes used in the SS position of a SAME location code.
MARINE_AREAS: dict[str, str] = {
    "57": "Eastern North Pacific coastal waters (CA, OR, WA)",
    "58": "North Pacific coastal waters near Alaska",
    "59": "Central Pacific coastal waters near Hawaii",
    "61": "South Central Pacific waters near American Samoa",
    "65": "Western Pacific waters near Guam and the Mariana Islands",
    "73": "Western North Atlantic coastal waters (ME to VA)",
    "75": "Western North Atlantic coastal waters (NC to FL, PR, VI)",
    "77": "Gulf of Mexico coastal waters",
    "91": "Lake Superior",
    "92": "Lake Michigan",
    "93": "Lake Huron",
    "94": "Lake St. Clair",
    "96": "Lake Erie",
    "97": "Lake Ontario",
    "98": "St. Lawrence River",
}
MARINE_AREA_CODES: frozenset[str] = frozenset(MARINE_AREAS)

#: The P digit of PSSCCC ("0" = the whole county).
SUBDIVISIONS: dict[str, str] = {
    "0": "",
    "1": "Northwest",
    "2": "North Central",
    "3": "Northeast",
    "4": "West Central",
    "5": "Central",
    "6": "East Central",
    "7": "Southwest",
    "8": "South Central",
    "9": "Southeast",
}


def valid_state_code(ss: str) -> bool:
    """True for ``00`` (national), a state/territory FIPS code or an NWS marine area."""
    return ss == "00" or ss in STATE_FIPS or ss in MARINE_AREA_CODES


def county_exists(code: str) -> bool:
    """Whether the county part of a PSSCCC code names something real: the whole nation or a
    whole state, a county in the FIPS tables, or any zone of a marine area (not tabled)."""
    ss, ccc = code[1:3], code[3:6]
    if ss == "00" or ccc == "000" or ss in MARINE_AREA_CODES:
        return True
    return ss + ccc in counties()


# ---- deviations from 47 CFR 11.31 that a receiver accepts ------------------------------------

#: Every way a heard header may break the letter of 11.31 and still be decoded (strict on
#: send, lenient on receive), with the plain-language text an operator reads.
DEVIATIONS: dict[str, str] = {
    "callsign_length": "The station identifier is shorter than 8 characters and not padded "
    "with spaces.",
    "callsign_characters": "The station identifier holds characters other than letters, "
    "digits, '/' and spaces.",
    "purge_step": "The purge time is not one of the legal steps (15-minute steps up to an "
    "hour, 30-minute steps beyond).",
    "missing_trailing_dash": "The header does not end with the final dash.",
    "location_count": "The header lists more than 31 locations.",
    "unknown_county": "A location code names a county that does not exist in the FIPS tables.",
    "unknown_event": "The event code is not one of the codes of 47 CFR 11.31 or NOAA Weather "
    "Radio.",
}


def deviation_text(name: str) -> str:
    return DEVIATIONS.get(name, f"Deviation from 47 CFR 11.31: {name}.")


@dataclass(frozen=True, slots=True)
class LocationCode:
    subdivision: str
    state: str
    county: str

    @classmethod
    def parse(cls, code: str) -> LocationCode:
        return cls(code[0], code[1:3], code[3:6])

    @property
    def code(self) -> str:
        return f"{self.subdivision}{self.state}{self.county}"

    @property
    def is_national(self) -> bool:
        return self.state == "00"

    @property
    def is_statewide(self) -> bool:
        return not self.is_national and self.county == "000"


def validate_location_code(code: str) -> str:
    """Return the code if it is a valid PSSCCC location code, else raise ValueError."""
    if not _LOCATION_RE.fullmatch(code):
        raise ValueError(f"SAME location code must be 6 digits PSSCCC, got {code!r}")
    if code[1:3] == "00":
        if code != NATIONAL_CODE:
            raise ValueError(f"national SAME code must be 000000, got {code!r}")
        return code
    if code[1:3] not in STATE_FIPS and code[1:3] not in MARINE_AREA_CODES:
        raise ValueError(f"unknown state FIPS code {code[1:3]!r} in SAME code {code!r}")
    return code


def validate_ugc_code(code: str) -> str:
    upper = code.strip().upper()
    if not _UGC_RE.fullmatch(upper):
        raise ValueError(f"UGC code must look like OHC035, OHZ014 or OHZALL, got {code!r}")
    return upper


def validate_event_code(code: str) -> str:
    upper = code.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", upper):
        raise ValueError(f"SAME event code must be 3 letters, got {code!r}")
    return upper


if TYPE_CHECKING:
    from pydantic import AfterValidator

    SameLocationCode = Annotated[str, AfterValidator(validate_location_code)]
    UgcCode = Annotated[str, AfterValidator(validate_ugc_code)]
    SameEventCode = Annotated[str, AfterValidator(validate_event_code)]

_VALIDATED = {
    "SameLocationCode": validate_location_code,
    "UgcCode": validate_ugc_code,
    "SameEventCode": validate_event_code,
}


def __getattr__(name: str) -> Any:
    # The pydantic field types are built on first use (PEP 562): the SAME decoder reads the
    # tables here but validates no models, and importing pydantic is most of its start-up.
    validator = _VALIDATED.get(name)
    if validator is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pydantic import AfterValidator

    value = Annotated[str, AfterValidator(validator)]
    globals()[name] = value
    return value


def location_covers(alert_code: str, station_code: str) -> str | None:
    """Why an alert's location code covers a station's configured code, or None if it does not.

    The reason is one of ``national``, ``statewide``, ``exact``, ``county`` (whole county vs a
    subdivision, either way round) and is what gets recorded with the relevance decision.
    """
    # Alert codes come from CAP geocodes as sent: one that is not six digits (a seventh digit,
    # a stray sign) covers nothing, rather than matching on the digits that happen to fit.
    if not (_LOCATION_RE.fullmatch(alert_code) and _LOCATION_RE.fullmatch(station_code)):
        return None
    alert = LocationCode.parse(alert_code)
    station = LocationCode.parse(station_code)
    if alert.is_national:
        return "national"
    if alert.state != station.state:
        return None
    if alert.is_statewide or station.is_statewide:
        return "statewide"
    if alert.county != station.county:
        return None
    if alert.subdivision == station.subdivision:
        return "exact"
    if alert.subdivision == "0" or station.subdivision == "0":
        return "county"
    return None


def ugc_covers(alert_code: str, station_code: str) -> bool:
    if not (_UGC_RE.fullmatch(alert_code) and _UGC_RE.fullmatch(station_code)):
        return False  # as for SAME: a malformed code covers nothing
    if alert_code == station_code:
        return True
    # "OHZALL": every zone (or county, with C) of that state, on either side, as a statewide
    # SAME code is: an alert for all of Ohio's zones covers a station in any one of them.
    wildcard = station_code.endswith("ALL") or alert_code.endswith("ALL")
    return wildcard and alert_code[:3] == station_code[:3]
