"""Relevance rules, table by table: every rule, both sides of it, and the codes that look alike.

A wrong answer here puts someone else's alert on air or keeps ours off it, so each row is a
case a plausible slip in ``location_covers``/``ugc_covers``/``decide_relevance`` would flip.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
from pydantic import BaseModel, ValidationError

from eas_schemas.cap import CapAlert, CapArea, ValuePair
from eas_schemas.relevance import RelevanceDecision, decide_relevance
from eas_schemas.same_codes import (
    NATIONAL_CODE,
    LocationCode,
    SameEventCode,
    SameLocationCode,
    UgcCode,
    location_covers,
    ugc_covers,
    validate_event_code,
    validate_location_code,
    validate_ugc_code,
)
from eas_testkit.factories import make_alert

# (alert code, station code, rule or None)
LOCATION_CASES: list[tuple[str, str, str | None]] = [
    # exact
    ("039035", "039035", "exact"),
    ("139035", "139035", "exact"),
    ("973531", "973531", "exact"),  # marine areas follow the same rules
    # whole county vs a part of it, either way round; two different parts never
    ("039035", "139035", "county"),
    ("139035", "039035", "county"),
    ("139035", "239035", None),
    ("939035", "139035", None),
    # statewide on the alert's side, on the station's side, on both
    ("039000", "039035", "statewide"),
    ("039000", "139035", "statewide"),
    ("039035", "039000", "statewide"),
    ("239035", "039000", "statewide"),
    ("039000", "039000", "statewide"),
    # ...but only within the state
    ("039000", "048035", None),
    ("048035", "039000", None),
    ("039000", "048000", None),
    # national covers every station; a station "serving" 000000 only hears national alerts
    ("000000", "039035", "national"),
    ("000000", "039000", "national"),
    ("000000", "139035", "national"),
    ("000000", NATIONAL_CODE, "national"),
    ("039035", NATIONAL_CODE, None),
    ("039000", NATIONAL_CODE, None),
    # the same county number in another state is another county
    ("048035", "039035", None),
    ("039035", "048035", None),
    ("148035", "039035", None),
    ("048035", "139035", None),
    # malformed alert codes (CAP geocodes are free text) cover nothing, even when the digits
    # that a six-character slice would read happen to match
    ("0390350", "039035", None),
    ("-39035", "039035", None),
    (" 39035", "039035", None),
    ("+39000", "039035", None),
    ("03903", "039035", None),
    ("039035\n", "039035", None),
    ("", "039035", None),
    # the same state, another county (including numbers that share digits)
    ("039035", "039036", None),
    ("039035", "039350", None),
    ("039035", "035039", None),
    ("139035", "039055", None),
]


@pytest.mark.parametrize(("alert", "station", "rule"), LOCATION_CASES)
def test_location_covers(alert: str, station: str, rule: str | None) -> None:
    assert location_covers(alert, station) == rule


# (alert UGC, station UGC, covered)
UGC_CASES: list[tuple[str, str, bool]] = [
    ("OHZ014", "OHZ014", True),
    ("OHC035", "OHC035", True),
    ("OHZ014", "OHZ015", False),
    ("OHZ035", "OHC035", False),  # zone 35 and county 35 are different places
    ("OHC035", "OHZ035", False),
    ("INZ014", "OHZ014", False),  # same zone number, another state
    # a station's XXZALL / XXCALL: every zone (county) of the state, of that kind only
    ("OHZ014", "OHZALL", True),
    ("OHZ999", "OHZALL", True),
    ("OHC035", "OHCALL", True),
    ("OHC035", "OHZALL", False),
    ("OHZ014", "OHCALL", False),
    ("INZ014", "OHZALL", False),
    ("PAZ014", "OHZALL", False),
    # an alert for XXZALL covers each zone of the state (and a station's XXZALL)
    ("OHZALL", "OHZ014", True),
    ("OHCALL", "OHC035", True),
    ("OHZALL", "OHZALL", True),
    ("OHZALL", "OHC035", False),
    ("OHZALL", "INZ014", False),
    # malformed alert codes cover nothing, even under a station's XXZALL
    ("OHZ014X", "OHZALL", False),
    ("OHZ", "OHZALL", False),
    ("OHZ01", "OHZ01", False),
    ("OHQ014", "OHQALL", False),
    ("OHZ014\n", "OHZ014", False),
]


@pytest.mark.parametrize(("alert", "station", "covered"), UGC_CASES)
def test_ugc_covers(alert: str, station: str, covered: bool) -> None:
    assert ugc_covers(alert, station) is covered


NO_MATCH = "no SAME or UGC code of the alert matches the station"

# decide_relevance over whole alerts: (alert SAME, alert UGC, station SAME, station UGC,
# relevant, reason)
DECISION_CASES: list[tuple[tuple[str, ...], tuple[str, ...], list[str], list[str], bool, str]] = [
    (("039035",), (), [], [], False, "station has no SAME or UGC codes configured"),
    (("000000",), ("OHZALL",), [], [], False, "station has no SAME or UGC codes configured"),
    (("039035",), (), ["039035"], [], True, "SAME exact: alert 039035 ~ station 039035"),
    (("039035",), (), ["039000"], [], True, "SAME statewide: alert 039035 ~ station 039000"),
    (("039000",), (), ["039035"], [], True, "SAME statewide: alert 039000 ~ station 039035"),
    (("000000",), (), ["139035"], [], True, "SAME national: alert 000000 ~ station 139035"),
    (("139035",), (), ["039035"], [], True, "SAME county: alert 139035 ~ station 039035"),
    (
        ("048035",),
        ("TXC035",),
        ["039035"],
        ["OHC035"],
        False,
        "no SAME or UGC code of the alert matches the station",
    ),
    # later codes on either side are looked at too
    (
        ("048001", "039055"),
        (),
        ["039035", "039055"],
        [],
        True,
        "SAME exact: alert 039055 ~ station 039055",
    ),
    # UGC alone, and UGC when SAME does not match
    ((), ("OHZ014",), [], ["OHZ014"], True, "UGC: alert OHZ014 ~ station OHZ014"),
    (("048035",), ("OHZ014",), ["039035"], ["OHZALL"], True, "UGC: alert OHZ014 ~ station OHZALL"),
    # a SAME match is the reason given even when a UGC one exists as well
    (
        ("039035",),
        ("OHZ014",),
        ["039035"],
        ["OHZ014"],
        True,
        "SAME exact: alert 039035 ~ station 039035",
    ),
    # codes of one kind never match codes of the other
    (
        ("039035",),
        (),
        [],
        ["OHC035"],
        False,
        "no SAME or UGC code of the alert matches the station",
    ),
    ((), ("OHC035",), ["039035"], [], False, NO_MATCH),
    ((), (), ["039035"], ["OHC035"], False, NO_MATCH),
]


@pytest.mark.parametrize(
    ("alert_same", "alert_ugc", "station_same", "station_ugc", "relevant", "reason"),
    DECISION_CASES,
    ids=[
        f"{'+'.join(a + u) or 'no-codes'}@{'+'.join(s + t) or 'no-codes'}"
        for a, u, s, t, _, _ in DECISION_CASES
    ],
)
def test_decide_relevance(
    alert_same: tuple[str, ...],
    alert_ugc: tuple[str, ...],
    station_same: list[str],
    station_ugc: list[str],
    relevant: bool,
    reason: str,
) -> None:
    alert = make_alert(same_codes=alert_same, ugc_codes=alert_ugc)
    decision = decide_relevance(alert, station_same, station_ugc)
    assert (decision.relevant, decision.reason) == (relevant, reason)


def test_decide_relevance_takes_any_iterable_once() -> None:
    # Generators are consumed once: the rules must not iterate the station's codes per alert
    # code from an exhausted iterator.
    alert = make_alert(same_codes=("048001", "039035"), ugc_codes=())
    decision = decide_relevance(alert, (c for c in ["039035"]), iter([]))
    assert decision.relevant is True


def _with_geocodes(*pairs: tuple[str, str]) -> CapAlert:
    alert = make_alert(same_codes=(), ugc_codes=())
    area = CapArea(area_desc="test", geocodes=[ValuePair(value_name=n, value=v) for n, v in pairs])
    info = alert.infos[0].model_copy(update={"areas": [area]})
    return alert.model_copy(update={"infos": [info]})


def test_alert_codes_from_every_geocode_spelling() -> None:
    # FIPS6 is SAME by another name, and CAP producers drop the leading zero.
    alert = _with_geocodes(("FIPS6", "39035"), ("SAME", "039035"), ("SAME", "048001"))
    assert alert.same_codes() == ["039035", "048001"]
    assert decide_relevance(alert, ["039035"], []).relevant is True
    ugc = _with_geocodes(("UGC", "ohz014"), ("UGC", "OHZ014"))
    assert ugc.ugc_codes() == ["OHZ014"]
    assert decide_relevance(ugc, [], ["OHZ014"]).relevant is True


# --- the SAME code helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "parts", "national", "statewide"),
    [
        ("039035", ("0", "39", "035"), False, False),
        ("139035", ("1", "39", "035"), False, False),
        ("039000", ("0", "39", "000"), False, True),
        ("000000", ("0", "00", "000"), True, False),
        ("973000", ("9", "73", "000"), False, True),
        ("048100", ("0", "48", "100"), False, False),
    ],
)
def test_location_code_parts(
    code: str, parts: tuple[str, str, str], national: bool, statewide: bool
) -> None:
    loc = LocationCode.parse(code)
    assert (loc.subdivision, loc.state, loc.county) == parts
    assert loc.code == code
    assert loc.is_national is national
    assert loc.is_statewide is statewide


@pytest.mark.parametrize("code", ["039035", "139035", "039000", "000000", "072127", "973531"])
def test_valid_location_codes(code: str) -> None:
    assert validate_location_code(code) == code


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("39035", "6 digits"),
        ("0390350", "6 digits"),
        ("03903A", "6 digits"),
        (" 39035", "6 digits"),
        ("039035 ", "6 digits"),
        ("039035\n", "6 digits"),  # "$" alone would let a trailing newline through
        ("\uff10\uff13\uff19\uff10\uff13\uff15", "6 digits"),  # full-width: digits to Python only
        ("\u0660\u0663\u0669\u0660\u0663\u0665", "6 digits"),  # Arabic-Indic digits
        ("", "6 digits"),
        ("100000", "national SAME code must be 000000"),
        ("000035", "national SAME code must be 000000"),
        ("003035", "unknown state FIPS code '03'"),
        ("099035", "unknown state FIPS code '99'"),
        ("043035", "unknown state FIPS code '43'"),
    ],
)
def test_invalid_location_codes(code: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        validate_location_code(code)


@pytest.mark.parametrize(
    ("code", "normalized"),
    [
        ("OHZ014", "OHZ014"),
        ("ohz014", "OHZ014"),
        (" OHC035 ", "OHC035"),
        ("OHZALL", "OHZALL"),
        ("ohcall", "OHCALL"),
    ],
)
def test_valid_ugc_codes(code: str, normalized: str) -> None:
    assert validate_ugc_code(code) == normalized


@pytest.mark.parametrize(
    "code",
    ["OHX014", "OHZ14", "OHZ0140", "OH014", "O1Z014", "OHZAL", "OHZ01A", "", "OHZ-14", "OHZ014\n1"],
)
def test_invalid_ugc_codes(code: str) -> None:
    with pytest.raises(ValueError, match="UGC code must look like"):
        validate_ugc_code(code)


@pytest.mark.parametrize(("code", "normalized"), [("TOR", "TOR"), ("tor", "TOR"), (" RWT", "RWT")])
def test_valid_event_codes(code: str, normalized: str) -> None:
    assert validate_event_code(code) == normalized


@pytest.mark.parametrize("code", ["TO", "TORR", "T0R", "", "T-R", "ÀBC"])
def test_invalid_event_codes(code: str) -> None:
    with pytest.raises(ValueError, match="3 letters"):
        validate_event_code(code)


class _Codes(BaseModel):
    same: list[SameLocationCode] = []
    ugc: list[UgcCode] = []
    event: SameEventCode | None = None


def test_annotated_types_validate_and_name_the_item() -> None:
    ok = _Codes.model_validate({"same": ["039035"], "ugc": ["ohz014"], "event": "tor"})
    assert (ok.same, ok.ugc, ok.event) == (["039035"], ["OHZ014"], "TOR")
    with pytest.raises(ValidationError) as caught:
        _Codes.model_validate({"same": ["039035", "39035"], "ugc": ["OHX1"], "event": "TO"})
    locs = sorted(".".join(str(p) for p in e["loc"]) for e in caught.value.errors())
    assert locs == ["event", "same.1", "ugc.0"]


def test_codes_and_decisions_are_values() -> None:
    # Kept in sets and shared between requests: neither may change once made.
    loc = LocationCode.parse("039035")
    assert {loc, LocationCode.parse("039035")} == {loc}
    with pytest.raises(FrozenInstanceError):
        loc.state = "48"  # type: ignore[misc]
    decision = decide_relevance(make_alert(), ["039035"], [])
    assert hash(decision) == hash(RelevanceDecision(True, decision.reason))
    with pytest.raises(FrozenInstanceError):
        decision.relevant = False  # type: ignore[misc]


def test_the_national_code_is_compared_by_value() -> None:
    # A code read from a CAP file or a form is a new string, not the module's constant.
    built = "".join(["000", "000"])
    assert validate_location_code(built) == NATIONAL_CODE


def test_every_match_is_listed_with_its_rule_in_order() -> None:
    # ``matches`` is what the console shows as "why": each pair with the rule that joined it,
    # SAME before UGC, in the alert's order then the station's. UGC says which side was "ALL".
    from eas_schemas.relevance import RelevanceMatch, RelevanceRule, relevance_matches

    alert = make_alert(
        same_codes=("039035", "000000", "048001"),
        ugc_codes=("OHZ014", "TXZALL", "OHC035"),
    )
    station_same = ["039035", "139035", "039000", "048002"]
    station_ugc = ["OHZ014", "TXZ123", "OHCALL"]
    got = [
        (m.kind, m.rule, m.alert_code, m.station_code)
        for m in relevance_matches(alert, station_same, station_ugc)
    ]
    r = RelevanceRule
    assert got == [
        ("SAME", r.EXACT, "039035", "039035"),
        ("SAME", r.COUNTY, "039035", "139035"),
        ("SAME", r.STATEWIDE, "039035", "039000"),
        ("SAME", r.NATIONAL, "000000", "039035"),
        ("SAME", r.NATIONAL, "000000", "139035"),
        ("SAME", r.NATIONAL, "000000", "039000"),
        ("SAME", r.NATIONAL, "000000", "048002"),
        ("UGC", r.UGC_EXACT, "OHZ014", "OHZ014"),
        ("UGC", r.UGC_ALL, "TXZALL", "TXZ123"),  # the alert's side is ALL
        ("UGC", r.UGC_ALL, "OHC035", "OHCALL"),  # the station's side is ALL
    ]
    decision = decide_relevance(alert, station_same, station_ugc)
    assert [m.rule for m in decision.matches] == [g[1] for g in got]
    assert decision.reason == "SAME exact: alert 039035 ~ station 039035"
    # The decision is frozen too, and equal to one rebuilt from (relevant, reason) alone: rows
    # stored before matches existed still compare equal.
    with pytest.raises(FrozenInstanceError):
        decision.relevant = False  # type: ignore[misc]
    assert decision == RelevanceDecision(True, decision.reason)
    match = decision.matches[0]
    with pytest.raises(ValidationError):
        match.rule = RelevanceRule.NATIONAL  # type: ignore[misc]  # frozen: stored as decided
    # Codes are bounded (16 characters) so a stored match never carries an unbounded string.
    RelevanceMatch(kind="UGC", rule=r.UGC_ALL, alert_code="A" * 16, station_code="B" * 16)
    for field in ("alert_code", "station_code"):
        codes = {"alert_code": "A" * 16, "station_code": "B" * 16, field: "C" * 17}
        with pytest.raises(ValidationError, match=field):
            RelevanceMatch(kind="UGC", rule=r.UGC_ALL, **codes)
