"""The station's settings document and the ``settings.changed`` event (owned by station-api).

The document is validated as a whole: a change that breaks any rule is refused with every bad
field named, never half-applied. Secrets (feed credentials, keys) are ``SecretStr`` fields:
they are stored, but every view of the document shows ``<name>_set: true|false`` in their
place (``redacted``). On input a secret that is omitted or ``null`` keeps the stored value,
``""`` clears it (``carry_secrets``), and ``<name>_set`` markers are ignored, so a client may
send back exactly what it read.

This module is pure (no I/O); it uses only `eas_schemas.same_codes` for code validation.
"""

from __future__ import annotations

import re
import types
import typing
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    field_validator,
    model_validator,
)

from eas_schemas.cap import CapMsgType, CapScope, CapSeverity, CapUrgency
from eas_schemas.same_codes import (
    STATE_ABBREVIATIONS,
    SameEventCode,
    SameLocationCode,
    UgcCode,
)

SETTINGS_CHANGED_TYPE = "settings.changed"
EXPORT_FORMAT = "eas-station-settings"
SECTIONS = (
    "identity",
    "location",
    "feeds",
    "relay",
    "monitor",
    "messages",
    "tests",
    "retention",
)

# Redis key (under the bus namespace, like stream keys) holding the current secret-free
# settings document as JSON {"version": n, "settings": {...}}; services read it at start and on
# every settings.changed instead of calling station-api.
CURRENT_SETTINGS_KEY = "settings.current"


def _reveal(value: SecretStr | None, info: SerializationInfo) -> str | None:
    if value is None:
        return None
    context = info.context if isinstance(info.context, dict) else {}
    return value.get_secret_value() if context.get("reveal_secrets") else "**********"


# Serialized masked unless the dump is given context={"reveal_secrets": True} (storage only).
Secret = Annotated[SecretStr | None, PlainSerializer(_reveal, when_used="always")]


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return SecretStr in typing.get_args(annotation)
    return False


