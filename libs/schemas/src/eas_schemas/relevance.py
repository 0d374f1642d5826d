"""Is a CAP alert relevant to this station? Pure rules over SAME and UGC codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eas_schemas.cap import CapAlert
from eas_schemas.same_codes import location_covers, ugc_covers


@dataclass(frozen=True, slots=True)
class RelevanceDecision:
    relevant: bool
    reason: str


def decide_relevance(
    alert: CapAlert, station_same: Iterable[str], station_ugc: Iterable[str]
) -> RelevanceDecision:
    """First matching rule wins; the reason names the rule and both codes that matched.

    With no station codes configured nothing is relevant: an unconfigured station must not
    treat every alert in the country as its own.
    """
    same_codes = list(station_same)
    ugc_codes = list(station_ugc)
    if not same_codes and not ugc_codes:
        return RelevanceDecision(False, "station has no SAME or UGC codes configured")
    for alert_code in alert.same_codes():
        for station_code in same_codes:
            rule = location_covers(alert_code, station_code)
            if rule is not None:
                return RelevanceDecision(
                    True, f"SAME {rule}: alert {alert_code} ~ station {station_code}"
                )
    for alert_ugc in alert.ugc_codes():
        for station_code in ugc_codes:
            if ugc_covers(alert_ugc, station_code):
                return RelevanceDecision(True, f"UGC: alert {alert_ugc} ~ station {station_code}")
    return RelevanceDecision(False, "no SAME or UGC code of the alert matches the station")
