"""RelayRules: safe defaults, every field described, each bad value refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from eas_schemas.cap import CapMsgType, CapScope, CapSeverity, CapUrgency
from eas_schemas.station_settings import (
    CapWithoutEventCode,
    ConfirmationTimeoutAction,
    RelayRules,
    StationSettings,
)


def _error_fields(doc: dict[str, Any]) -> dict[str, str]:
    """Field path -> message of every error of the relay section ``doc``."""
    with pytest.raises(ValidationError) as caught:
        RelayRules.model_validate(doc)
    return {".".join(str(p) for p in e["loc"]) or "relay": e["msg"] for e in caught.value.errors()}


def test_a_fresh_station_relays_nothing() -> None:
    rules = RelayRules()
    assert rules.enabled is False
    assert rules.events == []
    assert rules.locations == []  # = the station's codes, and a fresh station has none
    assert rules.msg_types == [CapMsgType.ALERT, CapMsgType.UPDATE]
    assert rules.scopes == [CapScope.PUBLIC]
    assert rules.allow_test_status is False
    assert rules.hold_until_onset is False
    assert rules.confirmation_timeout_action is ConfirmationTimeoutAction.IGNORE
    assert rules.delay_s == 0
    assert rules.language == "en"
    assert rules.default_duration_minutes == 60
    assert rules.cap_without_event_code == CapWithoutEventCode(
        enabled=False, min_severity=CapSeverity.SEVERE, min_urgency=CapUrgency.IMMEDIATE
    )
    assert rules.air_min_confidence == 0.9
    assert rules.dedup_window_s == 900


@pytest.mark.parametrize("model", [RelayRules, CapWithoutEventCode])
def test_every_field_is_described(model: type[BaseModel]) -> None:
    assert [n for n, f in model.model_fields.items() if not f.description] == []


def test_an_older_document_without_the_new_fields_still_loads() -> None:
    old = {"enabled": True, "events": ["TOR"], "require_confirmation": ["TOR"]}
    rules = RelayRules.model_validate(old)
    assert rules.delay_s == 0 and rules.msg_types == [CapMsgType.ALERT, CapMsgType.UPDATE]


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"msg_types": ["Alert", "Cancel"]}, "msg_types", "Cancel cannot be relayed"),
        ({"msg_types": ["Ack"]}, "msg_types", "not processed"),
        ({"msg_types": ["Error"]}, "msg_types", "not processed"),
        ({"msg_types": ["Bogus"]}, "msg_types.0", "Alert"),
        ({"scopes": ["Public", "Private"]}, "scopes", "never broadcast"),
        ({"delay_s": 601}, "delay_s", "600"),
        ({"delay_s": -1}, "delay_s", "0"),
        ({"language": "english!"}, "language", "RFC 5646"),
        ({"language": ""}, "language", "RFC 5646"),
        ({"default_duration_minutes": 0}, "default_duration_minutes", "1"),
        ({"default_duration_minutes": 5971}, "default_duration_minutes", "5970"),
        ({"air_min_confidence": 1.01}, "air_min_confidence", "1"),
        ({"air_min_confidence": 0.49}, "air_min_confidence", "0.5"),
        ({"dedup_window_s": 59}, "dedup_window_s", "60"),
        ({"dedup_window_s": 3601}, "dedup_window_s", "3600"),
        ({"confirmation_timeout_action": "air"}, "confirmation_timeout_action", "relay"),
        (
            {"cap_without_event_code": {"min_severity": "Unknown"}},
            "cap_without_event_code.min_severity",
            "Minor, Moderate, Severe or Extreme",
        ),
        (
            {"cap_without_event_code": {"min_urgency": "Unknown"}},
            "cap_without_event_code.min_urgency",
            "Past, Future, Expected or Immediate",
        ),
        ({"cap_without_event_code": {"typo": True}}, "cap_without_event_code.typo", "Extra"),
        ({"allow_tests": True}, "allow_tests", "Extra"),
        ({"events": ["TOR"], "require_confirmation": ["EAN"]}, "relay", "47 CFR 11.54"),
        ({"events": ["TOR"], "require_confirmation": ["SVR"]}, "relay", "not relayed: ['SVR']"),
    ],
)
def test_each_bad_value_is_refused_with_its_field_and_why(
    doc: dict[str, Any], field: str, words: str
) -> None:
    errors = _error_fields(doc)
    assert list(errors) == [field]
    assert words in errors[field]


def test_valid_values_at_the_edges_are_kept() -> None:
    rules = RelayRules.model_validate(
        {
            "delay_s": 600,
            "language": "es-US",
            "default_duration_minutes": 5970,
            "air_min_confidence": 0.5,
            "dedup_window_s": 60,
            "msg_types": ["Update", "Alert", "Update"],
            "scopes": ["Restricted", "Public", "Public"],
            "confirmation_timeout_action": "relay",
            "require_confirmation": ["NPT"],  # always relayed, so it may wait unlisted
            "cap_without_event_code": {"enabled": True, "min_severity": "Extreme"},
        }
    )
    assert rules.msg_types == [CapMsgType.UPDATE, CapMsgType.ALERT]
    assert rules.scopes == [CapScope.RESTRICTED, CapScope.PUBLIC]
    assert rules.confirmation_timeout_action is ConfirmationTimeoutAction.RELAY
    assert rules.cap_without_event_code.min_urgency is CapUrgency.IMMEDIATE


def test_the_whole_document_round_trips_and_names_the_relay_path() -> None:
    doc = StationSettings.model_validate(
        {"relay": {"enabled": True, "events": ["TOR"], "delay_s": 30}}
    )
    again = StationSettings.model_validate_json(doc.model_dump_json())
    assert again == doc and again.relay.delay_s == 30
    with pytest.raises(ValidationError) as caught:
        StationSettings.model_validate({"relay": {"msg_types": ["Cancel"]}})
    assert [e["loc"] for e in caught.value.errors()] == [("relay", "msg_types")]