class SettingsModel(BaseModel):
    """Base of every section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return tuple(n for n, f in cls.model_fields.items() if _is_secret_annotation(f.annotation))

    @model_validator(mode="before")
    @classmethod
    def _drop_set_markers(cls, data: Any) -> Any:
        # "<secret>_set" is what a read returns; accept it back and ignore it.
        if isinstance(data, dict):
            markers = {f"{name}_set" for name in cls.secret_fields()}
            if markers & data.keys():
                return {k: v for k, v in data.items() if k not in markers}
        return data


# ---- field types ---------------------------------------------------------------------------


def validate_callsign(value: str) -> str:
    """The LLLLLLLL field of a SAME header: exactly 8 printable ASCII characters, no '-'."""
    if len(value) > 8:
        raise ValueError(f"callsign must be at most 8 characters, got {len(value)}")
    if any(not (" " <= ch <= "~") for ch in value):
        raise ValueError("callsign must be printable ASCII")
    if "-" in value:
        raise ValueError("callsign must not contain '-', the SAME field separator")
    if not value.strip():
        raise ValueError("callsign must not be blank")
    return value.ljust(8)


def validate_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


# NWS API `area=` accepts state/territory abbreviations and these marine areas.
NWS_MARINE_AREAS = frozenset(
    {"AM", "AN", "GM", "LC", "LE", "LH", "LM", "LO", "LS", "PH", "PK", "PM", "PS", "PZ", "SL"}
)


def validate_nws_area(value: str) -> str:
    upper = value.strip().upper()
    if upper not in STATE_ABBREVIATIONS and upper not in NWS_MARINE_AREAS:
        raise ValueError(f"unknown NWS area {value!r}: use a state abbreviation such as OH")
    return upper


_EMAIL_RE = re.compile(r"^[^@\s<>()]+@[^@\s<>()]+\.[A-Za-z]{2,}$")
_URL_RE = re.compile(r"^https?://[^\s<>()]+$")


def validate_contact(value: str) -> str:
    # It goes into the User-Agent header: CR/LF or other controls would inject headers.
    value = value.strip()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("contact must not contain control characters")
    if value and not (_EMAIL_RE.match(value) or _URL_RE.match(value)):
        raise ValueError("contact must be an e-mail address or an http(s) URL")
    return value


def validate_plain_text(value: str) -> str:
    # Shown on the dashboard and in logs; control characters have no place in a name.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


def validate_folder(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise ValueError("CAP folder must be an absolute path")
    return value


Callsign = Annotated[str, AfterValidator(validate_callsign)]
PlainText = Annotated[str, AfterValidator(validate_plain_text)]
TimeZoneName = Annotated[str, AfterValidator(validate_timezone)]
NwsArea = Annotated[str, AfterValidator(validate_nws_area)]
Contact = Annotated[str, Field(max_length=200), AfterValidator(validate_contact)]
CapFolder = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(validate_folder)]


class Originator(StrEnum):
    EAS = "EAS"
    CIV = "CIV"
    WXR = "WXR"
    PEP = "PEP"


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# ---- sections ------------------------------------------------------------------------------


class StationIdentity(SettingsModel):
    name: PlainText = Field(default="EAS Station", min_length=1, max_length=100)
    callsign: Callsign = Field(
        default="NOCALL  ",
        description="SAME LLLLLLLL field: up to 8 printable characters, padded with spaces",
    )
    originator: Originator = Field(default=Originator.EAS, description="SAME ORG code")
    timezone: TimeZoneName = Field(
        default="UTC", description="IANA time zone, e.g. America/Chicago"
    )


class LocationSettings(SettingsModel):
    same_codes: list[SameLocationCode] = Field(
        default_factory=list,
        max_length=31,
        description="SAME/FIPS PSSCCC codes served (0SS000 = statewide, 000000 = national)",
    )
    ugc_codes: list[UgcCode] = Field(
        default_factory=list, max_length=200, description="NWS UGC zones/counties, e.g. OHZ014"
    )

    @field_validator("same_codes", "ugc_codes")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return _unique(values)


class NwsFeedSettings(SettingsModel):
    enabled: bool = False
    zones: list[UgcCode] = Field(default_factory=list, max_length=200)
    areas: list[NwsArea] = Field(default_factory=list, max_length=60)
    contact: Contact = Field(
        default="", description="e-mail or URL sent in the User-Agent, as the NWS API asks"
    )
    poll_interval_s: int = Field(default=60, ge=30, le=3600)

    @model_validator(mode="after")
    def _contact_when_enabled(self) -> NwsFeedSettings:
        if self.enabled and not self.contact:
            raise ValueError("contact is required when the NWS feed is enabled")
        return self


class IpawsFeedSettings(SettingsModel):
    enabled: bool = False
    url: HttpUrl | None = Field(default=None, description="IPAWS-OPEN CAP feed base URL")
    interval_s: int = Field(default=60, ge=15, le=3600)
    pin: Secret = Field(default=None, description="feed PIN (write-only)")
    client_key_pem: Secret = Field(
        default=None, description="client/signing private key, PEM (write-only)"
    )

    @model_validator(mode="after")
    def _url_when_enabled(self) -> IpawsFeedSettings:
        if self.enabled and self.url is None:
            raise ValueError("url is required when the IPAWS feed is enabled")
        return self


class FeedSettings(SettingsModel):
    nws: NwsFeedSettings = Field(default_factory=NwsFeedSettings)
    ipaws: IpawsFeedSettings = Field(default_factory=IpawsFeedSettings)
    cap_folders: list[CapFolder] = Field(default_factory=list, max_length=20)


class ConfirmationTimeoutAction(StrEnum):
    """What a pending confirmation becomes when no operator acts before its timeout."""

    IGNORE = "ignore"  # expired: recorded, not aired (an operator may still forward it)
    RELAY = "relay"  # a "timed relay", as ENDECs offer


# CAP 1.2 orders these values; a threshold means "this value or a more serious one".
SEVERITY_ORDER: tuple[CapSeverity, ...] = (
    CapSeverity.MINOR,
    CapSeverity.MODERATE,
    CapSeverity.SEVERE,
    CapSeverity.EXTREME,
)
URGENCY_ORDER: tuple[CapUrgency, ...] = (
    CapUrgency.PAST,
    CapUrgency.FUTURE,
    CapUrgency.EXPECTED,
    CapUrgency.IMMEDIATE,
)

#: CAP msgTypes that can air (ECIG 3.8). A Cancel withdraws the alert it references and never
#: airs itself; Ack and Error are not processed.
RELAYABLE_MSG_TYPES = (CapMsgType.ALERT, CapMsgType.UPDATE)

#: Event codes relayed whenever relay is enabled, whatever ``events`` and ``originators`` say:
#: 47 CFR 11.54 makes carrying an EAN mandatory, and 11.61(a)(3) the national test (NPT, for
#: the national location code 000000).
MANDATORY_EVENTS = ("EAN", "NPT")

_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def validate_language(value: str) -> str:
    if not _LANGUAGE_RE.match(value):
        raise ValueError(f"language must be an RFC 5646 tag such as en or es-US, got {value!r}")
    return value


LanguageTag = Annotated[str, Field(max_length=35), AfterValidator(validate_language)]


class CapWithoutEventCode(SettingsModel):
    """CAP alerts that carry no SAME event code (``eventCode valueName="SAME"``).

    ECIG 3.4.1.2 says such a message SHALL NOT be aired. This is an operator-confirmed
    exception: when enabled, an alert at least as severe and urgent as the thresholds gets
    its event code from its CAP ``event`` name looked up in the SAME event table (no match:
    ignored) and then waits for an operator's confirmation. It is never relayed
    automatically, and a confirmation that times out always ends as ignored.
    """

    enabled: bool = Field(
        default=False,
        description="offer CAP alerts without a SAME event code for operator confirmation "
        "(ECIG 3.4.1.2 forbids airing them automatically)",
    )
    min_severity: CapSeverity = Field(
        default=CapSeverity.SEVERE,
        description="lowest CAP severity offered (Minor < Moderate < Severe < Extreme)",
    )
    min_urgency: CapUrgency = Field(
        default=CapUrgency.IMMEDIATE,
        description="lowest CAP urgency offered (Past < Future < Expected < Immediate)",
    )

    @field_validator("min_severity")
    @classmethod
    def _ordered_severity(cls, value: CapSeverity) -> CapSeverity:
        if value not in SEVERITY_ORDER:
            raise ValueError("min_severity must be Minor, Moderate, Severe or Extreme")
        return value

    @field_validator("min_urgency")
    @classmethod
    def _ordered_urgency(cls, value: CapUrgency) -> CapUrgency:
        if value not in URGENCY_ORDER:
            raise ValueError("min_urgency must be Past, Future, Expected or Immediate")
        return value


class RelayRules(SettingsModel):
    """Which alerts the station relays, and how. A fresh station relays nothing: relay is off,
    no event is listed, and with no location configured nothing matches."""

    enabled: bool = Field(
        default=False, description="relay at all; EAN and the national NPT need only this"
    )
    events: list[SameEventCode] = Field(
        default_factory=list,
        description="SAME event codes that are relayed (EAN, and NPT for 000000, always are: "
        "47 CFR 11.54 and 11.61)",
    )
    originators: list[Originator] = Field(
        default_factory=lambda: [Originator.PEP, Originator.CIV, Originator.WXR],
        description="originators whose messages are relayed",
    )
    locations: list[SameLocationCode] = Field(
        default_factory=list,
        description="location codes relayed; empty = the station's codes (location.same_codes)",
    )
    require_confirmation: list[SameEventCode] = Field(
        default_factory=list, description="relayed events that wait for an operator's confirmation"
    )
    confirmation_timeout_s: int = Field(
        default=900, ge=30, le=86_400, description="how long a confirmation waits"
    )
    confirmation_timeout_action: ConfirmationTimeoutAction = Field(
        default=ConfirmationTimeoutAction.IGNORE,
        description="what a confirmation that times out becomes: ignore (expired) or relay "
        "(a timed relay). Never relay for an on-air header with low agreement or a deviation, "
        "nor for a CAP alert without a SAME event code: those always expire as ignored",
    )
    delay_s: int = Field(
        default=0,
        ge=0,
        le=600,
        description="seconds between the decision and the relay (not applied to an EAN, "
        "which airs at once: 47 CFR 11.54)",
    )
    msg_types: list[CapMsgType] = Field(
        default_factory=lambda: list(RELAYABLE_MSG_TYPES),
        description="CAP msgTypes relayed: Alert and/or Update. A Cancel never airs: it "
        "withdraws the alert it references (ECIG 3.8)",
    )
    scopes: list[CapScope] = Field(
        default_factory=lambda: [CapScope.PUBLIC],
        description="CAP scopes relayed. ECIG section 4: only Public airs; Restricted is for "
        "closed systems. Private (addressed to named recipients) is never broadcast",
    )
    allow_test_status: bool = Field(
        default=False,
        description="relay CAP alerts with status Test: for lab stations only. ECIG 3.9 "
        "forbids airing Test, Exercise, System and Draft messages; the last three never air",
    )
    hold_until_onset: bool = Field(
        default=False,
        description="hold a CAP alert until its onset (the expected start of the hazard), not "
        "only until its effective time. Off by default: a warning is in effect when it is "
        "issued, and holding it to the onset takes away the public's lead time",
    )
    language: LanguageTag = Field(
        default="en",
        description="primary language: the CAP info block used (ECIG 3.7); the first block "
        "when no block is in this language",
    )
    default_duration_minutes: int = Field(
        default=60,
        ge=1,
        le=5970,
        description="valid time of a CAP alert whose info has no expires (the guide gives "
        "none); rounded up to a legal purge step",
    )
    cap_without_event_code: CapWithoutEventCode = Field(
        default_factory=CapWithoutEventCode,
        description="CAP alerts without a SAME event code: offered for confirmation only, "
        "by severity and urgency (an operator-confirmed exception to ECIG 3.4.1.2)",
    )
    air_min_confidence: float = Field(
        default=0.9,
        ge=0.5,
        le=1.0,
        description="a header heard on air below this decoder confidence waits for an "
        "operator's confirmation",
    )
    dedup_window_s: int = Field(
        default=900,
        ge=60,
        le=3600,
        description="the same transmission received as CAP and on air (same event, same "
        "locations, issue times within this window) is one decision",
    )
    max_age_s: int = Field(
        default=600,
        ge=30,
        le=86_400,
        description="an alert or header received longer ago than this when it is decided "
        "(audio-control was down, or catches up on history at first start) is not relayed "
        "automatically; an operator may forward it",
    )

    @field_validator("events", "originators", "locations", "require_confirmation", "scopes")
    @classmethod
    def _dedupe(cls, values: list[Any]) -> list[Any]:
        return _unique(values)

    @field_validator("msg_types")
    @classmethod
    def _relayable_msg_types(cls, values: list[CapMsgType]) -> list[CapMsgType]:
        for value in values:
            if value is CapMsgType.CANCEL:
                raise ValueError(
                    "Cancel cannot be relayed: a Cancel withdraws the alert it references and "
                    "never airs itself (ECIG 3.8)"
                )
            if value not in RELAYABLE_MSG_TYPES:
                raise ValueError(f"{value.value} messages are not processed (ECIG 3.8)")
        return _unique(values)

    @field_validator("scopes")
    @classmethod
    def _broadcast_scopes(cls, values: list[CapScope]) -> list[CapScope]:
        if CapScope.PRIVATE in values:
            raise ValueError("Private alerts are addressed to named recipients, never broadcast")
        return values

    @model_validator(mode="after")
    def _confirmed_are_relayed(self) -> RelayRules:
        if "EAN" in self.require_confirmation:
            raise ValueError(
                "EAN cannot wait for confirmation: it must be relayed at once (47 CFR 11.54)"
            )
        extra = [
            e
            for e in self.require_confirmation
            if e not in self.events and e not in MANDATORY_EVENTS
        ]
        if extra:
            raise ValueError(f"require_confirmation lists events that are not relayed: {extra}")
        return self


class MonitorDefaults(SettingsModel):
    sample_rate_hz: int = Field(default=22_050, ge=8_000, le=192_000)
    silence_threshold_dbfs: float = Field(default=-50.0, ge=-120.0, le=0.0)
    silence_alarm_s: int = Field(default=30, ge=1, le=3600)
    clip_threshold_dbfs: float = Field(default=-0.5, ge=-20.0, le=0.0)
    decoder_enabled: bool = True
    attention_tone_detection: bool = True


# Rates the SAME encoder is proven at (eas_same.encoder.COMMON_RATES; schemas stay free of it).
MESSAGE_SAMPLE_RATES = (8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
# espeak-ng / flite voice names: letters, digits and + - _ . / only, and never a leading '-'
# (the voice goes on the engine's command line, where '-x' would be read as an option).
_VOICE_RE = re.compile(r"^[A-Za-z0-9_+.][A-Za-z0-9_+./-]{0,63}$")
_ENGINE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def validate_voice(value: str) -> str:
    if not _VOICE_RE.match(value):
        raise ValueError(
            "voice must be 1-64 characters of letters, digits and + - _ . / "
            "and must not start with '-'"
        )
    return value


def validate_engine(value: str) -> str:
    if not _ENGINE_RE.match(value):
        raise ValueError("engine must be a lowercase name such as espeak-ng")
    return value


class MessageSettings(SettingsModel):
    """How the station composes EAS messages (47 CFR 11.31, ECIG V1.0 3.2 and 3.5)."""

    sample_rate_hz: int = Field(
        default=22_050,
        description="sample rate of composed messages, one of "
        + ", ".join(str(r) for r in MESSAGE_SAMPLE_RATES)
        + " Hz (22050 is the ECIG audio rate)",
    )
    attention_signal_s: float = Field(
        default=8.0,
        ge=8.0,
        le=25.0,
        description="attention signal length in seconds; 47 CFR 11.31 allows 8 to 25",
    )
    attention_kind: Literal["broadcast", "nwr"] = Field(
        default="broadcast",
        description="attention signal: broadcast (853 + 960 Hz) or nwr (NOAA Weather Radio, "
        "1050 Hz)",
    )
    tts_engine: Annotated[str, AfterValidator(validate_engine)] = Field(
        default="espeak-ng",
        description="text-to-speech engine for alerts without CAP audio (espeak-ng; flite "
        "where installed)",
    )
    tts_voice: Annotated[str, AfterValidator(validate_voice)] = Field(
        default="en-us", description="voice name of the engine, e.g. en-us (espeak-ng), slt (flite)"
    )
    tts_rate_wpm: int = Field(
        default=160,
        ge=80,
        le=300,
        description="speaking rate in words per minute (espeak-ng's own default is 175; a "
        "little slower is easier to follow on a receiver)",
    )
    cap_audio_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=64 * 1024,
        le=200 * 1024 * 1024,
        description="largest CAP audio resource fetched, in bytes (bigger ones fall back to "
        "text-to-speech)",
    )
    narration_max_s: float = Field(
        default=120.0,
        ge=10.0,
        le=120.0,
        description="narration is cut at this many seconds, except for EAN; ECIG 3.5.2 and "
        "3.5.4 allow at most 120",
    )

    @field_validator("sample_rate_hz")
    @classmethod
    def _common_rate(cls, value: int) -> int:
        if value not in MESSAGE_SAMPLE_RATES:
            raise ValueError(
                f"sample rate {value} Hz is not one of "
                + ", ".join(str(r) for r in MESSAGE_SAMPLE_RATES)
            )
        return value


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def validate_clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError("a time of day as HH:MM (24-hour), e.g. 10:30")
    return value


ClockTime = Annotated[str, AfterValidator(validate_clock)]


class WeeklyTestWindow(SettingsModel):
    """When a scheduled test airs: a day and a window in the station's time zone; the exact
    minute is drawn once per period inside the window, as stations do (47 CFR 11.61 asks
    for tests at random days and times)."""

    enabled: bool = False
    day: Weekday = Field(default=Weekday.TUESDAY, description="the day of the week it airs")
    start: ClockTime = Field(default="10:00", description="earliest time of day (HH:MM)")
    end: ClockTime = Field(default="16:00", description="latest time of day (HH:MM)")

    @model_validator(mode="after")
    def _ordered(self) -> WeeklyTestWindow:
        if self.end <= self.start:
            raise ValueError("end must be later than start on the same day")
        return self


class MonthlyTestWindow(WeeklyTestWindow):
    week: int = Field(
        default=1, ge=1, le=4, description="which week of the month (1-4) the RMT airs in"
    )


class RequiredTests(SettingsModel):
    """Required tests the station originates itself (47 CFR 11.61). Off on a fresh station:
    a test on air is still something on air."""

    weekly: WeeklyTestWindow = Field(
        default_factory=WeeklyTestWindow, description="Required Weekly Test"
    )
    monthly: MonthlyTestWindow = Field(
        default_factory=MonthlyTestWindow, description="Required Monthly Test"
    )


class RetentionSettings(SettingsModel):
    alerts_days: int = Field(default=90, ge=1, le=3650)
    decoded_headers_days: int = Field(default=90, ge=1, le=3650)
    audio_days: int = Field(default=30, ge=1, le=3650)
    audit_days: int = Field(default=365, ge=30, le=3650)
    station_log_days: int = Field(
        default=730,
        ge=30,
        le=3650,
        description="audio-control's station log (47 CFR 73.1840 asks for two years); older "
        "entries are pruned with a signed anchor, so the chain still verifies",
    )
    settings_versions: int = Field(default=200, ge=2, le=100_000)


class StationSettings(SettingsModel):
    """The whole settings document."""

    identity: StationIdentity = Field(default_factory=StationIdentity)
    location: LocationSettings = Field(default_factory=LocationSettings)
    feeds: FeedSettings = Field(default_factory=FeedSettings)
    relay: RelayRules = Field(default_factory=RelayRules)
    monitor: MonitorDefaults = Field(default_factory=MonitorDefaults)
    messages: MessageSettings = Field(default_factory=MessageSettings)
    tests: RequiredTests = Field(default_factory=RequiredTests)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    def storage_json(self) -> str:
        """The document with secrets in clear text: for the owner's database only."""
        return self.model_dump_json(context={"reveal_secrets": True})


