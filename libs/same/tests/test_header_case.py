"""Header parser: exact case and character classes, table-driven.

Lenient receive (DESIGN.md, SAME) forgives a header whose *meaning* is unambiguous; a
lower-case originator or event code, a letter where a digit belongs or a digit Python
accepts but ASCII does not, is not such a header: it is what a corrupted decode looks like,
and it must never reach the air. These rules hold whatever leniency the parser grows.
"""

from __future__ import annotations

import pytest

from eas_same import codes
from eas_same.header import SameHeader, SameHeaderError, parse_header

ORG, EEE, LOC, TTTT, JJJHHMM, CALL = "WXR", "TOR", "039035", "0100", "3181518", "KXYZ/FM "


def header(
    *,
    prefix: str = "ZCZC",
    org: str = ORG,
    eee: str = EEE,
    loc: str = LOC,
    tttt: str = TTTT,
    issued: str = JJJHHMM,
    call: str = CALL,
) -> str:
    return f"{prefix}-{org}-{eee}-{loc}+{tttt}-{issued}-{call}-"


FULLWIDTH = "".maketrans("0123456789", "".join(chr(0xFF10 + i) for i in range(10)))
ARABIC_INDIC = "".maketrans("0123456789", "".join(chr(0x0660 + i) for i in range(10)))

# (field, header text, what the reason names)
REJECTED: list[tuple[str, str, str]] = [
    # the start code is upper case
    ("prefix", header(prefix="zczc"), "ZCZC"),
    ("prefix", header(prefix="Zczc"), "ZCZC"),
    ("prefix", header(prefix="ZCZc"), "ZCZC"),
    # originator: exactly one of four upper-case codes
    ("org", header(org="wxr"), "originator"),
    ("org", header(org="Wxr"), "originator"),
    ("org", header(org="wXR"), "originator"),
    ("org", header(org="WXr"), "originator"),
    ("org", header(org="civ"), "originator"),
    ("org", header(org="pep"), "originator"),
    ("org", header(org="eas"), "originator"),
    ("org", header(org="WX1"), "originator"),
    ("org", header(org="WX "), "originator"),
    ("org", header(org=" WX"), "originator"),
    # event code: upper case, letters
    ("event", header(eee="tor"), "event"),
    ("event", header(eee="Tor"), "event"),
    ("event", header(eee="toR"), "event"),
    ("event", header(eee="rwt"), "event"),
    ("event", header(eee="ean"), "event"),
    ("event", header(eee="T0R"), "event"),
    ("event", header(eee="TO "), "event"),
    # location codes: ASCII digits only
    ("location", header(loc="03903A"), "location"),
    ("location", header(loc="O39035"), "location"),  # letter O for zero
    ("location", header(loc="039O35"), "location"),
    ("location", header(loc="03903l"), "location"),  # letter l for one
    ("location", header(loc="039 35"), "location"),
    ("location", header(loc="039035-04803a"), "location"),  # the second code counts too
    ("location", header(loc=LOC.translate(FULLWIDTH)), "non-ASCII"),
    ("location", header(loc=LOC.translate(ARABIC_INDIC)), "non-ASCII"),
    # purge time: ASCII digits only
    ("duration", header(tttt="01OO"), "four digits"),
    ("duration", header(tttt="O100"), "four digits"),
    ("duration", header(tttt="01 0"), "four digits"),
    ("duration", header(tttt=TTTT.translate(FULLWIDTH)), "non-ASCII"),
    ("duration", header(tttt="01\u00b30"), "non-ASCII"),  # superscript three: isdigit() says yes
    # issue time: ASCII digits only
    ("issued", header(issued="318151A"), "seven digits"),
    ("issued", header(issued="3l81518"), "seven digits"),
    ("issued", header(issued=JJJHHMM.translate(ARABIC_INDIC)), "non-ASCII"),
    # callsign: printable ASCII (0x20-0x7E)
    ("callsign", header(call="KXYZ\x01FM "), "invalid character"),
    ("callsign", header(call="KXYZ\x7fFM "), "invalid character"),  # DEL is not printable
    ("callsign", header(call="KXYZ\x1fFM "), "invalid character"),
    ("callsign", header(call="KXYZ\tFM "), "invalid character"),
    ("callsign", header(call="KXYZ/FM\x00"), "invalid character"),
    ("callsign", header(call="KXYZ/FM\u00e9"), "non-ASCII"),
]


@pytest.mark.parametrize(
    ("field", "text", "reason"), REJECTED, ids=[f"{f}:{t!r}" for f, t, _ in REJECTED]
)
def test_rejected(field: str, text: str, reason: str) -> None:
    with pytest.raises(SameHeaderError, match=reason):
        parse_header(text)


# Accepted exactly as sent, nothing upper-cased or trimmed on the way.
ACCEPTED: list[tuple[str, dict[str, str]]] = [
    (header(call="kxyz/fm "), {"callsign": "kxyz/fm "}),  # the callsign is free text
    (header(call="K.X_Z~! "), {"callsign": "K.X_Z~! "}),
    (header(call="        "), {"callsign": "        "}),
    (header(call="~~~~~~~~"), {"callsign": "~~~~~~~~"}),
    (header(loc="939035"), {"location": "939035"}),
    (header(loc="000000"), {"location": "000000"}),
    (header(tttt="9930"), {"duration": "9930"}),
    (header(issued="0010000"), {"issued": "0010000"}),
    (header(issued="3662359"), {"issued": "3662359"}),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_accepted_verbatim(text: str, expected: dict[str, str]) -> None:
    h = parse_header(text)
    got = {
        "callsign": h.callsign,
        "location": h.locations[0],
        "duration": h.duration,
        "issued": h.issued_text,
    }
    assert {k: got[k] for k in expected} == expected
    assert h.text == text


@pytest.mark.parametrize("org", sorted(codes.ORIGINATORS))
def test_every_originator_in_upper_case(org: str) -> None:
    assert org == org.upper()
    assert parse_header(header(org=org)).originator == org
    with pytest.raises(SameHeaderError, match="originator"):
        parse_header(header(org=org.lower()))


@pytest.mark.parametrize("event", sorted(codes.EVENTS))
def test_every_event_code_in_upper_case_only(event: str) -> None:
    assert parse_header(header(eee=event)).event == event
    with pytest.raises(SameHeaderError, match="event"):
        parse_header(header(eee=event.lower()))
    with pytest.raises(SameHeaderError, match="event"):
        parse_header(header(eee=event.capitalize()))


def test_create_refuses_what_parse_refuses() -> None:
    # The encoder builds headers with create(): it must not be a way round the case rules.
    fields = {
        "originator": ORG,
        "event": EEE,
        "locations": [LOC],
        "duration": TTTT,
        "issued": JJJHHMM,
        "callsign": "KXYZ",
    }
    assert SameHeader.create(**fields).text == header(call="KXYZ    ")  # type: ignore[arg-type]
    for name, bad, reason in (
        ("originator", "wxr", "originator"),
        ("event", "tor", "event"),
        ("callsign", "kx\x01z", "invalid character"),
    ):
        with pytest.raises(SameHeaderError, match=reason):
            SameHeader.create(**{**fields, name: bad})  # type: ignore[arg-type]
