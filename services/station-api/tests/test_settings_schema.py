"""The settings document on its own: field rules, secrets handling, change detection."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from eas_schemas.station_settings import (
    SettingsExport,
    StationSettings,
    carry_secrets,
    changed_secrets,
    changed_sections,
    redacted,
    secret_paths,
    validate_callsign,
)


def _errors(doc: dict) -> set[str]:
    with pytest.raises(ValidationError) as info:
        StationSettings.model_validate(doc)
    return {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}


def test_callsign_is_padded_to_eight_characters():
    assert validate_callsign("WXYZ/FM") == "WXYZ/FM "
    assert validate_callsign("KEAX/NWS") == "KEAX/NWS"
    assert StationSettings.model_validate({"identity": {"callsign": "AB"}}).identity.callsign == (
        "AB      "
    )


@pytest.mark.parametrize("bad", ["TOOLONGXX", "WX-Z", "", "   ", "WXYZ\n", "WXÝZ"])
def test_callsign_rules(bad):
    assert _errors({"identity": {"callsign": bad}}) == {"identity.callsign"}


def test_timezone_must_be_iana():
    assert StationSettings.model_validate({"identity": {"timezone": "America/Chicago"}})
    for bad in ["Mars/Olympus", "../../etc/passwd", ""]:
        assert _errors({"identity": {"timezone": bad}}) == {"identity.timezone"}


def test_every_bad_field_is_named_at_once():
    fields = _errors(
        {
            "identity": {"callsign": "BAD-CALL", "originator": "XYZ", "timezone": "Nope/Nope"},
            "location": {"same_codes": ["039049", "12345", "990000"], "ugc_codes": ["OHX014"]},
            "feeds": {"nws": {"areas": ["QQ"], "contact": "not a contact"}},
            "relay": {"events": ["tornado"]},
            "retention": {"audit_days": 1},
            "typo_section": {},
        }
    )
    assert fields == {
        "identity.callsign",
        "identity.originator",
        "identity.timezone",
        "location.same_codes.1",
        "location.same_codes.2",
        "location.ugc_codes.0",
        "feeds.nws.areas.0",
        "feeds.nws.contact",
        "relay.events.0",
        "retention.audit_days",
        "typo_section",
    }


def test_location_codes_statewide_and_national_and_dedupe():
    doc = StationSettings.model_validate(
        {
            "location": {
                "same_codes": ["039000", "000000", "039049", "039049"],
                "ugc_codes": ["ohz014"],
            }
        }
    )
    assert doc.location.same_codes == ["039000", "000000", "039049"]
    assert doc.location.ugc_codes == ["OHZ014"]


def test_cross_field_rules():
    assert _errors({"feeds": {"nws": {"enabled": True}}}) == {"feeds.nws"}
    assert _errors({"feeds": {"ipaws": {"enabled": True}}}) == {"feeds.ipaws"}
    assert _errors({"relay": {"events": ["TOR"], "require_confirmation": ["SVR"]}}) == {"relay"}


def test_contact_cannot_inject_headers():
    assert _errors({"feeds": {"nws": {"contact": "ops@example.org\r\nX-Evil: 1"}}}) == {
        "feeds.nws.contact"
    }


def test_secrets_are_markers_in_every_view_and_kept_unless_cleared():
    doc = StationSettings.model_validate(
        {"feeds": {"ipaws": {"pin": "8642-secret", "client_key_pem": "-----KEY-----"}}}
    )
    assert secret_paths(doc) == ["feeds.ipaws.pin", "feeds.ipaws.client_key_pem"]
    view = redacted(doc)
    assert view["feeds"]["ipaws"]["pin_set"] is True
    assert "pin" not in view["feeds"]["ipaws"]
    assert "8642-secret" not in str(view) and "8642-secret" not in doc.model_dump_json()
    assert "8642-secret" in doc.storage_json()
    assert "pin_set" not in redacted(doc, markers=False)["feeds"]["ipaws"]

    # What a client read can be sent back: markers are ignored, secrets are kept.
    echoed = StationSettings.model_validate(view)
    kept = carry_secrets(echoed, doc)
    assert kept.feeds.ipaws.pin == SecretStr("8642-secret")
    assert changed_sections(doc, kept) == []

    cleared = carry_secrets(StationSettings.model_validate({"feeds": {"ipaws": {"pin": ""}}}), doc)
    assert cleared.feeds.ipaws.pin is None
    assert cleared.feeds.ipaws.client_key_pem == SecretStr("-----KEY-----")
    assert changed_sections(doc, cleared) == ["feeds"]
    assert changed_secrets(doc, cleared) == ["feeds.ipaws.pin"]


def test_export_document_round_trip():
    doc = StationSettings.model_validate({"identity": {"name": "WXYZ", "callsign": "WXYZ"}})
    export = SettingsExport(version=3, settings=doc)
    again = SettingsExport.model_validate_json(export.model_dump_json())
    assert again.settings == doc
    with pytest.raises(ValidationError):
        SettingsExport.model_validate({"format": "something-else", "settings": {}})