# ---- secrets -------------------------------------------------------------------------------


def _walk_secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr | None]]:
    out: list[tuple[str, SecretStr | None]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if _is_secret_annotation(info.annotation):
            out.append((prefix + name, value))
        elif isinstance(value, BaseModel):
            out.extend(_walk_secrets(value, f"{prefix}{name}."))
    return out


def secret_paths(settings: StationSettings) -> list[str]:
    return [path for path, _ in _walk_secrets(settings)]


def secret_values(settings: StationSettings) -> dict[str, str | None]:
    return {
        path: (v.get_secret_value() if v is not None else None)
        for path, v in _walk_secrets(settings)
    }


def _redact(model: BaseModel, doc: dict[str, Any], markers: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if _is_secret_annotation(info.annotation):
            if markers:
                out[f"{name}_set"] = value is not None and value.get_secret_value() != ""
        elif isinstance(value, BaseModel):
            out[name] = _redact(value, doc[name], markers)
        else:
            out[name] = doc[name]
    return out


def redacted(settings: StationSettings, markers: bool = True) -> dict[str, Any]:
    """JSON-ready document with each secret replaced by ``<name>_set`` (or left out)."""
    return _redact(settings, settings.model_dump(mode="json"), markers)


def _carry(new: BaseModel, current: BaseModel) -> BaseModel:
    update: dict[str, Any] = {}
    for name, info in type(new).model_fields.items():
        value = getattr(new, name)
        if _is_secret_annotation(info.annotation):
            if value is None:
                update[name] = getattr(current, name)
            elif value.get_secret_value() == "":
                update[name] = None
        elif isinstance(value, BaseModel):
            update[name] = _carry(value, getattr(current, name))
    return new.model_copy(update=update)


def carry_secrets(new: StationSettings, current: StationSettings) -> StationSettings:
    """``new`` with each omitted secret taken from ``current`` and each ``""`` cleared."""
    result = _carry(new, current)
    assert isinstance(result, StationSettings)
    return result


def changed_sections(old: StationSettings, new: StationSettings) -> list[str]:
    """Sections whose content differs, secrets included (compared, never reported)."""
    old_doc = json_doc(old)
    new_doc = json_doc(new)
    return [s for s in SECTIONS if old_doc[s] != new_doc[s]]


def changed_secrets(old: StationSettings, new: StationSettings) -> list[str]:
    before, after = secret_values(old), secret_values(new)
    return [path for path in after if before.get(path) != after[path]]


def json_doc(settings: StationSettings) -> dict[str, Any]:
    doc: dict[str, Any] = settings.model_dump(mode="json", context={"reveal_secrets": True})
    return doc


# ---- export / event ------------------------------------------------------------------------


class SettingsExport(BaseModel):
    """The whole configuration as one document; exports leave secrets out."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["eas-station-settings"] = "eas-station-settings"
    format_version: Literal[1] = 1
    exported_at: AwareDatetime | None = None
    version: int | None = Field(default=None, description="settings version exported")
    settings: StationSettings


class SettingsAction(StrEnum):
    UPDATE = "update"
    ROLLBACK = "rollback"
    IMPORT = "import"


class SettingsChanged(BaseModel):
    """Payload of ``settings.changed``: what changed and who did it, never a value of a secret."""

    version: int = Field(ge=1, description="the new current version")
    previous_version: int = Field(ge=0)
    action: SettingsAction
    sections: list[str] = Field(description="sections whose content changed")
    secrets_changed: list[str] = Field(
        default_factory=list, description="paths of secrets set or cleared (names only)"
    )
    actor: str
    changed_at: AwareDatetime
