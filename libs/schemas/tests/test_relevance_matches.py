"""``relevance_matches``/``RelevanceDecision.matches``: every covering pair, not only the first
(issue 11), while ``reason`` stays the first match as before."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eas_schemas.events import AlertSummary
from eas_schemas.relevance import (
    RelevanceDecision,
    RelevanceMatch,
    RelevanceRule,
    decide_relevance,
    relevance_matches,
)
from eas_testkit.factories import make_alert


def _pairs(decision: RelevanceDecision) -> list[tuple[str, str, str, str]]:
    return [(m.kind, m.rule.value, m.alert_code, m.station_code) for m in decision.matches]


def test_every_match_is_listed_same_first_in_the_alerts_order() -> None:
    alert = make_alert(same_codes=("039035", "039055", "048001"), ugc_codes=("OHZ014", "OHC035"))
    decision = decide_relevance(alert, ["039000", "039035"], ["OHZALL", "OHC035"])
    assert decision.relevant
    assert _pairs(decision) == [
        ("SAME", "statewide", "039035", "039000"),
        ("SAME", "exact", "039035", "039035"),
        ("SAME", "statewide", "039055", "039000"),
        ("UGC", "ugc_all", "OHZ014", "OHZALL"),  # zones ALL does not cover county OHC035
        ("UGC", "ugc_exact", "OHC035", "OHC035"),
    ]
    # The reason is still the first match, word for word, for every older reader.
    assert decision.reason == "SAME statewide: alert 039035 ~ station 039000"
    assert decision.reason == decision.matches[0].text()


@pytest.mark.parametrize(
    ("alert_same", "alert_ugc", "station_same", "station_ugc"),
    [
        (("048035",), ("TXC035",), ["039035"], ["OHC035"]),
        (("039035",), (), [], []),
        (("039035",), (), [], ["OHC035"]),
    ],
)
def test_no_match_lists_nothing(
    alert_same: tuple[str, ...],
    alert_ugc: tuple[str, ...],
    station_same: list[str],
    station_ugc: list[str],
) -> None:
    alert = make_alert(same_codes=alert_same, ugc_codes=alert_ugc)
    decision = decide_relevance(alert, station_same, station_ugc)
    assert not decision.relevant and decision.matches == ()
    assert relevance_matches(alert, station_same, station_ugc) == []


def test_subdivision_and_national_rules_are_named() -> None:
    alert = make_alert(same_codes=("000000", "139035"), ugc_codes=())
    decision = decide_relevance(alert, ["039035"], [])
    assert _pairs(decision) == [
        ("SAME", "national", "000000", "039035"),
        ("SAME", "county", "139035", "039035"),
    ]


def test_matches_do_not_change_equality_with_stored_decisions() -> None:
    # Decisions rebuilt from the stored (relevant, reason) columns compare as before.
    alert = make_alert(same_codes=("039035",), ugc_codes=("OHZ014",))
    decision = decide_relevance(alert, ["039035"], ["OHZ014"])
    assert len(decision.matches) == 2
    assert decision == RelevanceDecision(True, decision.reason)


def test_match_is_validated_on_the_wire() -> None:
    match = RelevanceMatch(
        kind="UGC", rule=RelevanceRule.UGC_EXACT, alert_code="OHZ014", station_code="OHZ014"
    )
    assert RelevanceMatch.model_validate_json(match.model_dump_json()) == match
    with pytest.raises(ValidationError):
        RelevanceMatch.model_validate(
            {"kind": "FIPS", "rule": "exact", "alert_code": "1", "station_code": "1"}
        )
    with pytest.raises(ValidationError):
        RelevanceMatch.model_validate(
            {"kind": "SAME", "rule": "nearby", "alert_code": "1", "station_code": "1"}
        )


def test_summary_without_matches_still_reads() -> None:
    # Events published before the field existed carry only relevant/relevance_reason.
    fields = AlertSummary.model_fields
    assert fields["relevance_matches"].is_required() is False
    assert fields["deviations"].is_required() is False
