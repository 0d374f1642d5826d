"""SAME location and event codes (47 CFR 11.31) and the rules for matching them.

A location code is PSSCCC: P the county subdivision (0 = whole county), SS the state FIPS code
(00 = the whole nation), CCC the county FIPS code (000 = the whole state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

_LOCATION_RE = re.compile(r"^[0-9]{6}$")
_UGC_RE = re.compile(r"^[A-Z]{2}[CZ]([0-9]{3}|ALL)$")

NATIONAL_CODE = "000000"

ORIGINATORS: dict[str, str] = {
    "PEP": "Primary Entry Point System",
    "CIV": "Civil authorities",
    "WXR": "National Weather Service",
    "EAS": "EAS Participant",
}

# Event codes of 47 CFR 11.31(e) plus those in common NWS/FEMA use.
EVENT_CODES: dict[str, str] = {
    "EAN": "Emergency Action Notification",
    "NIC": "National Information Center",
    "NPT": "National Periodic Test",
    "RMT": "Required Monthly Test",
    "RWT": "Required Weekly Test",
    "ADR": "Administrative Message",
    "AVW": "Avalanche Warning",
    "AVA": "Avalanche Watch",
    "BLU": "Blue Alert",
    "BZW": "Blizzard Warning",
    "CAE": "Child Abduction Emergency",
    "CDW": "Civil Danger Warning",
    "CEM": "Civil Emergency Message",
    "CFW": "Coastal Flood Warning",
    "CFA": "Coastal Flood Watch",
    "DMO": "Practice/Demo Warning",
    "DSW": "Dust Storm Warning",
    "EQW": "Earthquake Warning",
    "EVI": "Evacuation Immediate",
    "EWW": "Extreme Wind Warning",
    "FRW": "Fire Warning",
    "FFW": "Flash Flood Warning",
    "FFA": "Flash Flood Watch",
    "FFS": "Flash Flood Statement",
    "FLW": "Flood Warning",
    "FLA": "Flood Watch",
    "FLS": "Flood Statement",
    "HMW": "Hazardous Materials Warning",
    "HWW": "High Wind Warning",
    "HWA": "High Wind Watch",
    "HUW": "Hurricane Warning",
    "HUA": "Hurricane Watch",
    "HLS": "Hurricane Statement",
    "LEW": "Law Enforcement Warning",
    "LAE": "Local Area Emergency",
    "NMN": "Network Message Notification",
    "TOE": "911 Telephone Outage Emergency",
    "NUW": "Nuclear Power Plant Warning",
    "RHW": "Radiological Hazard Warning",
    "SVR": "Severe Thunderstorm Warning",
    "SVA": "Severe Thunderstorm Watch",
    "SVS": "Severe Weather Statement",
    "SPW": "Shelter in Place Warning",
    "SMW": "Special Marine Warning",
    "SPS": "Special Weather Statement",
    "SSA": "Storm Surge Watch",
    "SSW": "Storm Surge Warning",
    "TOR": "Tornado Warning",
    "TOA": "Tornado Watch",
    "TRW": "Tropical Storm Warning",
    "TRA": "Tropical Storm Watch",
    "TSW": "Tsunami Warning",
    "TSA": "Tsunami Watch",
    "VOW": "Volcano Warning",
    "WSW": "Winter Storm Warning",
    "WSA": "Winter Storm Watch",
}

STATE_FIPS: dict[str, str] = {
    "01": "AL",
    "02": "AK",
    "04": "AZ",
    "05": "AR",
    "06": "CA",
    "08": "CO",
    "09": "CT",
    "10": "DE",
    "11": "DC",
    "12": "FL",
    "13": "GA",
    "15": "HI",
    "16": "ID",
    "17": "IL",
    "18": "IN",
    "19": "IA",
    "20": "KS",
    "21": "KY",
    "22": "LA",
    "23": "ME",
    "24": "MD",
    "25": "MA",
    "26": "MI",
    "27": "MN",
    "28": "MS",
    "29": "MO",
    "30": "MT",
    "31": "NE",
    "32": "NV",
    "33": "NH",
    "34": "NJ",
    "35": "NM",
    "36": "NY",
    "37": "NC",
    "38": "ND",
    "39": "OH",
    "40": "OK",
    "41": "OR",
    "42": "PA",
    "44": "RI",
    "45": "SC",
    "46": "SD",
    "47": "TN",
    "48": "TX",
    "49": "UT",
    "50": "VT",
    "51": "VA",
    "53": "WA",
    "54": "WV",
    "55": "WI",
    "56": "WY",
    "60": "AS",
    "66": "GU",
    "69": "MP",
    "72": "PR",
    "78": "VI",
}
# NWS marine area "state" codes used in SAME location codes for coastal and Great Lakes waters.
MARINE_AREA_CODES = frozenset(
    {"57", "58", "59", "61", "65", "73", "75", "77", "91", "92", "93", "94", "96", "97", "98"}
)
STATE_ABBREVIATIONS = {abbr: fips for fips, abbr in STATE_FIPS.items()}


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


SameLocationCode = Annotated[str, AfterValidator(validate_location_code)]
UgcCode = Annotated[str, AfterValidator(validate_ugc_code)]
SameEventCode = Annotated[str, AfterValidator(validate_event_code)]


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
