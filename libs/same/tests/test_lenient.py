"""Lenient receive: every deviation named, every non-header refused (table-driven)."""

from __future__ import annotations

import pytest

from eas_same import SameHeaderError, parse_header
from eas_same.encoder import generate
from eas_schemas.same_codes import DEVIATIONS

STD = "ZCZC-WXR-TOR-039035+0100-3181518-KCLE/NWS-"
MANY = "-".join(f"039{n:03d}" for n in range(1, 81, 2))  # 40 real Ohio counties

# 11.31(c) asks only for printable non-dash characters in the callsign, and strict parsing
# never looked counties up (the origination API does): a receiver notes both all the same.
STRICT_ALLOWS = {"callsign_characters", "unknown_county"}

DEVIATING = [
    # (header as heard, deviations, callsign as parsed)
    ("ZCZC-EAS-RWT-042001+0300-3040858-WJONTV7-", ["callsign_length"], "WJONTV7"),
    ("ZCZC-EAS-RWT-042001+0300-3040858-KX-", ["callsign_length"], "KX"),
    ("ZCZC-EAS-RWT-042001+0300-3040858-K-", ["callsign_length"], "K"),
    ("ZCZC-WXR-TOR-039035+0100-3181518-kcle.nws-", ["callsign_characters"], "kcle.nws"),
    ("ZCZC-WXR-TOR-039035+0010-3181518-KCLE/NWS-", ["purge_step"], "KCLE/NWS"),
    ("ZCZC-WXR-TOR-039035+0000-3181518-KCLE/NWS-", ["purge_step"], "KCLE/NWS"),
    ("ZCZC-WXR-TOR-039035+0145-3181518-KCLE/NWS-", ["purge_step"], "KCLE/NWS"),
    ("ZCZC-WXR-TOR-039035+0100-3181518-KCLE/NWS", ["missing_trailing_dash"], "KCLE/NWS"),
    (f"ZCZC-CIV-CEM-{MANY}+0100-3181518-KCLE/NWS-", ["location_count"], "KCLE/NWS"),
    ("ZCZC-WXR-TOR-039035-039999+0100-3181518-KCLE/NWS-", ["unknown_county"], "KCLE/NWS"),
    ("ZCZC-WXR-XYZ-039035+0100-3181518-KCLE/NWS-", ["unknown_event"], "KCLE/NWS"),
    (
        "ZCZC-WXR-TOR-039999+0010-3181518-kc/1-",
        ["callsign_length", "callsign_characters", "purge_step", "unknown_county"],
        "kc/1",
    ),
]


@pytest.mark.parametrize(("text", "deviations", "callsign"), DEVIATING)
def test_each_deviation_is_decoded_and_named(
    text: str, deviations: list[str], callsign: str
) -> None:
    h = parse_header(text, lenient=True)
    assert list(h.deviations) == deviations
    assert h.callsign == callsign and h.raw == text and h.text == text
    assert h.deviation_texts == [DEVIATIONS[d] for d in deviations]
    assert h.to_dict()["deviations"] == deviations
    if set(deviations) - STRICT_ALLOWS:
        with pytest.raises(SameHeaderError):
            parse_header(text)  # strict parsing (what the station sends) refuses it
    else:
        assert parse_header(text).deviations == ()
    with pytest.raises(SameHeaderError, match="deviates"):
        generate(h, 22050)  # and the encoder never sends one
    assert len(generate(text, 22050, allow_deviations=True, attention=None)) > 0


def test_standard_header_has_no_deviations() -> None:
    assert parse_header(STD, lenient=True).deviations == ()
    assert parse_header(STD).deviations == ()


NOT_HEADERS = [
    ("ZCZB-WXR-TOR-039035+0100-3181518-KCLE/NWS-", "ZCZC"),
    ("ZCZC-XXX-TOR-039035+0100-3181518-KCLE/NWS-", "originator"),
    ("ZCZC-WXR-TO1-039035+0100-3181518-KCLE/NWS-", "event code"),
    ("ZCZC-WXR-tor-039035+0100-3181518-KCLE/NWS-", "event code"),
    ("ZCZC-WXR-TOR-039035+0100-3181518-KCLE\x07NWS-", "not printable"),
    ("ZCZC-WXR-TOR-039035+0100-3181518-KCLÉ/NWS-", "non-ASCII"),
    ("ZCZC-WXR-TOR-039035+0100-3181518-", "form"),  # no callsign at all
    ("ZCZC-WXR-TOR-039035+0100-3181518-KCLE", "form"),  # cut off in the callsign
    ("ZCZC-WXR-TOR-039035+0100-3181518-KCLE/NWS1-", "form"),  # callsign of 9
    ("ZCZC-WXR-TOR-039035-0100-3181518-KCLE/NWS-", "form"),  # no '+'
    ("ZCZC-PEP-WSW-", "form"),  # what multimon-ng prints for a truncated burst
    ("ZCZC-WXR-TOR-03903+0100-3181518-KCLE/NWS-", "six digits"),
    ("ZCZC-WXR-TOR-099035+0100-3181518-KCLE/NWS-", "state"),
    ("ZCZC-WXR-TOR-000035+0100-3181518-KCLE/NWS-", "national"),
    ("ZCZC-WXR-TOR-039035+0160-3181518-KCLE/NWS-", "minutes above 59"),
    ("ZCZC-WXR-TOR-039035+01A0-3181518-KCLE/NWS-", "four digits"),
    ("ZCZC-WXR-TOR-039035+0100-3672518-KCLE/NWS-", "day of year"),
    ("ZCZC-WXR-TOR-039035+0100-3182518-KCLE/NWS-", "hour"),
    (f"ZCZC-CIV-CEM-{MANY}-{MANY}+0100-3181518-KCLE/NWS-", "location codes"),
]


@pytest.mark.parametrize(("text", "reason"), NOT_HEADERS)
def test_what_is_not_a_header_is_refused(text: str, reason: str) -> None:
    with pytest.raises(SameHeaderError, match=reason):
        parse_header(text, lenient=True)


def test_lenient_duration_alone_names_the_purge_step() -> None:
    h = parse_header("ZCZC-WXR-TOR-039035+0010-3181518-KCLE/NWS-", lenient_duration=True)
    assert h.deviations == ("purge_step",)
    with pytest.raises(SameHeaderError):
        parse_header("ZCZC-WXR-TOR-039035+0100-3181518-KCLE/NW-", lenient_duration=True)


def test_a_receiver_takes_up_to_62_locations_and_no_more() -> None:
    ohio = [f"039{n:03d}" for n in range(1, 176, 2)]  # 88 real Ohio counties
    for count in (31, 32, 62, 63):
        text = f"ZCZC-CIV-CEM-{'-'.join(ohio[:count])}+0100-3181518-KCLE/NWS-"
        if count > 62:
            with pytest.raises(SameHeaderError, match="location codes"):
                parse_header(text, lenient=True)
            continue
        h = parse_header(text, lenient=True)
        assert len(h.locations) == count
        assert h.deviations == (("location_count",) if count > 31 else ())
