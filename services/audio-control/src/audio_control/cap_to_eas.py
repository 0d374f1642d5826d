"""CAP-to-EAS conversion by the ECIG "Recommendations for a CAP EAS Implementation Guide" V1.0.

47 CFR 11.56 makes this guide the rule for turning a CAP message into an EAS message, and its
core goal is that every device makes the exact same EAS message from the same CAP message.
Section numbers in comments are the guide's. Where the guide and the FCC rule differ, the rule
wins and the comment says so.

Pure: no I/O and no clock; ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from eas_same import codes as same_tables
from eas_same.header import MAX_LOCATIONS, SameHeader, SameHeaderError, describe_location
from eas_schemas.cap import CapAlert, CapInfo, CapMsgType, CapScope, CapStatus
from eas_schemas.relay_events import CheckValue, RelayAction, RuleCheck
from eas_schemas.same_codes import validate_location_code
from eas_schemas.station_settings import validate_callsign

__all__ = [
    "BROADCAST_CONTENT",
    "DEFAULT_ORIGINATOR",
    "DOWNLOAD_LIMIT_S",
    "HEADER_RULES",
    "MAX_ALERT_TEXT",
    "MAX_PURGE_MINUTES",
    "STREAMING_LIMIT_S",
    "AudioKind",
    "AudioResource",
    "Conversion",
    "TextSource",
    "build_alert_text",
    "convert",
    "event_code_for_name",
    "fcc_required_text",
    "purge_code",
    "select_info",
]

MAX_ALERT_TEXT = 1800  # 3.6
TRUNCATION_MARK = "***"  # 3.6.4; 3.5.2/3.5.4: followed by a one-second pause when spoken
DEFAULT_ORIGINATOR = "CIV"  # 3.10
VALID_ORIGINATORS = ("PEP", "CIV", "WXR", "EAS")  # 3.4.1.1
BROADCAST_CONTENT = "EAS Broadcast Content"  # 3.5.1
DOWNLOAD_LIMIT_S = 120  # 3.5.1: a download not done in 2 minutes falls back to TTS
STREAMING_LIMIT_S = 30  # 3.5.1: a stream not started in 30 s falls back to TTS
# 47 CFR 11.31(c): the longest purge time TTTT can say, 99 h 30 min.
MAX_PURGE_MINUTES = 99 * 60 + 30

# 2.1.1 mimeTypes, plus the common names real originators use for the same content.
_DOWNLOAD_MIME = frozenset(
    {
        "audio/x-ipaws-audio-mp3",
        "audio/x-ipaws-audio-wav",
        "audio/mpeg",
        "audio/mp3",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
    }
)
_STREAMING_MIME = frozenset({"audio/x-ipaws-streaming-audio-mp3"})

#: Checks of a conversion that are about building the header; the relay rules carry these
#: and evaluate status, msgType, scope and expiry themselves, with the station's settings.
HEADER_RULES = frozenset({"info", "eas_org", "event_code", "geocode", "duration"})

_ORIGINATOR_TEXT = {
    # 47 CFR 11.31(d) as amended by FCC 22-75 (2022) calls the PEP originator "United States
    # Government" in the text shown to the public; the rule wins over older wording.
    "PEP": "THE UNITED STATES GOVERNMENT",
    "CIV": "A CIVIL AUTHORITY",  # the guide's own example (3.6.3)
    "WXR": "THE NATIONAL WEATHER SERVICE",
    "EAS": "A BROADCAST STATION OR CABLE SYSTEM",
}
_EVENT_TEXT = {
    # FCC 22-75 replaced the jargon of these national codes in the public text: the rule wins.
    "EAN": "NATIONAL EMERGENCY MESSAGE",
    "NPT": "NATIONWIDE TEST OF THE EMERGENCY ALERT SYSTEM",
}


class AudioKind(StrEnum):
    DOWNLOAD = "download"
    STREAMING = "streaming"


class TextSource(StrEnum):
    EAS_TEXT = "eas_text"  # 3.6.2: the originator's EASText parameter, verbatim
    CAP_FIELDS = "cap_fields"  # 3.6.4: senderName, description, instruction
    NONE = "none"  # no header could be built, so there is nothing to narrate


@dataclass(frozen=True, slots=True)
class AudioResource:
    """The ``EAS Broadcast Content`` resource (3.5.1) and how long fetching it may take."""

    mime_type: str
    kind: AudioKind
    uri: str | None
    deref_uri: str | None  # base64 content embedded in the CAP message
    size: int | None
    digest: str | None

    @property
    def fetch_limit_s(self) -> int:
        return STREAMING_LIMIT_S if self.kind is AudioKind.STREAMING else DOWNLOAD_LIMIT_S


@dataclass(frozen=True, slots=True)
class Conversion:
    """The EAS message a CAP alert makes, and every ECIG section that passed or failed."""

    info: CapInfo | None  # the info block used (3.7)
    header: SameHeader | None  # by the guide; None when the guide builds none
    # Built from an event code looked up by the CAP event name when the alert has no SAME
    # event code: only for an operator-confirmed relay (RelayRules.cap_without_event_code),
    # never for automatic relay (3.4.1.2).
    inferred_header: SameHeader | None
    originator: str | None
    sent_event_code: str | None  # the first SAME eventCode as sent, valid or not
    event_code: str | None  # the SAME eventCode as sent, when it is a valid one
    inferred_event_code: str | None
    locations: tuple[str, ...]  # the header's, at most 31, in CAP order
    dropped_locations: tuple[str, ...]  # valid codes past the 31st (3.4.1.3)
    invalid_locations: tuple[str, ...]  # geocodes that are not PSSCCC codes
    duration: str | None  # TTTT
    expires: datetime  # CAP expires, or sent + the station's default duration
    expires_defaulted: bool
    alert_text: str  # 3.6; "***" marks a truncation (a one-second pause when spoken)
    text_source: TextSource
    text_truncated: bool
    audio_resource: AudioResource | None
    must_carry: bool  # 3.4.1.7
    blockchannels: frozenset[str]  # IPAWS BLOCKCHANNEL values, e.g. EAS, NWEM, CMAS
    checks: tuple[RuleCheck, ...]

    @property
    def airable(self) -> bool:
        """The guide lets this message air as it is (the station's rules still decide)."""
        return self.header is not None and all(c.passed for c in self.checks)

    @property
    def header_checks(self) -> tuple[RuleCheck, ...]:
        return tuple(c for c in self.checks if c.rule in HEADER_RULES)


# ---- pieces ----------------------------------------------------------------------------------


def _check(
    rule: str,
    passed: bool,
    detail: str,
    reference: str,
    **values: CheckValue,
) -> RuleCheck:
    return RuleCheck(
        rule=rule,
        passed=passed,
        consequence=None if passed else RelayAction.IGNORE,
        detail=detail,
        values=dict(values),
        reference=reference,
    )


def _normalise(text: str | None) -> str:
    # 3.6.1: every string stripped, every run of whitespace one space.
    return " ".join(text.split()) if text else ""


def _language_matches(info_language: str, wanted: str) -> bool:
    have, want = info_language.strip().lower(), wanted.strip().lower()
    return have == want or have.startswith(want + "-")


def select_info(alert: CapAlert, language: str) -> tuple[CapInfo | None, RuleCheck]:
    """3.7: the first info block in the station's language, else the first block.

    ``en`` matches ``en`` and ``en-US``; a setting with a region (``en-US``) matches that tag,
    then any block of the same primary language, before falling back to the first block.
    """
    if not alert.infos:
        return None, _check(
            "info", False, "The alert has no info block, so no EAS message.", "ECIG 3.7"
        )
    languages: list[str] = [i.language for i in alert.infos]
    for wanted in dict.fromkeys((language, language.split("-")[0])):
        for info in alert.infos:
            if _language_matches(info.language, wanted):
                return info, _check(
                    "info",
                    True,
                    f"Used the first info block in {info.language} (station language {language}).",
                    "ECIG 3.7",
                    language=language,
                    used=info.language,
                    available=languages,
                )
    first = alert.infos[0]
    return first, _check(
        "info",
        True,
        f"No info block in {language}; used the first block ({first.language}).",
        "ECIG 3.7",
        language=language,
        used=first.language,
        available=languages,
    )


def _parameters(info: CapInfo, name: str) -> list[str]:
    wanted = name.lower()
    return [p.value for p in info.parameters if p.value_name.strip().lower() == wanted]


def _first_parameter(info: CapInfo, name: str) -> str | None:
    # 3.3.1: a repeated parameter that is not a list counts once: the first one.
    values = _parameters(info, name)
    return values[0] if values else None


def _blockchannels(infos: Iterable[CapInfo]) -> frozenset[str]:
    # The IPAWS profile repeats BLOCKCHANNEL once per channel, so unlike the parameters of
    # 3.3.1 every occurrence counts. Any info block that blocks a channel blocks the alert:
    # the originator said the message is not for that channel.
    out: set[str] = set()
    for info in infos:
        for value in _parameters(info, "BLOCKCHANNEL"):
            out.update(v.upper() for v in value.replace(",", " ").split())
    return frozenset(out)


def purge_code(duration: timedelta) -> str | None:
    """TTTT for a valid time, rounded UP to a legal step; None when it is zero or less.

    47 CFR 11.31(c): 15-minute steps up to one hour (0015, 0030, 0045, 0100), 30-minute steps
    beyond, at most 9930. The guide's table reads "<= 45 min / > 1 h"; under the FCC rule
    46 to 60 minutes is 0100, and that is what this gives. A valid time beyond 99 h 30 min is
    9930, the longest the header can say.
    """
    microseconds = duration // timedelta(microseconds=1)
    if microseconds <= 0:
        return None
    minutes = -(-microseconds // 60_000_000)
    step = 15 if minutes <= 60 else 30
    minutes = min(-(-minutes // step) * step, MAX_PURGE_MINUTES)
    return f"{minutes // 60:02d}{minutes % 60:02d}"


def event_code_for_name(event: str) -> str | None:
    """The SAME code whose table name is this CAP event name (case and spacing ignored)."""
    wanted = _normalise(event).casefold()
    for code, name in same_tables.EVENTS.items():
        if name.casefold() == wanted:
            return code
    return None


def _clock(t: datetime) -> str:
    return f"{t.hour % 12 or 12}:{t.minute:02d} {'AM' if t.hour < 12 else 'PM'}"


def _day(t: datetime) -> str:
    return f"{t.strftime('%b').upper()} {t.day}, {t.year}"


def fcc_required_text(
    *,
    originator: str,
    event: str,
    locations: Sequence[str],
    issued: datetime,
    purge_at: datetime,
    timezone: str,
) -> str:
    """The 47 CFR 11.51(d) sentence, built from the header as 3.6.3 shows, in local time.

    The guide's example: "A CIVIL AUTHORITY HAS ISSUED A HAZARDOUS MATERIALS WARNING FOR THE
    FOLLOWING COUNTIES/AREAS: District of Columbia, DC; AT 5:34 PM ON MAR 11, 2009 EFFECTIVE
    UNTIL 6:34 PM." The example ends on the day it starts; when the valid time ends on another
    local day its date is given too, or the sentence would say the wrong day.
    """
    zone = ZoneInfo(timezone)
    start, end = issued.astimezone(zone), purge_at.astimezone(zone)
    who = _ORIGINATOR_TEXT.get(originator, same_tables.ORIGINATORS.get(originator, originator))
    what = _EVENT_TEXT.get(event, same_tables.event_name(event).upper())
    article = "AN" if what[:1] in "AEIOU" else "A"
    areas = "".join(f"{describe_location(code)}; " for code in locations)
    until = _clock(end) if end.date() == start.date() else f"{_clock(end)} ON {_day(end)}"
    return (
        f"{who.upper()} HAS ISSUED {article} {what} FOR THE FOLLOWING COUNTIES/AREAS: "
        f"{areas}AT {_clock(start)} ON {_day(start)} EFFECTIVE UNTIL {until}."
    )


def _fit(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    if limit < len(TRUNCATION_MARK):
        return "", True
    return text[: limit - len(TRUNCATION_MARK)].rstrip() + TRUNCATION_MARK, True


def build_alert_text(
    required: str,
    *,
    eas_text: str | None,
    sender_name: str | None,
    description: str | None,
    instruction: str | None,
) -> tuple[str, TextSource, bool]:
    """3.6: the alert text (at most 1800 characters), its source and whether it was cut.

    Parts are joined by one space, and the spaces count against the 1800 characters, as does
    each "***" that marks a cut, so the result never exceeds the limit. With EASText the
    originator's text follows the required text verbatim (3.6.2), cut only at the limit.
    Otherwise (3.6.4) "Message from <senderName>." follows, and the space left is split
    between description and instruction by the guide's rule: each gets half, and a part
    shorter than its half gives the rest to the other. headline and areaDesc are not used.
    "***" already in the source text is kept as sent: it is the originator's text.
    """
    required = _normalise(required)
    body = _normalise(eas_text)
    if body:
        room = MAX_ALERT_TEXT - len(required) - 1
        fitted, cut = _fit(body, room)
        return (f"{required} {fitted}" if fitted else required), TextSource.EAS_TEXT, cut
    name = _normalise(sender_name)
    sender = f"Message from {name}." if name else ""
    desc, instr = _normalise(description), _normalise(instruction)
    head = " ".join(p for p in (required, sender) if p)
    separators = (1 if desc else 0) + (1 if instr else 0)
    half = (MAX_ALERT_TEXT - len(head) - separators) // 2
    if len(desc) < half:
        max_desc = len(desc)
        max_instr = half + (half - max_desc)
    elif len(instr) < half:
        max_instr = len(instr)
        max_desc = half + (half - max_instr)
    else:
        max_desc = max_instr = half
    desc, desc_cut = _fit(desc, max_desc)
    instr, instr_cut = _fit(instr, max_instr)
    text = " ".join(p for p in (head, desc, instr) if p)
    return text, TextSource.CAP_FIELDS, desc_cut or instr_cut


def _audio_resource(info: CapInfo) -> tuple[AudioResource | None, RuleCheck]:
    for resource in info.resources:
        if _normalise(resource.resource_desc).casefold() != BROADCAST_CONTENT.casefold():
            continue
        mime = resource.mime_type.strip().lower()
        kind = (
            AudioKind.STREAMING
            if mime in _STREAMING_MIME
            else AudioKind.DOWNLOAD
            if mime in _DOWNLOAD_MIME
            else None
        )
        if kind is None:
            return None, _check(
                "audio_resource",
                True,
                f"The EAS Broadcast Content resource has mimeType {resource.mime_type!r}, "
                "not an audio type of the guide; the text is spoken instead.",
                "ECIG 2.1.1, 3.5.1",
                mime_type=resource.mime_type,
            )
        if not resource.uri and not resource.deref_uri:
            # 6.7 calls a resource without uri a missing required element. Dropping the
            # whole alert for it would lose a warning over its audio; the text is spoken.
            return None, _check(
                "audio_resource",
                True,
                "The EAS Broadcast Content resource has no uri; the text is spoken instead.",
                "ECIG 3.5.1, 6.7",
                mime_type=mime,
            )
        found = AudioResource(
            mime_type=mime,
            kind=kind,
            uri=resource.uri,
            deref_uri=resource.deref_uri,
            size=resource.size,
            digest=resource.digest,
        )
        return found, _check(
            "audio_resource",
            True,
            f"The message uses the originator's audio ({kind.value}, {mime}), fetched within "
            f"{found.fetch_limit_s} s, else the text is spoken.",
            "ECIG 3.5.1",
            mime_type=mime,
            kind=kind.value,
            uri=resource.uri,
        )
    return None, _check(
        "audio_resource",
        True,
        "No EAS Broadcast Content resource: the alert text is spoken (TTS).",
        "ECIG 3.5.1",
    )


def _locations(info: CapInfo) -> tuple[list[str], list[str]]:
    valid: list[str] = []
    invalid: list[str] = []
    for area in info.areas:
        # 3.10: a FIPS6 geocode counts as SAME. Order of appearance is kept (3.4.1.3).
        for raw in area.geocode_values("SAME", "FIPS6"):
            code = raw.zfill(6) if len(raw) == 5 and raw.isdigit() else raw
            try:
                validate_location_code(code)
            except ValueError:
                invalid.append(raw)
                continue
            if code not in valid:
                valid.append(code)
    return valid, invalid


def _status_check(alert: CapAlert) -> RuleCheck:
    ok = alert.status is CapStatus.ACTUAL
    detail = (
        "Status is Actual."
        if ok
        else f"Status is {alert.status.value}: only Actual messages air (tests too must be Actual)."
    )
    return _check("cap_status", ok, detail, "ECIG 3.9", status=alert.status.value)


def _msg_type_check(alert: CapAlert) -> RuleCheck:
    kind = alert.msg_type
    if kind in (CapMsgType.ALERT, CapMsgType.UPDATE):
        detail = f"msgType {kind.value} airs."
    elif kind is CapMsgType.CANCEL:
        detail = "A Cancel never airs: it withdraws the alert it references."
    else:
        detail = f"msgType {kind.value} is not processed."
    ok = kind in (CapMsgType.ALERT, CapMsgType.UPDATE)
    return _check("msg_type", ok, detail, "ECIG 3.8", msg_type=kind.value)


def _scope_check(alert: CapAlert) -> RuleCheck:
    ok = alert.scope is CapScope.PUBLIC
    detail = "Scope is Public." if ok else f"Scope is {alert.scope.value}: only Public airs."
    return _check("scope", ok, detail, "ECIG 4", scope=alert.scope.value)


# ---- the conversion --------------------------------------------------------------------------


def convert(
    alert: CapAlert,
    *,
    callsign: str,
    language: str,
    timezone: str,
    default_duration_minutes: int,
    now: datetime,
) -> Conversion:
    """The EAS message the guide makes from ``alert`` for a station with this callsign."""
    own_callsign = validate_callsign(callsign)
    ZoneInfo(timezone)  # an unknown zone is the caller's error, raised here, not per alert
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    checks: list[RuleCheck] = [_status_check(alert), _msg_type_check(alert), _scope_check(alert)]
    info, info_check = select_info(alert, language)
    checks.append(info_check)
    blockchannels = _blockchannels(alert.infos)
    # No expires: the station's default duration counts from when the alert takes effect, so
    # one sent ahead of its effective time is not expired before it may air.
    starts = max(alert.sent, info.effective) if info and info.effective else alert.sent
    default_expires = starts + timedelta(minutes=default_duration_minutes)
    if info is None:
        return Conversion(
            info=None,
            header=None,
            inferred_header=None,
            originator=None,
            sent_event_code=None,
            event_code=None,
            inferred_event_code=None,
            locations=(),
            dropped_locations=(),
            invalid_locations=(),
            duration=None,
            expires=default_expires,
            expires_defaulted=True,
            alert_text="",
            text_source=TextSource.NONE,
            text_truncated=False,
            audio_resource=None,
            must_carry=False,
            blockchannels=blockchannels,
            checks=tuple(checks),
        )

    # ORG (3.4.1.1, 3.10).
    org_value = _first_parameter(info, "EAS-ORG")
    originator: str | None
    if org_value is None or not org_value.strip():
        originator = DEFAULT_ORIGINATOR
        checks.append(
            _check(
                "eas_org",
                True,
                "No EAS-ORG parameter: the originator is CIV, the guide's default.",
                "ECIG 3.10",
                originator=originator,
                defaulted=True,
            )
        )
    elif org_value.strip() in VALID_ORIGINATORS:
        originator = org_value.strip()
        checks.append(
            _check(
                "eas_org",
                True,
                f"Originator {originator} from the EAS-ORG parameter.",
                "ECIG 3.4.1.1",
                originator=originator,
                defaulted=False,
            )
        )
    else:
        originator = None
        checks.append(
            _check(
                "eas_org",
                False,
                f"EAS-ORG {org_value.strip()!r} is not one of PEP, CIV, WXR, EAS.",
                "ECIG 3.4.1.1",
                originator=org_value.strip(),
            )
        )

    # EEE (3.4.1.2): the first SAME eventCode, case sensitive.
    # An empty value says nothing; the first code that says something counts.
    sent_codes = [
        c.value.strip()
        for c in info.event_codes
        if c.value_name.strip().upper() == "SAME" and c.value.strip()
    ]
    sent_code = sent_codes[0] if sent_codes else None
    event_code: str | None = None
    inferred_code: str | None = None
    if sent_code is None:
        inferred_code = event_code_for_name(info.event)
        looked_up = (
            f"; its event name {info.event!r} is {inferred_code} in the SAME table"
            if inferred_code
            else f"; its event name {info.event!r} is not in the SAME table"
        )
        checks.append(
            _check(
                "event_code",
                False,
                f"No SAME event code: a CAP message without one is not aired{looked_up}.",
                "ECIG 3.4.1.2",
                event=info.event,
                inferred=inferred_code,
            )
        )
    elif sent_code not in same_tables.EVENTS:
        hint = (
            " (event codes are case sensitive: uppercase)"
            if sent_code.upper() in same_tables.EVENTS
            else ""
        )
        checks.append(
            _check(
                "event_code",
                False,
                f"SAME event code {sent_code!r} is not a SAME event code{hint}.",
                "ECIG 3.4.1.2",
                event_code=sent_code,
            )
        )
    else:
        event_code = sent_code
        checks.append(
            _check(
                "event_code",
                True,
                f"Event {event_code} ({same_tables.event_name(event_code)}).",
                "ECIG 3.4.1.2",
                event_code=event_code,
            )
        )

    # PSSCCC (3.4.1.3): the first 31 in order.
    valid, invalid = _locations(info)
    locations, dropped = tuple(valid[:MAX_LOCATIONS]), tuple(valid[MAX_LOCATIONS:])
    if locations:
        notes = ""
        if dropped:
            notes += f" {len(dropped)} past the 31st are left out of the header."
        if invalid:
            notes += f" Not location codes, left out: {', '.join(invalid)}."
        checks.append(
            _check(
                "geocode",
                True,
                f"{len(locations)} SAME location codes.{notes}",
                "ECIG 3.4.1.3",
                locations=list(locations),
                dropped=list(dropped),
                invalid=invalid,
            )
        )
    else:
        checks.append(
            _check(
                "geocode",
                False,
                "No valid SAME or FIPS6 geocode: a header needs at least one location.",
                "ECIG 3.4.1.3",
                invalid=invalid,
            )
        )

    # TTTT (3.4.1.4): expires - sent, rounded up.
    expires_defaulted = info.expires is None
    expires = default_expires if info.expires is None else info.expires
    valid_for = expires - alert.sent
    duration = purge_code(valid_for)
    minutes = valid_for // timedelta(minutes=1)
    if duration is None:
        checks.append(
            _check(
                "duration",
                False,
                "expires is not after sent: the message is expired and is ignored.",
                "ECIG 3.4.1.4",
                sent=alert.sent.isoformat(),
                expires=expires.isoformat(),
            )
        )
    else:
        how = (
            f"no expires, so the station's default of {default_duration_minutes} min"
            + (f" from effective {starts:%H:%M} UTC" if starts != alert.sent else "")
            if expires_defaulted
            else f"valid {_span(valid_for)}"
        )
        clamped = valid_for > timedelta(minutes=MAX_PURGE_MINUTES)
        clamp = " (the longest a header can say)" if clamped else ""
        checks.append(
            _check(
                "duration",
                True,
                f"Purge time +{duration}: {how}, rounded up to a legal step{clamp}.",
                "ECIG 3.4.1.4, 47 CFR 11.31(c)",
                duration=duration,
                minutes=minutes,
                defaulted=expires_defaulted,
            )
        )
    expired = expires <= now
    checks.append(
        _check(
            "expired",
            not expired,
            f"{'Expired at' if expired else 'Valid until'} {expires.isoformat()}.",
            "ECIG 3.4.1.4",
            expires=expires.isoformat(),
            now=now.isoformat(),
        )
    )

    # The header (3.4.1), and the one for an operator-confirmed relay without a SAME code.
    def build(code: str | None) -> SameHeader | None:
        if code is None or originator is None or not locations or duration is None:
            return None
        try:
            return SameHeader.create(
                originator=originator,
                event=code,
                locations=locations,
                duration=duration,
                issued=alert.sent,  # 3.4.1.5: JJJHHMM from sent, in UTC
                callsign=own_callsign,
            )
        except SameHeaderError as exc:  # pragma: no cover - every field was checked above
            raise AssertionError(f"checked fields made an invalid header: {exc}") from exc

    header = build(event_code)
    inferred_header = build(inferred_code) if header is None else None

    # Alert text (3.6), from whichever header exists.
    text_header = header or inferred_header
    if text_header is None:
        alert_text, text_source, truncated = "", TextSource.NONE, False
    else:
        issued = alert.sent.replace(second=0, microsecond=0)
        required = fcc_required_text(
            originator=text_header.originator,
            event=text_header.event,
            locations=text_header.locations,
            issued=issued,
            purge_at=issued + text_header.purge_duration,
            timezone=timezone,
        )
        alert_text, text_source, truncated = build_alert_text(
            required,
            eas_text=_first_parameter(info, "EASText"),
            sender_name=info.sender_name,
            description=info.description,
            instruction=info.instruction,
        )
        origin = "EASText" if text_source is TextSource.EAS_TEXT else "description and instruction"
        checks.append(
            _check(
                "alert_text",
                True,
                f"Alert text of {len(alert_text)} characters from {origin}"
                f"{', cut to 1800 (*** marks the cut)' if truncated else ''}.",
                "ECIG 3.6",
                length=len(alert_text),
                source=text_source.value,
                truncated=truncated,
            )
        )

    audio, audio_check = _audio_resource(info)
    checks.append(audio_check)
    must_carry_value = _first_parameter(info, "EAS-Must-Carry")
    return Conversion(
        info=info,
        header=header,
        inferred_header=inferred_header,
        originator=originator,
        sent_event_code=sent_code,
        event_code=event_code,
        inferred_event_code=inferred_code,
        locations=locations,
        dropped_locations=dropped,
        invalid_locations=tuple(invalid),
        duration=duration,
        expires=expires,
        expires_defaulted=expires_defaulted,
        alert_text=alert_text,
        text_source=text_source,
        text_truncated=truncated,
        audio_resource=audio,
        must_carry=must_carry_value is not None and must_carry_value.strip().lower() == "true",
        blockchannels=blockchannels,
        checks=tuple(checks),
    )


def _span(delta: timedelta) -> str:
    minutes = -(-(delta // timedelta(seconds=1)) // 60)
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours else f"{rest} min"
