"""Relay rules: one table row per rule, with the action and the checks that decided it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audio_control.rules import (
    Candidate,
    Evaluation,
    decision_event,
    evaluate,
    precedence_of,
    relay_time,
)
from eas_same.header import parse_header
from eas_schemas.cap import CapMsgType, CapScope, CapSeverity, CapStatus, CapUrgency
from eas_schemas.events import payload_model
from eas_schemas.monitor_events import SameHeaderEvent
from eas_schemas.relay_events import (
    RELAY_DECISION_TYPE,
    DecisionState,
    PrecedenceClass,
    RelayAction,
    RelayDecisionEvent,
    RelaySource,
)
from eas_schemas.same_codes import DEVIATIONS
from eas_schemas.station_settings import ConfirmationTimeoutAction, LocationSettings, RelayRules

NOW = datetime(2025, 5, 1, 18, 0, tzinfo=UTC)  # the builders' time (conftest `now`)
BASE_RULES: dict[str, Any] = {"enabled": True, "events": ["TOR"]}
CapFactory = Callable[..., Candidate]
AirFactory = Callable[..., Candidate]
# id, candidate arguments, rules, expected action, the checks that blocked and how
Row = tuple[str, dict[str, Any], dict[str, Any], RelayAction, dict[str, RelayAction]]


def test_the_builders_work_at_now(now: datetime) -> None:
    assert now == NOW


def decide(
    candidate: Candidate,
    *,
    now: datetime = NOW,
    station: tuple[str, ...] = ("039035",),
    **rules: Any,
) -> Evaluation:
    doc = {**BASE_RULES, **rules}
    result = evaluate(candidate, RelayRules.model_validate(doc), _station(station), now)
    # Invariants every decision keeps: one check per rule, passed <=> no consequence, and
    # the action is exactly what the consequences say.
    ids = [c.rule for c in result.checks]
    assert len(ids) == len(set(ids)), ids
    assert all(c.passed is (c.consequence is None) for c in result.checks)
    consequences = {c.consequence for c in result.checks} - {None}
    expected = (
        RelayAction.IGNORE
        if RelayAction.IGNORE in consequences
        else RelayAction.CONFIRM
        if RelayAction.CONFIRM in consequences
        else RelayAction.RELAY
    )
    assert result.action is expected
    assert result.reason and "\n" not in result.reason
    return result


def _station(codes: tuple[str, ...]) -> LocationSettings:
    return LocationSettings(same_codes=list(codes))


def blocking(result: Evaluation) -> dict[str, RelayAction]:
    return {c.rule: c.consequence for c in result.checks if c.consequence is not None}


def check(result: Evaluation, rule: str) -> Any:
    return next(c for c in result.checks if c.rule == rule)


# ---- CAP --------------------------------------------------------------------------------------

CAP_TABLE: list[Row] = [
    ("baseline", {}, {}, RelayAction.RELAY, {}),
    ("relay off", {}, {"enabled": False}, RelayAction.IGNORE,
     {"relay_enabled": RelayAction.IGNORE}),
    ("event not relayed", {"event": "Severe Thunderstorm Warning", "same_event": "SVR"}, {},
     RelayAction.IGNORE, {"event": RelayAction.IGNORE}),
    ("originator not relayed", {}, {"originators": ["CIV"]}, RelayAction.IGNORE,
     {"originator": RelayAction.IGNORE}),
    ("default originator CIV", {"parameters": ()}, {"originators": ["CIV"]}, RelayAction.RELAY, {}),
    ("status Test", {"status": CapStatus.TEST}, {}, RelayAction.IGNORE,
     {"cap_status": RelayAction.IGNORE}),
    ("status Test, lab station", {"status": CapStatus.TEST}, {"allow_test_status": True},
     RelayAction.RELAY, {}),
    ("status Exercise, lab station", {"status": CapStatus.EXERCISE}, {"allow_test_status": True},
     RelayAction.IGNORE, {"cap_status": RelayAction.IGNORE}),
    ("status Draft", {"status": CapStatus.DRAFT}, {}, RelayAction.IGNORE,
     {"cap_status": RelayAction.IGNORE}),
    ("status System", {"status": CapStatus.SYSTEM}, {}, RelayAction.IGNORE,
     {"cap_status": RelayAction.IGNORE}),
    ("Update relayed", {"msg_type": CapMsgType.UPDATE}, {}, RelayAction.RELAY, {}),
    ("Update not listed", {"msg_type": CapMsgType.UPDATE}, {"msg_types": ["Alert"]},
     RelayAction.IGNORE, {"msg_type": RelayAction.IGNORE}),
    ("Cancel never airs", {"msg_type": CapMsgType.CANCEL}, {}, RelayAction.IGNORE,
     {"msg_type": RelayAction.IGNORE}),
    ("Ack", {"msg_type": CapMsgType.ACK}, {}, RelayAction.IGNORE,
     {"msg_type": RelayAction.IGNORE}),
    ("Restricted", {"scope": CapScope.RESTRICTED}, {}, RelayAction.IGNORE,
     {"scope": RelayAction.IGNORE}),
    ("Restricted, listed", {"scope": CapScope.RESTRICTED}, {"scopes": ["Public", "Restricted"]},
     RelayAction.RELAY, {}),
    ("Private", {"scope": CapScope.PRIVATE}, {"scopes": ["Public", "Restricted"]},
     RelayAction.IGNORE, {"scope": RelayAction.IGNORE}),
    ("BLOCKCHANNEL EAS", {"parameters": (("BLOCKCHANNEL", "EAS"),)}, {}, RelayAction.IGNORE,
     {"blockchannel": RelayAction.IGNORE}),
    ("BLOCKCHANNEL EAS beats must-carry",
     {"parameters": (("EAS-Must-Carry", "True"), ("BLOCKCHANNEL", "EAS"))}, {},
     RelayAction.IGNORE, {"blockchannel": RelayAction.IGNORE}),
    ("BLOCKCHANNEL CMAS only", {"parameters": (("BLOCKCHANNEL", "CMAS"),)}, {},
     RelayAction.RELAY, {}),
    ("must-carry overrides the event filter",
     {"event": "Civil Emergency Message", "same_event": "CEM",
      "parameters": (("EAS-Must-Carry", "True"), ("EAS-ORG", "CIV"))},
     {"originators": ["WXR"]}, RelayAction.RELAY, {}),
    ("must-carry still needs the location",
     {"same_event": "CEM", "codes": ("048201",), "parameters": (("EAS-Must-Carry", "True"),)},
     {}, RelayAction.IGNORE, {"location": RelayAction.IGNORE}),
    ("must-carry is not held for confirmation",
     {"parameters": (("EAS-Must-Carry", "true"),)}, {"require_confirmation": ["TOR"]},
     RelayAction.RELAY, {}),
    ("needs confirmation", {}, {"require_confirmation": ["TOR"]}, RelayAction.CONFIRM,
     {"confirmation": RelayAction.CONFIRM}),
    ("expired", {"sent": NOW - timedelta(hours=2)}, {}, RelayAction.IGNORE,
     {"expired": RelayAction.IGNORE}),
    ("delay runs past expiry", {"expires_in": timedelta(minutes=5)}, {"delay_s": 300},
     RelayAction.IGNORE, {"expired": RelayAction.IGNORE}),
    ("delay runs well past expiry", {"expires_in": timedelta(minutes=5)}, {"delay_s": 400},
     RelayAction.IGNORE, {"expired": RelayAction.IGNORE}),
    ("no SAME geocode", {"codes": ()}, {}, RelayAction.IGNORE,
     {"geocode": RelayAction.IGNORE, "location": RelayAction.IGNORE}),
    ("other county", {"codes": ("039093",)}, {}, RelayAction.IGNORE,
     {"location": RelayAction.IGNORE}),
    ("EAN relayed though not listed",
     {"event": "Emergency Action Notification", "same_event": "EAN", "codes": ("000000",),
      "parameters": (("EAS-ORG", "PEP"),)},
     {"originators": ["WXR"], "events": []}, RelayAction.RELAY, {}),
    ("EAN with relay off",
     {"same_event": "EAN", "codes": ("000000",), "parameters": (("EAS-ORG", "PEP"),)},
     {"enabled": False}, RelayAction.IGNORE, {"relay_enabled": RelayAction.IGNORE}),
    ("national NPT relayed though not listed",
     {"same_event": "NPT", "codes": ("000000",), "parameters": (("EAS-ORG", "PEP"),)},
     {"events": []}, RelayAction.RELAY, {}),
    ("NPT for one county is not mandatory",
     {"same_event": "NPT", "parameters": (("EAS-ORG", "PEP"),)},
     {"events": []}, RelayAction.IGNORE, {"event": RelayAction.IGNORE}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cap", "rules", "action", "blocked"),
    [row[1:] for row in CAP_TABLE],
    ids=[row[0] for row in CAP_TABLE],
)
def test_cap_rules(
    make_cap: CapFactory,
    cap: dict[str, Any],
    rules: dict[str, Any],
    action: RelayAction,
    blocked: dict[str, RelayAction],
) -> None:
    result = decide(make_cap(**cap), **rules)
    assert result.action is action
    assert blocking(result) == blocked


def test_a_relayed_cap_alert_airs_now_with_our_header(make_cap: CapFactory) -> None:
    result = decide(make_cap())
    assert result.relay_at == NOW and result.confirm_by is None and result.on_timeout is None
    assert result.header is not None
    assert result.header.text == "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"
    assert result.reason == (
        "Relay TOR at 18:00:00 UTC: In the station's area: 039035~039035 exact."
    )
    assert result.precedence_class is PrecedenceClass.LOCAL


def test_a_fresh_station_relays_nothing(make_cap: CapFactory) -> None:
    result = evaluate(make_cap(), RelayRules(), LocationSettings(), NOW)
    assert result.action is RelayAction.IGNORE
    failing = {c.rule for c in result.checks if not c.passed}
    assert failing == {"relay_enabled", "location", "event"}
    assert "no location codes configured" in check(result, "location").detail


@pytest.mark.parametrize(
    ("alert_codes", "station", "matches"),
    [
        (("039035",), ("039035",), ["039035~039035 exact"]),
        (("139035",), ("039035",), ["139035~039035 county"]),
        (("039035",), ("139035",), ["039035~139035 county"]),
        (("039000",), ("039035",), ["039000~039035 statewide"]),
        (("039035",), ("039000",), ["039035~039000 statewide"]),
        (("000000",), ("039035",), ["000000~039035 national"]),
        (
            ("039035", "039000", "039093"),
            ("039035", "039093"),
            [
                "039035~039035 exact",
                "039000~039035 statewide",
                "039000~039093 statewide",
                "039093~039093 exact",
            ],
        ),
        (("139035",), ("239035",), None),
        (("048201",), ("039035",), None),
    ],
)
def test_location_match_keeps_every_match(
    make_cap: CapFactory,
    alert_codes: tuple[str, ...],
    station: tuple[str, ...],
    matches: list[str] | None,
) -> None:
    result = decide(make_cap(codes=alert_codes), station=station)
    location = check(result, "location")
    if matches is None:
        assert location.consequence is RelayAction.IGNORE
        assert result.action is RelayAction.IGNORE
    else:
        assert location.passed and location.values["matches"] == matches
        assert result.action is RelayAction.RELAY


def test_relay_locations_replace_the_station_codes(make_cap: CapFactory) -> None:
    result = decide(make_cap(codes=("039093",)), locations=["039093"])
    assert result.action is RelayAction.RELAY
    assert check(result, "location").values["configured_by"] == "relay.locations"
    assert decide(make_cap(), locations=["039093"]).action is RelayAction.IGNORE


def test_a_station_matched_only_past_the_31st_location_is_for_an_operator(
    make_cap: CapFactory,
) -> None:
    codes = tuple(f"039{n:03d}" for n in range(1, 71, 2))  # 35 Ohio counties; 039035 is 18th
    far = codes[33]
    result = decide(make_cap(codes=codes), station=(far,))
    assert blocking(result) == {"location": RelayAction.CONFIRM}
    assert result.on_timeout is ConfirmationTimeoutAction.IGNORE
    assert decide(make_cap(codes=codes)).action is RelayAction.RELAY


def test_confirmation_waits_and_the_timeout_action_is_the_station_s(make_cap: CapFactory) -> None:
    result = decide(make_cap(), require_confirmation=["TOR"], confirmation_timeout_s=600)
    assert result.confirm_by == NOW + timedelta(seconds=600)
    assert result.on_timeout is ConfirmationTimeoutAction.IGNORE
    assert result.relay_at is None
    assert result.reason.startswith("Waits for an operator until 18:10 UTC, then is ignored: ")
    timed = decide(make_cap(), require_confirmation=["TOR"], confirmation_timeout_action="relay")
    assert timed.on_timeout is ConfirmationTimeoutAction.RELAY
    assert "then is relayed" in timed.reason


def test_relay_delay_and_the_ean_exception(make_cap: CapFactory) -> None:
    assert decide(make_cap(), delay_s=120).relay_at == NOW + timedelta(seconds=120)
    ean = make_cap(
        same_event="EAN", codes=("000000",), parameters=(("EAS-ORG", "PEP"),), expires_in=None
    )
    result = decide(ean, delay_s=120)
    assert result.relay_at == NOW
    assert check(result, "delay").values["delay_s"] == 0
    assert result.precedence_class is PrecedenceClass.EAN and result.precedence == 0


def test_not_yet_effective_is_relayed_at_its_effective_time(make_cap: CapFactory) -> None:
    later = NOW + timedelta(minutes=10)
    result = decide(make_cap(effective=later), delay_s=30)
    assert result.action is RelayAction.RELAY
    assert result.relay_at == later + timedelta(seconds=30)
    assert "held until its effective time" in check(result, "not_yet_effective").detail


def test_onset_holds_only_when_the_station_asks(make_cap: CapFactory) -> None:
    onset = NOW + timedelta(minutes=20)
    candidate = make_cap(effective=NOW, onset=onset)
    now_result = decide(candidate)
    assert now_result.relay_at == NOW
    assert "ahead of the hazard" in check(now_result, "not_yet_effective").detail
    held = decide(candidate, hold_until_onset=True)
    assert held.relay_at == onset
    assert "held until its onset time" in check(held, "not_yet_effective").detail


def test_an_onset_before_the_effective_time_holds_until_the_effective_time(
    make_cap: CapFactory,
) -> None:
    # The hold is the later of the two: the reason names that one, not the onset.
    effective = NOW + timedelta(minutes=20)
    candidate = make_cap(effective=effective, onset=NOW + timedelta(minutes=5))
    held = decide(candidate, hold_until_onset=True)
    assert held.relay_at == effective
    assert "held until its effective time" in check(held, "not_yet_effective").detail
    # And with no onset at all, asking to hold for it holds for the effective time.
    no_onset = decide(make_cap(effective=effective, onset=None), hold_until_onset=True)
    assert no_onset.relay_at == effective
    assert "held until its effective time" in check(no_onset, "not_yet_effective").detail


def test_relay_time_after_a_confirmation(make_cap: CapFactory) -> None:
    rules = RelayRules.model_validate({**BASE_RULES, "delay_s": 15})
    confirmed_at = NOW + timedelta(minutes=3)
    assert relay_time(make_cap(), rules, confirmed_at) == confirmed_at + timedelta(seconds=15)
    effective = NOW + timedelta(minutes=30)
    assert relay_time(make_cap(effective=effective), rules, confirmed_at) == effective + timedelta(
        seconds=15
    )
    # An effective time already past holds nothing back: never scheduled before the
    # confirmation (a time in the past would air it with no delay at all).
    past = make_cap(effective=NOW - timedelta(minutes=30), onset=NOW - timedelta(minutes=20))
    for hold_onset in (False, True):
        held = RelayRules.model_validate(
            {**BASE_RULES, "delay_s": 15, "hold_until_onset": hold_onset}
        )
        assert relay_time(past, held, confirmed_at) == confirmed_at + timedelta(seconds=15)


NO_CODE = {"same_event": None, "event": "Tornado Warning"}

NO_CODE_TABLE: list[Row] = [
    ("off: ignored", {}, {}, RelayAction.IGNORE,
     {"event_code": RelayAction.IGNORE, "severity_urgency": RelayAction.IGNORE}),
    ("on, severe and immediate: confirm", {}, {"enabled": True}, RelayAction.CONFIRM,
     {"event_code": RelayAction.CONFIRM}),
    ("on, moderate: ignored", {"severity": CapSeverity.MODERATE}, {"enabled": True},
     RelayAction.IGNORE,
     {"event_code": RelayAction.IGNORE, "severity_urgency": RelayAction.IGNORE}),
    ("on, expected < immediate: ignored", {"urgency": CapUrgency.EXPECTED}, {"enabled": True},
     RelayAction.IGNORE,
     {"event_code": RelayAction.IGNORE, "severity_urgency": RelayAction.IGNORE}),
    ("on, expected with a lower bar: confirm", {"urgency": CapUrgency.EXPECTED},
     {"enabled": True, "min_urgency": "Expected"}, RelayAction.CONFIRM,
     {"event_code": RelayAction.CONFIRM}),
    ("on, unknown severity: ignored", {"severity": CapSeverity.UNKNOWN},
     {"enabled": True, "min_severity": "Minor"}, RelayAction.IGNORE,
     {"event_code": RelayAction.IGNORE, "severity_urgency": RelayAction.IGNORE}),
    ("on, name not in the table: ignored", {"event": "Gas Leak"}, {"enabled": True},
     RelayAction.IGNORE,
     {"event_code": RelayAction.IGNORE, "event": RelayAction.IGNORE}),
]  # fmt: skip


def test_the_reasons_name_what_decided(make_cap: CapFactory, make_air: AirFactory) -> None:
    """The sentence an operator reads beside each check (the decisions history), for the
    branches whose action is the same either way: a wrong one would mislead whoever decides
    to forward or not."""
    must_carry = (("EAS-ORG", "WXR"), ("EAS-Must-Carry", "True"))
    cases: list[tuple[Candidate, dict[str, Any], str, str]] = [
        (make_cap(msg_type=CapMsgType.CANCEL), {}, "msg_type", "msgType Cancel: a Cancel never"),
        (make_cap(msg_type=CapMsgType.UPDATE), {"msg_types": ["Alert"]}, "msg_type",
         "this station does not relay it"),
        (make_cap(msg_type=CapMsgType.ACK), {}, "msg_type", "it is not processed"),
        (make_cap(parameters=must_carry), {}, "must_carry", "Governor's must-carry"),
        (make_cap(), {}, "must_carry", "Not marked EAS-Must-Carry."),
        (make_cap(effective=NOW - timedelta(minutes=10)), {}, "not_yet_effective",
         "In effect now."),
        (make_cap(effective=NOW, onset=NOW), {}, "not_yet_effective", "In effect now."),
        (make_cap(effective=NOW - timedelta(minutes=10), onset=NOW - timedelta(minutes=5)), {},
         "not_yet_effective", "In effect now."),
        (dataclasses.replace(make_cap(), received_at=None), {}, "stale", "Received 0 s ago."),
        (dataclasses.replace(make_cap(), received_at=NOW - timedelta(seconds=170)),
         {"max_age_s": 30}, "stale", "Received 3 min ago, longer than the 30 s"),
        (make_cap(**NO_CODE), {"cap_without_event_code": {"enabled": True}},
         "severity_urgency", "Severity Extreme and urgency Immediate reach"),
        (make_cap(status=CapStatus.EXERCISE), {}, "cap_status",
         "Status is Exercise: only Actual messages air."),
        (make_cap(event="Emergency Action Notification", same_event="EAN", codes=("000000",),
                  parameters=(("EAS-ORG", "PEP"),)), {"events": []}, "event",
         "Event EAN: relayed as a national message."),
        (make_cap(event="Civil Emergency Message", same_event="CEM",
                  parameters=(("EAS-Must-Carry", "True"), ("EAS-ORG", "CIV"))),
         {"originators": ["WXR"]}, "originator", "Originator CIV: relayed as a must-carry."),
    ]  # fmt: skip
    for candidate, rules, rule, words in cases:
        detail = check(decide(candidate, **rules), rule).detail
        assert detail.startswith(words) or words in detail, (rule, words, detail)
        if words == "In effect now.":
            assert detail == words, detail  # and nothing about an onset still to come
    assert make_cap().event_name == "Tornado Warning"
    offered = check(
        decide(make_cap(**NO_CODE), cap_without_event_code={"enabled": True}), "severity_urgency"
    )
    assert offered.values["severity"] == "Extreme" and offered.values["urgency"] == "Immediate"
    heard = decide(make_air())
    assert not any(c.rule in ("must_carry", "not_yet_effective") for c in heard.checks)
    ean = decide(
        make_cap(same_event="EAN", codes=("000000",), parameters=(("EAS-ORG", "PEP"),)),
        events=[],
    )
    assert check(ean, "national").values["mandatory"] is True
    # An ignored alert's reason is the first check that ignored it, not a passing one.
    other = decide(make_cap(codes=("039093",)))
    assert other.action is RelayAction.IGNORE
    assert check(other, "location").detail in other.reason


def test_a_purge_time_reached_at_the_decision_is_expired(make_cap: CapFactory) -> None:
    candidate = dataclasses.replace(make_cap(), purge_at=NOW)
    result = decide(candidate)
    assert blocking(result) == {"expired": RelayAction.IGNORE}
    assert check(result, "expired").detail == f"Expired at {NOW.isoformat()}."
    later = dataclasses.replace(make_cap(), purge_at=NOW + timedelta(minutes=5))
    assert "expired" not in blocking(decide(later))


@pytest.mark.parametrize(
    ("cap", "offer", "action", "blocked"),
    [row[1:] for row in NO_CODE_TABLE],
    ids=[row[0] for row in NO_CODE_TABLE],
)
def test_cap_without_a_same_event_code(
    make_cap: CapFactory,
    cap: dict[str, Any],
    offer: dict[str, Any],
    action: RelayAction,
    blocked: dict[str, RelayAction],
) -> None:
    result = decide(
        make_cap(**{**NO_CODE, **cap}),
        cap_without_event_code=offer,
        confirmation_timeout_action="relay",
    )
    assert result.action is action
    assert blocking(result) == blocked
    if action is RelayAction.CONFIRM:
        # Never a timed relay, whatever the station's timeout action says.
        assert result.on_timeout is ConfirmationTimeoutAction.IGNORE
        assert result.header is not None
        assert result.header.text == "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"


def test_an_invalid_same_code_is_not_rescued_by_the_name(make_cap: CapFactory) -> None:
    result = decide(make_cap(same_event="tor"), cap_without_event_code={"enabled": True})
    assert result.action is RelayAction.IGNORE
    assert blocking(result)["event_code"] is RelayAction.IGNORE
    assert "severity_urgency" not in {c.rule for c in result.checks}


# ---- air --------------------------------------------------------------------------------------

AIR_TABLE: list[Row] = [
    ("full agreement", {}, {}, RelayAction.RELAY, {}),
    ("two bursts agree", {"agreed": 2}, {}, RelayAction.CONFIRM,
     {"air_agreement": RelayAction.CONFIRM}),
    ("one burst heard", {"bursts": 1, "agreed": 1}, {}, RelayAction.CONFIRM,
     {"air_agreement": RelayAction.CONFIRM}),
    ("low confidence", {"confidence": 0.85}, {}, RelayAction.CONFIRM,
     {"air_agreement": RelayAction.CONFIRM}),
    ("low confidence, lower bar", {"confidence": 0.85}, {"air_min_confidence": 0.8},
     RelayAction.RELAY, {}),
    ("deviation", {"deviations": ["callsign_length"]}, {}, RelayAction.CONFIRM,
     {"deviation": RelayAction.CONFIRM}),
    ("our own transmission", {"callsign": "WXYZ/FM "}, {}, RelayAction.IGNORE,
     {"own_transmission": RelayAction.IGNORE}),
    ("event not relayed", {"event": "SVR"}, {}, RelayAction.IGNORE,
     {"event": RelayAction.IGNORE}),
    ("originator not relayed", {"originator": "CIV"}, {"originators": ["WXR"]},
     RelayAction.IGNORE, {"originator": RelayAction.IGNORE}),
    ("expired", {"issued": NOW - timedelta(hours=2)}, {}, RelayAction.IGNORE,
     {"expired": RelayAction.IGNORE}),
    ("purge +0000", {"duration": "0000"}, {}, RelayAction.IGNORE,
     {"header": RelayAction.IGNORE, "expired": RelayAction.IGNORE}),
    ("unknown event code", {"event": "QQQ"}, {"events": ["QQQ"]}, RelayAction.IGNORE,
     {"header": RelayAction.IGNORE}),
    ("needs confirmation", {}, {"require_confirmation": ["TOR"]}, RelayAction.CONFIRM,
     {"confirmation": RelayAction.CONFIRM}),
    ("RWT relayed", {"event": "RWT", "originator": "EAS"},
     {"events": ["RWT"], "originators": ["EAS"]}, RelayAction.RELAY, {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("heard", "rules", "action", "blocked"),
    [row[1:] for row in AIR_TABLE],
    ids=[row[0] for row in AIR_TABLE],
)
def test_air_rules(
    make_air: AirFactory,
    heard: dict[str, Any],
    rules: dict[str, Any],
    action: RelayAction,
    blocked: dict[str, RelayAction],
) -> None:
    result = decide(make_air(**heard), **rules)
    assert result.action is action
    assert blocking(result) == blocked


@pytest.mark.parametrize(
    "heard", [{"agreed": 2}, {"confidence": 0.5}, {"deviations": ["purge_step"]}]
)
def test_a_doubtful_header_never_becomes_a_timed_relay(
    make_air: AirFactory, heard: dict[str, Any]
) -> None:
    result = decide(make_air(**heard), confirmation_timeout_action="relay")
    assert result.action is RelayAction.CONFIRM
    assert result.on_timeout is ConfirmationTimeoutAction.IGNORE
    assert "never relayed without an operator" in result.reason


def test_a_confirmed_event_heard_cleanly_may_become_a_timed_relay(make_air: AirFactory) -> None:
    result = decide(make_air(), require_confirmation=["TOR"], confirmation_timeout_action="relay")
    assert result.on_timeout is ConfirmationTimeoutAction.RELAY


def test_a_heard_header_is_re_encoded_in_the_standard_form_with_our_callsign(
    make_air: AirFactory,
) -> None:
    candidate = make_air(duration="0010", callsign="KCLE/NWS")
    assert candidate.header is not None
    assert candidate.header.text == "ZCZC-WXR-TOR-039035+0015-1211800-WXYZ/FM -"
    assert candidate.heard_header == "ZCZC-WXR-TOR-039035+0010-1211800-KCLE/NWS-"
    result = decide(candidate)
    assert result.action is RelayAction.RELAY
    assert check(result, "header").values["relayed"] == candidate.header.text


def test_more_than_31_heard_locations(make_air: AirFactory) -> None:
    codes = tuple(f"039{n:03d}" for n in range(1, 71, 2))
    candidate = make_air(locations=codes)
    assert candidate.header is not None and candidate.header.locations == codes[:31]
    assert candidate.all_locations == codes
    result = decide(candidate, station=(codes[-1],))
    assert blocking(result) == {"location": RelayAction.CONFIRM}


def test_deviations_are_read_from_the_event(
    make_heard: Callable[..., SameHeaderEvent],
) -> None:
    base = make_heard()
    event = base.model_copy(update={"deviations": ["missing_trailing_dash"]})
    candidate = Candidate.from_air(event, callsign="WXYZ/FM")
    assert candidate.deviations == ("missing_trailing_dash",)
    assert Candidate.from_air(base, callsign="WXYZ/FM").deviations == ()
    old = SameHeaderEvent.model_validate(base.model_dump(exclude={"deviations"}))
    assert old.deviations == []  # a payload from before the field still parses


_OHIO = tuple(f"039{n:03d}" for n in range(1, 81, 2))  # 40 real counties

# heard as (builder arguments), deviations the decoder names, the header a relay airs
HEARD_DEVIATING: list[tuple[dict[str, Any], list[str], str]] = [
    ({"callsign": "WJONTV7"}, ["callsign_length"],
     "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"),
    ({"callsign": "kcle.nws"}, ["callsign_characters"],
     "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"),
    ({"duration": "0010"}, ["purge_step"], "ZCZC-WXR-TOR-039035+0015-1211800-WXYZ/FM -"),
    ({"duration": "0145"}, ["purge_step"], "ZCZC-WXR-TOR-039035+0200-1211800-WXYZ/FM -"),
    ({}, ["missing_trailing_dash"], "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"),
    ({"locations": ("039035", "039999")}, ["unknown_county"],
     "ZCZC-WXR-TOR-039035-039999+0100-1211800-WXYZ/FM -"),
    ({"locations": (*_OHIO[17:], "039035")}, ["location_count"],
     f"ZCZC-WXR-TOR-{'-'.join((*_OHIO[17:], '039035'))}+0100-1211800-WXYZ/FM -"),
]  # fmt: skip


@pytest.mark.parametrize(("heard", "deviations", "relayed"), HEARD_DEVIATING)
def test_a_deviating_header_is_confirmed_and_relayed_in_the_standard_form(
    make_heard: Callable[..., SameHeaderEvent],
    heard: dict[str, Any],
    deviations: list[str],
    relayed: str,
) -> None:
    event = make_heard(**heard).model_copy(update={"deviations": deviations})
    candidate = Candidate.from_air(event, callsign="WXYZ/FM")
    assert candidate.header is not None and candidate.header_error is None
    assert candidate.header.text == relayed
    assert parse_header(relayed).text == relayed  # strict: the standard form
    assert candidate.header.deviations == ()
    result = decide(candidate)
    assert blocking(result) == {"deviation": RelayAction.CONFIRM}
    found = check(result, "deviation")
    assert found.values["deviations"] == deviations
    for name in deviations:
        assert name in found.detail and DEVIATIONS[name] in found.detail


def test_an_unknown_event_heard_is_not_relayed(make_heard: Callable[..., SameHeaderEvent]) -> None:
    event = make_heard(event="XYZ").model_copy(update={"deviations": ["unknown_event"]})
    candidate = Candidate.from_air(event, callsign="WXYZ/FM")
    assert candidate.header is None and candidate.header_error
    result = decide(candidate, events=["XYZ"])
    assert blocking(result)["header"] is RelayAction.IGNORE
    assert check(result, "deviation").values["deviations"] == ["unknown_event"]


@pytest.mark.parametrize(
    ("event", "cls"),
    [
        ("EAN", PrecedenceClass.EAN),
        ("NPT", PrecedenceClass.NATIONAL),
        ("EAT", PrecedenceClass.NATIONAL),
        ("RWT", PrecedenceClass.TEST),
        ("NST", PrecedenceClass.TEST),
        ("SQW", PrecedenceClass.LOCAL),
    ],
)
def test_precedence_follows_the_code_table(event: str, cls: PrecedenceClass) -> None:
    assert precedence_of(event, "WXR", ["039035"])[1] is cls


# ---- the announced decision ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "state"),
    [
        ({}, DecisionState.SCHEDULED),
        ({"require_confirmation": ["TOR"]}, DecisionState.PENDING_CONFIRMATION),
        ({"events": ["SVR"]}, DecisionState.IGNORED),
    ],
)
def test_decision_event_carries_the_whole_decision(
    make_cap: CapFactory, rules: dict[str, Any], state: DecisionState
) -> None:
    candidate = make_cap()
    result = decide(candidate, **rules)
    event = decision_event(candidate, result, decision_id=42, decided_at=NOW)
    assert event.state is state and event.revision == 1
    assert event.source is RelaySource.CAP and event.alert_id == 7
    assert event.header == "ZCZC-WXR-TOR-039035+0100-1211800-WXYZ/FM -"
    assert event.locations == ["039035"] and event.event_code == "TOR"
    assert [c.rule for c in event.checks] == [c.rule for c in result.checks]
    assert event.reason == result.reason
    again = payload_model(RELAY_DECISION_TYPE).model_validate_json(event.model_dump_json())
    assert again == event and isinstance(again, RelayDecisionEvent)


def test_decision_event_of_a_heard_header(make_air: AirFactory) -> None:
    candidate = make_air(agreed=2, deviations=["callsign_characters"])
    result = decide(candidate)
    event = decision_event(candidate, result, decision_id=1, decided_at=NOW)
    assert event.source is RelaySource.AIR and event.heard_event_id == "1-0"
    assert event.deviations == ["callsign_characters"]
    assert event.on_timeout is ConfirmationTimeoutAction.IGNORE
    assert event.confirm_by == NOW + timedelta(seconds=900)


def test_now_must_be_aware(make_cap: CapFactory) -> None:
    with pytest.raises(ValueError, match="aware"):
        evaluate(make_cap(), RelayRules(), LocationSettings(), datetime(2025, 5, 1))


@pytest.mark.parametrize(
    ("age_s", "max_age_s", "action"),
    [
        (0, 600, RelayAction.RELAY),
        (600, 600, RelayAction.RELAY),
        (601, 600, RelayAction.IGNORE),
        (3 * 3600, 600, RelayAction.IGNORE),
        (3 * 3600, 86_400, RelayAction.RELAY),
    ],
)
def test_what_was_received_long_ago_is_not_relayed_automatically(
    make_cap: CapFactory, make_air: AirFactory, age_s: int, max_age_s: int, action: RelayAction
) -> None:
    import dataclasses

    for candidate in (make_cap(), make_air()):
        aged = dataclasses.replace(candidate, received_at=NOW - timedelta(seconds=age_s))
        # A heard header purges by its own issue time + TTTT: keep it valid for the old ones.
        if aged.purge_at is not None:
            aged = dataclasses.replace(aged, purge_at=NOW + timedelta(hours=1))
        result = decide(aged, max_age_s=max_age_s)
        stale = next(c for c in result.checks if c.rule == "stale")
        assert stale.passed is (action is RelayAction.RELAY), (candidate.source, stale.detail)
        if action is RelayAction.IGNORE:
            assert result.action is RelayAction.IGNORE and "operator may forward" in stale.detail
            # The operator reads how long ago, in minutes.
            assert stale.detail.startswith(f"Received {age_s / 60:.0f} min ago"), stale.detail
        else:
            assert stale.detail == f"Received {age_s} s ago."


def test_an_expired_alert_is_said_to_have_expired(
    make_cap: CapFactory, make_air: AirFactory
) -> None:
    # Already past its purge time: "expired", not "would air after it expires".
    for candidate in (
        make_cap(sent=NOW - timedelta(hours=2)),
        make_air(issued=NOW - timedelta(hours=2)),
    ):
        expired = check(decide(candidate), "expired")
        assert expired.consequence is RelayAction.IGNORE
        assert expired.detail.startswith("Expired at "), expired.detail
        assert expired.values["now"] == NOW.isoformat()


def test_a_received_rmt_waits_for_confirmation_no_longer_than_its_60_minute_window(
    make_air: AirFactory,
) -> None:
    rmt = make_air(originator="EAS", event="RMT", duration="0100")
    long_wait = decide(
        rmt,
        events=["RMT"],
        originators=["EAS"],
        require_confirmation=["RMT"],
        confirmation_timeout_s=3 * 3600,
        delay_s=300,
    )
    assert long_wait.action is RelayAction.CONFIRM
    # 60 minutes from receipt, less the relay delay that follows the confirmation.
    assert long_wait.confirm_by == NOW + timedelta(minutes=55)
    window = check(long_wait, "rmt_window")
    assert "47 CFR 11.61" in (window.reference or "")
    assert window.values["window_minutes"] == 60 and "by 19:00 UTC" in window.detail
    short = decide(
        rmt,
        events=["RMT"],
        originators=["EAS"],
        require_confirmation=["RMT"],
        confirmation_timeout_s=600,
    )
    assert short.confirm_by == NOW + timedelta(minutes=10)
    tor = decide(make_air(), require_confirmation=["TOR"], confirmation_timeout_s=3 * 3600)
    assert tor.confirm_by == NOW + timedelta(hours=3)
    assert all(c.rule != "rmt_window" for c in tor.checks)


def test_a_refused_scope_is_named_in_the_check(make_cap: CapFactory) -> None:
    refused = check(decide(make_cap(scope=CapScope.PRIVATE)), "scope")
    assert refused.consequence is RelayAction.IGNORE
    assert refused.detail == "Scope Private is not relayed."
    assert refused.values["scope"] == "Private" and refused.values["relayed"] == ["Public"]
