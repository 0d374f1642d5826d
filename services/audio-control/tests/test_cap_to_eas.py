"""CAP-to-EAS conversion by the ECIG guide V1.0: its examples (section 5), its validation
criteria (section 6), and the edges of each rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from audio_control.cap_to_eas import (
    MAX_ALERT_TEXT,
    AudioKind,
    Conversion,
    TextSource,
    build_alert_text,
    convert,
    event_code_for_name,
    fcc_required_text,
    purge_code,
)
from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapInfo,
    CapMsgType,
    CapReference,
    CapResource,
    CapScope,
    CapSeverity,
    CapStatus,
    CapUrgency,
    ValuePair,
)

CALLSIGN = "WXYZ/FM"  # padded to "WXYZ/FM " in every header


def info(
    *,
    event: str = "Hazardous Materials Warning",
    same_event: str | None = "HMW",
    codes: tuple[str, ...] = ("011001",),
    geocode_name: str = "SAME",
    expires: datetime | None,
    language: str = "en-US",
    parameters: tuple[tuple[str, str], ...] = (),
    resources: tuple[CapResource, ...] = (),
    sender_name: str | None = "DC Homeland Security and Emergency Management",
    description: str | None = "A chemical spill on Main Street.",
    instruction: str | None = "Stay indoors.",
    areas: tuple[tuple[str, ...], ...] | None = None,
    event_codes: tuple[tuple[str, str], ...] | None = None,
) -> CapInfo:
    area_codes = areas if areas is not None else (codes,)
    if event_codes is None:
        event_codes = (("SAME", same_event),) if same_event is not None else ()
    return CapInfo(
        language=language,
        event=event,
        urgency=CapUrgency.IMMEDIATE,
        severity=CapSeverity.SEVERE,
        certainty=CapCertainty.OBSERVED,
        event_codes=[ValuePair(value_name=n, value=v) for n, v in event_codes],
        expires=expires,
        sender_name=sender_name,
        description=description,
        instruction=instruction,
        parameters=[ValuePair(value_name=n, value=v) for n, v in parameters],
        resources=list(resources),
        areas=[
            CapArea(
                area_desc=f"area {i}",
                geocodes=[ValuePair(value_name=geocode_name, value=c) for c in group],
            )
            for i, group in enumerate(area_codes)
        ],
    )


def alert(
    sent: datetime,
    *infos: CapInfo,
    status: CapStatus = CapStatus.ACTUAL,
    msg_type: CapMsgType = CapMsgType.ALERT,
    scope: CapScope = CapScope.PUBLIC,
) -> CapAlert:
    refs = (
        [CapReference(sender="x@example.org", identifier="old", sent=sent - timedelta(hours=1))]
        if msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL)
        else []
    )
    return CapAlert(
        identifier="ECIG-TEST-1",
        sender="x@example.org",
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=refs,
        infos=list(infos),
    )


def run(cap: CapAlert, *, now: datetime | None = None, **kw: Any) -> Conversion:
    args: dict[str, Any] = {
        "callsign": CALLSIGN,
        "language": "en",
        "timezone": "America/Denver",
        "default_duration_minutes": 60,
        "now": now or cap.sent,
    }
    args.update(kw)
    return convert(cap, **args)


def check(conv: Conversion, rule: str) -> Any:
    found = [c for c in conv.checks if c.rule == rule]
    assert len(found) == 1, (rule, [c.rule for c in conv.checks])
    return found[0]


def failed(conv: Conversion) -> set[str]:
    return {c.rule for c in conv.checks if not c.passed}


# ---- section 5: the guide's examples --------------------------------------------------------

HMW_SENT = datetime(2009, 3, 11, 23, 34, tzinfo=UTC)


def test_5_1_hazardous_materials_warning() -> None:
    cap = alert(
        HMW_SENT,
        info(expires=HMW_SENT + timedelta(hours=1), parameters=(("EAS-ORG", "CIV"),)),
    )
    conv = run(cap)
    assert conv.header is not None
    assert conv.header.text == "ZCZC-CIV-HMW-011001+0100-0702334-WXYZ/FM -"
    assert conv.airable and failed(conv) == set()
    # 3.6.3: the guide's required text, word for word (Denver is UTC-6 on that day).
    assert conv.alert_text.startswith(
        "A CIVIL AUTHORITY HAS ISSUED A HAZARDOUS MATERIALS WARNING FOR THE FOLLOWING "
        "COUNTIES/AREAS: District of Columbia, DC; AT 5:34 PM ON MAR 11, 2009 EFFECTIVE UNTIL "
        "6:34 PM. "
    )


def test_5_2_required_monthly_test_for_five_counties() -> None:
    sent = datetime(2010, 1, 25, 20, 0, tzinfo=UTC)
    codes = ("053029", "053031", "053035", "053033", "053061")
    cap = alert(
        sent,
        info(
            event="Required Monthly Test",
            same_event="RMT",
            codes=codes,
            expires=sent + timedelta(hours=1),
            parameters=(("EAS-ORG", "CIV"),),
        ),
    )
    conv = run(cap)
    assert conv.header is not None
    assert conv.header.text == (
        "ZCZC-CIV-RMT-053029-053031-053035-053033-053061+0100-0252000-WXYZ/FM -"
    )
    assert conv.locations == codes and conv.airable


def test_5_3_emergency_action_notification_with_live_audio() -> None:
    sent = datetime(2010, 3, 15, 22, 56, tzinfo=UTC)
    stream = CapResource(
        resource_desc="EAS Broadcast Content",
        mime_type="audio/x-ipaws-streaming-audio-mp3",
        uri="https://pep.example.gov/live.mp3",
    )
    cap = alert(
        sent,
        info(
            event="Emergency Action Notification",
            same_event="EAN",
            codes=("000000",),
            expires=sent + timedelta(days=7),
            parameters=(("EAS-ORG", "PEP"),),
            resources=(stream,),
        ),
    )
    conv = run(cap)
    assert conv.header is not None
    assert conv.header.text == "ZCZC-PEP-EAN-000000+9930-0742256-WXYZ/FM -"
    assert conv.audio_resource is not None
    assert conv.audio_resource.kind is AudioKind.STREAMING
    assert conv.audio_resource.fetch_limit_s == 30
    assert conv.audio_resource.uri == "https://pep.example.gov/live.mp3"
    assert "(the longest a header can say)" in check(conv, "duration").detail
    # 47 CFR 11.31(d) as amended by FCC 22-75: the public text of PEP and EAN.
    assert conv.alert_text.startswith(
        "THE UNITED STATES GOVERNMENT HAS ISSUED A NATIONAL EMERGENCY MESSAGE FOR THE "
        "FOLLOWING COUNTIES/AREAS: the United States; AT 4:56 PM ON MAR 15, 2010 "
    )


def test_5_4_emergency_action_termination() -> None:
    sent = datetime(2010, 3, 16, 22, 0, tzinfo=UTC)
    cap = alert(
        sent,
        info(
            event="Emergency Action Termination",
            same_event="EAT",
            codes=("000000",),
            expires=sent + timedelta(minutes=30),
            parameters=(("EAS-ORG", "PEP"),),
        ),
    )
    conv = run(cap)
    assert conv.header is not None
    assert conv.header.text == "ZCZC-PEP-EAT-000000+0030-0752200-WXYZ/FM -"


def test_5_5_a_test_status_message_is_not_aired() -> None:
    cap = alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1)), status=CapStatus.TEST)
    conv = run(cap)
    assert not conv.airable
    assert failed(conv) == {"cap_status"}
    assert check(conv, "cap_status").reference == "ECIG 3.9"


# ---- section 6: validation criteria ---------------------------------------------------------


def test_6_5_a_document_that_is_not_cap_is_rejected_by_the_model() -> None:
    with pytest.raises(ValidationError):
        CapAlert.model_validate({"sender": "x@example.org", "status": "Actual"})


@pytest.mark.parametrize(
    ("status", "airs"),
    [
        (CapStatus.ACTUAL, True),
        (CapStatus.TEST, False),
        (CapStatus.EXERCISE, False),
        (CapStatus.SYSTEM, False),
        (CapStatus.DRAFT, False),
    ],
)
def test_3_9_only_actual_status_airs(status: CapStatus, airs: bool) -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1)), status=status))
    assert conv.airable is airs
    assert check(conv, "cap_status").values["status"] == status.value


@pytest.mark.parametrize(
    ("msg_type", "airs", "words"),
    [
        (CapMsgType.ALERT, True, "airs"),
        (CapMsgType.UPDATE, True, "airs"),
        (CapMsgType.CANCEL, False, "never airs"),
        (CapMsgType.ACK, False, "not processed"),
        (CapMsgType.ERROR, False, "not processed"),
    ],
)
def test_3_8_msg_types(msg_type: CapMsgType, airs: bool, words: str) -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1)), msg_type=msg_type))
    assert conv.airable is airs
    assert words in check(conv, "msg_type").detail


@pytest.mark.parametrize("scope", [CapScope.RESTRICTED, CapScope.PRIVATE])
def test_section_4_only_public_scope_airs(scope: CapScope) -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1)), scope=scope))
    assert not conv.airable and failed(conv) == {"scope"}


def test_3_4_1_2_missing_event_code_is_not_aired_and_the_name_is_looked_up() -> None:
    conv = run(alert(HMW_SENT, info(same_event=None, expires=HMW_SENT + timedelta(hours=1))))
    assert conv.header is None and not conv.airable
    assert failed(conv) == {"event_code"}
    assert conv.sent_event_code is None
    assert conv.inferred_event_code == "HMW"
    assert conv.inferred_header is not None
    assert conv.inferred_header.text == "ZCZC-CIV-HMW-011001+0100-0702334-WXYZ/FM -"
    # The text is still built, from the inferred header, for an operator to review.
    assert conv.alert_text.startswith("A CIVIL AUTHORITY HAS ISSUED A HAZARDOUS MATERIALS")


def test_missing_event_code_with_an_unknown_event_name_has_no_header_at_all() -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(event="Gas Leak Advisory", same_event=None, expires=HMW_SENT + timedelta(hours=1)),
        )
    )
    assert conv.header is None and conv.inferred_header is None
    assert conv.alert_text == "" and conv.text_source is TextSource.NONE
    assert "not in the SAME table" in check(conv, "event_code").detail


@pytest.mark.parametrize(
    ("event_codes", "expected", "words"),
    [
        ((("SAME", "tor"),), None, "case sensitive"),
        ((("SAME", "XYZ"),), None, "is not a SAME event code"),
        ((("SAME", ""), ("SAME", "TOR")), "TOR", "Event TOR"),  # an empty value says nothing
        ((("SAME", "TOR"), ("SAME", "SVR")), "TOR", "Event TOR"),  # the first one counts
        ((("NWS", "TOR"), ("same", "SVR")), "SVR", "Event SVR"),  # valueName case ignored
    ],
)
def test_3_4_1_2_event_code_rules(
    event_codes: tuple[tuple[str, str], ...], expected: str | None, words: str
) -> None:
    conv = run(
        alert(HMW_SENT, info(event_codes=event_codes, expires=HMW_SENT + timedelta(hours=1)))
    )
    assert conv.event_code == expected
    assert words in check(conv, "event_code").detail
    assert (conv.header is not None) is (expected is not None)


@pytest.mark.parametrize(
    "codes", [(), ("ABC",), ("052001",), ("011001X",)], ids=["none", "letters", "state", "long"]
)
def test_6_7_a_header_needs_a_valid_same_geocode(codes: tuple[str, ...]) -> None:
    conv = run(alert(HMW_SENT, info(codes=codes, expires=HMW_SENT + timedelta(hours=1))))
    assert conv.header is None and "geocode" in failed(conv)
    assert list(conv.invalid_locations) == list(codes)


def test_ugc_geocodes_alone_make_no_header() -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(codes=("DCC001",), geocode_name="UGC", expires=HMW_SENT + timedelta(hours=1)),
        )
    )
    assert conv.header is None and "geocode" in failed(conv)


def test_3_10_fips6_geocodes_count_as_same_and_five_digit_fips_is_padded() -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(codes=("011001", "24031"), geocode_name="FIPS6", expires=HMW_SENT + timedelta(1)),
        )
    )
    assert conv.locations == ("011001", "024031")


def test_3_4_1_3_first_31_locations_in_order_across_areas_duplicates_once() -> None:
    ohio = [f"039{n:03d}" for n in range(1, 71, 2)]  # 35 codes
    areas = (tuple(ohio[:20]), (ohio[5], *ohio[20:]))  # a repeat in the second area
    conv = run(alert(HMW_SENT, info(areas=areas, expires=HMW_SENT + timedelta(hours=1))))
    assert conv.header is not None
    assert conv.locations == tuple(ohio[:31])
    assert conv.dropped_locations == tuple(ohio[31:])
    assert conv.header.locations == tuple(ohio[:31])
    assert "4 past the 31st" in check(conv, "geocode").detail
    assert conv.airable  # the rest is written down, not a failure


def test_3_10_missing_eas_org_defaults_to_civ() -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1))))
    assert conv.originator == "CIV"
    assert check(conv, "eas_org").values["defaulted"] is True


@pytest.mark.parametrize(
    ("parameters", "originator"),
    [
        ((("EAS-ORG", "WXR"), ("EAS-ORG", "CIV")), "WXR"),  # 3.3.1: the first one counts
        ((("EAS-ORG", " PEP "),), "PEP"),
        ((("eas-org", "EAS"),), "EAS"),
        ((("EAS-ORG", "   "),), "CIV"),  # empty is absent
    ],
)
def test_3_4_1_1_originator_from_eas_org(
    parameters: tuple[tuple[str, str], ...], originator: str
) -> None:
    conv = run(alert(HMW_SENT, info(parameters=parameters, expires=HMW_SENT + timedelta(hours=1))))
    assert conv.originator == originator
    assert conv.header is not None and conv.header.originator == originator


@pytest.mark.parametrize("value", ["FOO", "wxr"])
def test_an_eas_org_that_is_not_an_originator_makes_no_header(value: str) -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(parameters=(("EAS-ORG", value),), expires=HMW_SENT + timedelta(hours=1)),
        )
    )
    assert conv.header is None and failed(conv) == {"eas_org"}


@pytest.mark.parametrize(
    ("valid_for", "expected"),
    [
        (timedelta(seconds=30), "0015"),
        (timedelta(minutes=1), "0015"),
        (timedelta(minutes=15), "0015"),
        (timedelta(minutes=15, seconds=1), "0030"),
        (timedelta(minutes=16), "0030"),
        (timedelta(minutes=30), "0030"),
        (timedelta(minutes=45), "0045"),
        (timedelta(minutes=46), "0100"),  # FCC: 15-minute steps up to one hour
        (timedelta(minutes=60), "0100"),
        (timedelta(minutes=61), "0130"),
        (timedelta(minutes=90), "0130"),
        (timedelta(minutes=91), "0200"),
        (timedelta(hours=6, minutes=1), "0630"),
        (timedelta(hours=99), "9900"),
        (timedelta(hours=99, minutes=30), "9930"),
        (timedelta(hours=99, minutes=31), "9930"),
        (timedelta(days=30), "9930"),
        (timedelta(0), None),
        (timedelta(minutes=-5), None),
    ],
)
def test_3_4_1_4_purge_time_rounds_up_to_legal_steps(
    valid_for: timedelta, expected: str | None
) -> None:
    assert purge_code(valid_for) == expected


@pytest.mark.parametrize("minutes", [1, 15, 16, 45, 46, 60, 61, 90, 91])
def test_purge_time_in_the_header_follows_expires_minus_sent(minutes: int) -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(minutes=minutes))))
    assert conv.header is not None
    assert conv.header.duration == purge_code(timedelta(minutes=minutes))


def test_3_4_1_4_expires_not_after_sent_is_expired() -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT)))
    assert conv.header is None and {"duration", "expired"} <= failed(conv)


def test_a_message_past_its_expiry_is_not_airable() -> None:
    cap = alert(HMW_SENT, info(expires=HMW_SENT + timedelta(minutes=30)))
    conv = run(cap, now=HMW_SENT + timedelta(minutes=30))
    assert conv.header is not None  # the header exists; it is too late to air it
    assert failed(conv) == {"expired"} and not conv.airable


@pytest.mark.parametrize(("default", "expected"), [(60, "0100"), (45, "0045"), (50, "0100")])
def test_missing_expires_uses_the_station_default(default: int, expected: str) -> None:
    conv = run(alert(HMW_SENT, info(expires=None)), default_duration_minutes=default)
    assert conv.header is not None and conv.header.duration == expected
    assert conv.expires_defaulted and conv.expires == HMW_SENT + timedelta(minutes=default)
    assert check(conv, "duration").values["defaulted"] is True


def test_3_4_1_5_issue_time_is_utc_day_of_year_hour_minute_of_sent() -> None:
    sent = datetime(2024, 12, 31, 18, 5, 42, tzinfo=UTC)  # leap year: day 366
    conv = run(alert(sent, info(expires=sent + timedelta(hours=1))))
    assert conv.header is not None and conv.header.issued_text == "3661805"


def test_3_4_1_6_callsign_is_ours_padded_and_a_bad_one_is_refused() -> None:
    conv = run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1))), callsign="KABC")
    assert conv.header is not None and conv.header.callsign == "KABC    "
    with pytest.raises(ValueError, match="'-'"):
        run(alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1))), callsign="K-ABC")


@pytest.mark.parametrize(
    ("values", "must_carry"),
    [
        (("True",), True),
        (("TRUE",), True),
        ((" true ",), True),
        (("False", "True"), False),  # 3.3.1: the first one counts
        (("yes",), False),
        ((), False),
    ],
)
def test_3_4_1_7_must_carry(values: tuple[str, ...], must_carry: bool) -> None:
    params = tuple(("EAS-Must-Carry", v) for v in values)
    conv = run(alert(HMW_SENT, info(parameters=params, expires=HMW_SENT + timedelta(hours=1))))
    assert conv.must_carry is must_carry


def test_blockchannel_values_all_count_and_any_info_block_counts() -> None:
    first = info(
        parameters=(("BLOCKCHANNEL", "CMAS"), ("BLOCKCHANNEL", "nwem, eas")),
        expires=HMW_SENT + timedelta(hours=1),
    )
    second = info(
        language="es-US",
        parameters=(("BLOCKCHANNEL", "PUBLIC"),),
        expires=HMW_SENT + timedelta(hours=1),
    )
    conv = run(alert(HMW_SENT, first, second))
    assert conv.blockchannels == frozenset({"CMAS", "NWEM", "EAS", "PUBLIC"})


# ---- 3.5.1 audio ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("audio/x-ipaws-audio-mp3", AudioKind.DOWNLOAD),
        ("audio/x-ipaws-audio-wav", AudioKind.DOWNLOAD),
        ("audio/x-ipaws-streaming-audio-mp3", AudioKind.STREAMING),
        ("audio/mpeg", AudioKind.DOWNLOAD),
        ("Audio/X-WAV", AudioKind.DOWNLOAD),
        ("image/png", None),
    ],
)
def test_audio_resource_by_mime_type(mime: str, kind: AudioKind | None) -> None:
    res = CapResource(resource_desc="EAS Broadcast Content", mime_type=mime, uri="https://a/b")
    conv = run(alert(HMW_SENT, info(resources=(res,), expires=HMW_SENT + timedelta(hours=1))))
    if kind is None:
        assert conv.audio_resource is None
        assert "spoken instead" in check(conv, "audio_resource").detail
    else:
        assert conv.audio_resource is not None and conv.audio_resource.kind is kind
        assert conv.audio_resource.fetch_limit_s == (30 if kind is AudioKind.STREAMING else 120)
    assert conv.airable  # audio never decides whether a message airs


def test_audio_resource_needs_the_broadcast_content_description_and_a_uri() -> None:
    other = CapResource(resource_desc="Map", mime_type="audio/mpeg", uri="https://a/map")
    no_uri = CapResource(resource_desc="EAS Broadcast Content", mime_type="audio/mpeg")
    embedded = CapResource(
        resource_desc="eas  broadcast content", mime_type="audio/mpeg", deref_uri="SUQz"
    )
    exp = HMW_SENT + timedelta(hours=1)
    assert run(alert(HMW_SENT, info(resources=(other,), expires=exp))).audio_resource is None
    assert run(alert(HMW_SENT, info(resources=(no_uri,), expires=exp))).audio_resource is None
    found = run(alert(HMW_SENT, info(resources=(other, embedded), expires=exp))).audio_resource
    assert found is not None and found.deref_uri == "SUQz" and found.uri is None


# ---- 3.6 alert text ---------------------------------------------------------------------------

REQUIRED = "A CIVIL AUTHORITY HAS ISSUED A TEST."  # stands for any required sentence


def test_3_6_4_text_order_with_sender_description_instruction() -> None:
    text, source, cut = build_alert_text(
        REQUIRED,
        eas_text=None,
        sender_name="  County   EMA ",
        description="Gas\n\nleak.\t Stay away.",
        instruction=" Leave now. ",
    )
    assert text == f"{REQUIRED} Message from County EMA. Gas leak. Stay away. Leave now."
    assert source is TextSource.CAP_FIELDS and not cut


def test_3_6_4_no_sender_name_no_message_from() -> None:
    text, _, _ = build_alert_text(
        REQUIRED, eas_text=None, sender_name=None, description="D.", instruction=None
    )
    assert text == f"{REQUIRED} D."


def test_3_6_2_eas_text_is_used_verbatim_after_the_required_text() -> None:
    text, source, cut = build_alert_text(
        REQUIRED,
        eas_text="  Exact   words of the originator *** with a pause.",
        sender_name="ignored",
        description="ignored",
        instruction="ignored",
    )
    assert text == f"{REQUIRED} Exact words of the originator *** with a pause."
    assert source is TextSource.EAS_TEXT and not cut


def test_eas_text_first_parameter_counts_in_the_conversion() -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(
                parameters=(("EASText", "First text."), ("EASText", "Second text.")),
                expires=HMW_SENT + timedelta(hours=1),
            ),
        )
    )
    assert conv.alert_text.endswith("6:34 PM. First text.")
    assert conv.text_source is TextSource.EAS_TEXT


def test_a_long_eas_text_is_cut_at_1800_with_the_mark() -> None:
    text, _, cut = build_alert_text(
        REQUIRED, eas_text="word " * 600, sender_name=None, description=None, instruction=None
    )
    assert cut and len(text) <= MAX_ALERT_TEXT and text.endswith("***")
    assert len(text) >= MAX_ALERT_TEXT - 4  # only a trailing space may be lost before the mark


def _split(desc_len: int, instr_len: int) -> tuple[str, str, int, bool]:
    """Description and instruction as they come out of the 3.6.4 split, and the half."""
    sender = "Message from X."
    head = f"{REQUIRED} {sender}"
    text, _, cut = build_alert_text(
        REQUIRED,
        eas_text=None,
        sender_name="X",
        description="d" * desc_len,
        instruction="i" * instr_len,
    )
    assert text.startswith(head + " ")
    body = text[len(head) + 1 :]
    desc, _, instr = body.partition(" ")
    half = (MAX_ALERT_TEXT - len(head) - 2) // 2
    assert len(text) <= MAX_ALERT_TEXT
    return desc, instr, half, cut


def test_3_6_4_split_both_long_get_half_each() -> None:
    desc, instr, half, cut = _split(3000, 3000)
    assert cut
    assert len(desc) == half and desc.endswith("***")
    assert len(instr) == half and instr.endswith("***")


def test_3_6_4_split_short_description_gives_its_rest_to_the_instruction() -> None:
    desc, instr, half, cut = _split(100, 3000)
    assert desc == "d" * 100
    assert len(instr) == half + (half - 100) and instr.endswith("***") and cut


def test_3_6_4_split_short_instruction_gives_its_rest_to_the_description() -> None:
    desc, instr, half, cut = _split(3000, 100)
    assert instr == "i" * 100
    assert len(desc) == half + (half - 100) and desc.endswith("***") and cut


def test_3_6_4_split_exactly_half_is_not_short() -> None:
    # len(description) == half is not "< half": each part gets half, and nothing is cut.
    _, _, half, _ = _split(10, 10)
    desc, instr, half_again, cut = _split(half, half)
    assert half_again == half
    assert len(desc) == half and len(instr) == half and not cut


def test_stars_in_the_source_are_kept_and_are_not_a_truncation() -> None:
    text, _, cut = build_alert_text(
        REQUIRED,
        eas_text=None,
        sender_name=None,
        description="Take cover *** now.",
        instruction="***",
    )
    assert text == f"{REQUIRED} Take cover *** now. ***" and not cut


def test_conversion_reports_truncation() -> None:
    conv = run(
        alert(
            HMW_SENT,
            info(description="x" * 2000, instruction="y" * 50, expires=HMW_SENT + timedelta(1)),
        )
    )
    assert conv.text_truncated and len(conv.alert_text) <= MAX_ALERT_TEXT
    assert check(conv, "alert_text").values["truncated"] is True
    assert conv.alert_text.endswith("*** " + "y" * 50)


def test_3_6_3_required_text_for_several_areas_and_a_later_day() -> None:
    text = fcc_required_text(
        originator="WXR",
        event="EVI",
        locations=["039035", "139035", "039000"],
        issued=datetime(2024, 7, 4, 3, 30, tzinfo=UTC),
        purge_at=datetime(2024, 7, 4, 5, 0, tzinfo=UTC),
        timezone="America/New_York",
    )
    assert text == (
        "THE NATIONAL WEATHER SERVICE HAS ISSUED AN EVACUATION IMMEDIATE FOR THE FOLLOWING "
        "COUNTIES/AREAS: Cuyahoga County, OH; northwest Cuyahoga County, OH; all of Ohio; "
        "AT 11:30 PM ON JUL 3, 2024 EFFECTIVE UNTIL 1:00 AM ON JUL 4, 2024."
    )


def test_required_text_uses_the_station_time_zone() -> None:
    args: dict[str, Any] = {
        "originator": "EAS",
        "event": "RWT",
        "locations": ["011001"],
        "issued": datetime(2024, 1, 10, 12, 0, tzinfo=UTC),
        "purge_at": datetime(2024, 1, 10, 12, 15, tzinfo=UTC),
    }
    assert "AT 12:00 PM ON JAN 10, 2024 EFFECTIVE UNTIL 12:15 PM." in fcc_required_text(
        timezone="UTC", **args
    )
    assert "AT 4:00 AM ON JAN 10, 2024 EFFECTIVE UNTIL 4:15 AM." in fcc_required_text(
        timezone="America/Los_Angeles", **args
    )
    assert fcc_required_text(timezone="UTC", **args).startswith(
        "A BROADCAST STATION OR CABLE SYSTEM HAS ISSUED A REQUIRED WEEKLY TEST"
    )


# ---- 3.7 languages ----------------------------------------------------------------------------


def _bilingual() -> CapAlert:
    exp = HMW_SENT + timedelta(hours=1)
    return alert(
        HMW_SENT,
        info(language="es-US", same_event="SPW", description="Refúgiese.", expires=exp),
        info(language="en-US", same_event="HMW", description="First English.", expires=exp),
        info(language="en-US", same_event="EVI", description="Second English.", expires=exp),
    )


@pytest.mark.parametrize(
    ("language", "event", "used"),
    [
        ("en", "HMW", "en-US"),  # the first block of the language only
        ("en-US", "HMW", "en-US"),
        ("en-GB", "HMW", "en-US"),  # same primary language
        ("es", "SPW", "es-US"),
        ("fr", "SPW", "es-US"),  # not there: the first block
    ],
)
def test_3_7_the_info_block_of_the_station_language(language: str, event: str, used: str) -> None:
    conv = run(_bilingual(), language=language)
    assert conv.info is not None and conv.info.language == used
    assert conv.header is not None and conv.header.event == event
    assert check(conv, "info").values["used"] == used


def test_no_info_block_at_all() -> None:
    conv = run(alert(HMW_SENT))
    assert conv.info is None and conv.header is None and "info" in failed(conv)


def test_event_name_lookup() -> None:
    assert event_code_for_name("Tornado Warning") == "TOR"
    assert event_code_for_name("  severe   thunderstorm WARNING ") == "SVR"
    assert event_code_for_name("Snow Squall Warning") == "SQW"
    assert event_code_for_name("Tornado") is None


def test_now_must_be_aware_and_the_zone_known() -> None:
    cap = alert(HMW_SENT, info(expires=HMW_SENT + timedelta(hours=1)))
    with pytest.raises(ValueError, match="aware"):
        run(cap, now=datetime(2009, 3, 11, 23, 34))
    with pytest.raises(KeyError):
        run(cap, timezone="Mars/Olympus")
