"""Human names for SAME location codes and UGC zones shown beside the settings.

Names come from the one SAME code table (``eas_schemas.same_codes``), which is pure Python:
the control plane never imports ``eas_same`` (numpy and scipy for its modem) to name a county.
"""

from __future__ import annotations

from eas_schemas.same_codes import (
    MARINE_AREA_CODES,
    NATIONAL_CODE,
    STATE_ABBREVIATIONS,
    STATE_FIPS,
    counties,
    states,
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


def same_code_name(code: str) -> str | None:
    if code == NATIONAL_CODE:
        return "United States (national)"
    ss, ccc, part = code[1:3], code[3:6], code[0]
    if ss in MARINE_AREA_CODES:
        return f"marine area {ss}"
    if ss not in STATE_FIPS:
        return None
    abbr, state = states()[ss]
    if ccc == "000":
        return f"all of {state}"
    county_name = counties().get(ss + ccc)
    if county_name is None:
        return None
    county = f"{county_name}, {abbr}"
    if part != "0":
        return f"{_SUBDIVISIONS.get(part, 'part ' + part)} {county}"
    return county


def ugc_code_name(code: str) -> str | None:
    ss = STATE_ABBREVIATIONS.get(code[:2])
    if ss is None:
        return None
    abbr, state = states()[ss]
    if code.endswith("ALL"):
        return f"all {'zones' if code[2] == 'Z' else 'counties'} of {state}"
    if code[2] == "C":
        county_name = counties().get(ss + code[3:])
        return f"{county_name}, {abbr}" if county_name else f"county {code[3:]} of {state}"
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
