"""Is a CAP alert relevant to this station? Pure rules over SAME and UGC codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from eas_schemas.cap import CapAlert
from eas_schemas.same_codes import location_covers, ugc_covers


class RelevanceRule(StrEnum):
    """How an alert's code covers a station's: the SAME rules of `location_covers`, and UGC
    ``exact`` or ``all`` (an ``..ALL`` zone code on either side)."""

    NATIONAL = "national"
    STATEWIDE = "statewide"
    EXACT = "exact"
    COUNTY = "county"
    UGC_EXACT = "ugc_exact"
    UGC_ALL = "ugc_all"


class RelevanceMatch(BaseModel):
    """One pair of codes that makes an alert relevant: which rule, the alert's code and the
    station's code it covers."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="SAME or UGC", pattern="^(SAME|UGC)$")
    rule: RelevanceRule
    alert_code: str = Field(max_length=16)
    station_code: str = Field(max_length=16)

    def text(self) -> str:
        if self.kind == "SAME":
            return f"SAME {self.rule.value}: alert {self.alert_code} ~ station {self.station_code}"
        return f"UGC: alert {self.alert_code} ~ station {self.station_code}"


@dataclass(frozen=True, slots=True)
class RelevanceDecision:
    """``reason`` names the first match (SAME before UGC, the alert's codes in their order):
    what every reader of ``relevance_reason`` has always been shown. ``matches`` lists every
    one; it is not part of equality, so a decision made from ``(relevant, reason)`` stored
    before matches existed still compares equal."""

    relevant: bool
    reason: str
    matches: tuple[RelevanceMatch, ...] = field(default=(), compare=False, hash=False)


def relevance_matches(
    alert: CapAlert, station_same: Iterable[str], station_ugc: Iterable[str]
) -> list[RelevanceMatch]:
    """Every (alert code, station code) pair that covers, SAME first, in the alert's order."""
    same_codes = list(station_same)
    ugc_codes = list(station_ugc)
    matches: list[RelevanceMatch] = []
    for alert_code in alert.same_codes():
        for station_code in same_codes:
            rule = location_covers(alert_code, station_code)
            if rule is not None:
                matches.append(
                    RelevanceMatch(
                        kind="SAME",
                        rule=RelevanceRule(rule),
                        alert_code=alert_code,
                        station_code=station_code,
                    )
                )
    for alert_ugc in alert.ugc_codes():
        for station_code in ugc_codes:
            if ugc_covers(alert_ugc, station_code):
                exact = alert_ugc == station_code
                matches.append(
                    RelevanceMatch(
                        kind="UGC",
                        rule=RelevanceRule.UGC_EXACT if exact else RelevanceRule.UGC_ALL,
                        alert_code=alert_ugc,
                        station_code=station_code,
                    )
                )
    return matches


def decide_relevance(
    alert: CapAlert, station_same: Iterable[str], station_ugc: Iterable[str]
) -> RelevanceDecision:
    """Relevant when any rule matches; the reason names the first match, ``matches`` all.

    With no station codes configured nothing is relevant: an unconfigured station must not
    treat every alert in the country as its own.
    """
    same_codes = list(station_same)
    ugc_codes = list(station_ugc)
    if not same_codes and not ugc_codes:
        return RelevanceDecision(False, "station has no SAME or UGC codes configured")
    matches = relevance_matches(alert, same_codes, ugc_codes)
    if not matches:
        return RelevanceDecision(False, "no SAME or UGC code of the alert matches the station")
    return RelevanceDecision(True, matches[0].text(), tuple(matches))
