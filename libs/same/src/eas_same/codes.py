"""SAME code tables: originators, event codes, state and county FIPS names.

The event table is the 47 CFR 11.31(e) table (national, state and local codes) plus the
codes that NOAA Weather Radio transmits and that current EAS decoders accept.  A decoder
rejects any event code not listed here: an unknown code is far more likely to be a bit
error than a real, new code, and a wrong alert on air is worse than a dropped one.

County names come from ``data/fips_counties.csv`` (US Census Bureau county FIPS codes,
union of the 2000, 2010, 2015 and 2020 vintages, current names for renamed areas, plus the
Connecticut planning regions); state names and abbreviations from ``data/fips_states.csv``.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

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

#: National codes (47 CFR 11.31(e)).
NATIONAL_EVENTS: dict[str, str] = {
    "EAN": "Emergency Action Notification",
    "EAT": "Emergency Action Termination",  # retired, still accepted by decoders
    "NIC": "National Information Center",
    "NPT": "National Periodic Test",
    "RMT": "Required Monthly Test",
    "RWT": "Required Weekly Test",
}

#: State and local codes (47 CFR 11.31(e)) plus NOAA Weather Radio codes.
LOCAL_EVENTS: dict[str, str] = {
    "ADR": "Administrative Message",
    "AVA": "Avalanche Watch",
    "AVW": "Avalanche Warning",
    "BHW": "Biological Hazard Warning",
    "BLU": "Blue Alert",
    "BWW": "Boil Water Warning",
    "BZW": "Blizzard Warning",
    "CAE": "Child Abduction Emergency",
    "CDW": "Civil Danger Warning",
    "CEM": "Civil Emergency Message",
    "CFA": "Coastal Flood Watch",
    "CFW": "Coastal Flood Warning",
    "CHW": "Chemical Hazard Warning",
    "CWW": "Contaminated Water Warning",
    "DBA": "Dam Watch",
    "DBW": "Dam Break Warning",
    "DEW": "Contagious Disease Warning",
    "DMO": "Practice/Demo Warning",
    "DSW": "Dust Storm Warning",
    "EQW": "Earthquake Warning",
    "EVA": "Evacuation Watch",
    "EVI": "Evacuation Immediate",
    "EWW": "Extreme Wind Warning",
    "FCW": "Food Contamination Warning",
    "FFA": "Flash Flood Watch",
    "FFS": "Flash Flood Statement",
    "FFW": "Flash Flood Warning",
    "FLA": "Flood Watch",
    "FLS": "Flood Statement",
    "FLW": "Flood Warning",
    "FRW": "Fire Warning",
    "FSW": "Flash Freeze Warning",
    "FZW": "Freeze Warning",
    "HLS": "Hurricane Local Statement",
    "HMW": "Hazardous Materials Warning",
    "HUA": "Hurricane Watch",
    "HUW": "Hurricane Warning",
    "HWA": "High Wind Watch",
    "HWW": "High Wind Warning",
    "IBW": "Iceberg Warning",
    "IFW": "Industrial Fire Warning",
    "LAE": "Local Area Emergency",
    "LEW": "Law Enforcement Warning",
    "LSW": "Land Slide Warning",
    "NAT": "National Audible Test",
    "NMN": "Network Message Notification",
    "NST": "National Silent Test",
    "NUW": "Nuclear Power Plant Warning",
    "POS": "Power Outage Statement",
    "RHW": "Radiological Hazard Warning",
    "SMW": "Special Marine Warning",
    "SPS": "Special Weather Statement",
    "SPW": "Shelter in Place Warning",
    "SQW": "Snow Squall Warning",
    "SSA": "Storm Surge Watch",
    "SSW": "Storm Surge Warning",
    "SVA": "Severe Thunderstorm Watch",
    "SVR": "Severe Thunderstorm Warning",
    "SVS": "Severe Weather Statement",
    "TOA": "Tornado Watch",
    "TOE": "911 Telephone Outage Emergency",
    "TOR": "Tornado Warning",
    "TRA": "Tropical Storm Watch",
    "TRW": "Tropical Storm Warning",
    "TSA": "Tsunami Watch",
    "TSW": "Tsunami Warning",
    "TXB": "Transmitter Backup On",
    "TXF": "Transmitter Carrier Off",
    "TXO": "Transmitter Carrier On",
    "TXP": "Transmitter Primary On",
    "VOW": "Volcano Warning",
    "WFA": "Wild Fire Watch",
    "WFW": "Wild Fire Warning",
    "WSA": "Winter Storm Watch",
    "WSW": "Winter Storm Warning",
}

EVENTS: dict[str, str] = {**NATIONAL_EVENTS, **LOCAL_EVENTS}

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


@cache
def states() -> dict[str, tuple[str, str]]:
    """State FIPS code -> (postal abbreviation, name), for states, DC and territories."""
    out: dict[str, tuple[str, str]] = {}
    text = resources.files("eas_same").joinpath("data/fips_states.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        out[row["state_fips"]] = (row["state_abbr"], row["state_name"])
    return out


@cache
def counties() -> dict[str, str]:
    """Five-digit county FIPS code (SSCCC) -> county name."""
    out: dict[str, str] = {}
    text = resources.files("eas_same").joinpath("data/fips_counties.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        out[row["state_fips"] + row["county_fips"]] = row["county_name"]
    return out


def valid_state_code(ss: str) -> bool:
    """True for ``00`` (national), a state/territory FIPS code or an NWS marine area."""
    return ss == "00" or ss in states() or ss in MARINE_AREAS


def event_name(code: str) -> str:
    return EVENTS.get(code, f"Unknown event {code}")
