"""Human names for SAME location codes and UGC zones shown beside the settings.

County names come from the tables the SAME library ships (``eas_same/data``). They are read as
files, without importing ``eas_same`` (which loads numpy and scipy for its modem), so the
control plane starts fast on a small machine. Without those tables, state names only.
"""

from __future__ import annotations

import csv
import importlib.util
from functools import cache
from pathlib import Path

from eas_schemas.same_codes import (
    MARINE_AREA_CODES,
    NATIONAL_CODE,
    STATE_ABBREVIATIONS,
    STATE_FIPS,
)

_SUBDIVISIONS = {
    "1": "northwest",
    "2": "north central",
    "3": "northeast",
    "4": "west central",
    "5": "central",
    "6": "east central",
    "7": "southwest",
    "8": "south central",
    "9": "southeast",
}


def _data_dir() -> Path | None:
    spec = importlib.util.find_spec("eas_same")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data"
        if candidate.is_dir():
            return candidate
    return None


@cache
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """(state FIPS -> state name, SSCCC -> county name)."""
    states: dict[str, str] = {}
    counties: dict[str, str] = {}
    data = _data_dir()
    if data is not None:
        try:
            with (data / "fips_states.csv").open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    states[row["state_fips"]] = row["state_name"]
            with (data / "fips_counties.csv").open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    counties[row["state_fips"] + row["county_fips"]] = (
                        f"{row['county_name']}, {row['state_abbr']}"
                    )
        except (OSError, KeyError):
            states, counties = {}, {}
    return states, counties


def same_code_name(code: str) -> str | None:
    if code == NATIONAL_CODE:
        return "United States (national)"
    states, counties = _tables()
    ss, ccc, part = code[1:3], code[3:6], code[0]
    if ss in MARINE_AREA_CODES:
        return f"marine area {ss}"
    state = states.get(ss) or STATE_FIPS.get(ss)
    if state is None:
        return None
    if ccc == "000":
        return f"all of {state}"
    county = counties.get(ss + ccc)
    if county is None:
        return None
    if part != "0":
        return f"{_SUBDIVISIONS.get(part, 'part ' + part)} {county}"
    return county


def ugc_code_name(code: str) -> str | None:
    ss = STATE_ABBREVIATIONS.get(code[:2])
    if ss is None:
        return None
    states, counties = _tables()
    state = states.get(ss, code[:2])
    if code.endswith("ALL"):
        return f"all {'zones' if code[2] == 'Z' else 'counties'} of {state}"
    if code[2] == "C":
        return counties.get(ss + code[3:]) or f"county {code[3:]} of {state}"
    return f"forecast zone {code[3:]} of {state}"


def location_names(same: list[str], ugc: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code in same:
        name = same_code_name(code)
        if name:
            out[code] = name
    for code in ugc:
        name = ugc_code_name(code)
        if name:
            out[code] = name
    return out
