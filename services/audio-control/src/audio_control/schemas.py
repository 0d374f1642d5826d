"""HTTP request and response models of /api/audio, and the checks their fields share."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from audio_control.playout.keying import KeyingConfig, NoKeyingConfig
from audio_control.playout.outputs import OutputConfig
from eas_same import codes
from eas_same.header import MAX_LOCATIONS, SameHeaderError, validate_duration
from eas_schemas.playout_events import OutputLevel
from eas_schemas.relay_events import DecisionState, RelayDecisionEvent, RelaySource
from eas_schemas.same_codes import EVENT_CODES, LocationCode, SameEventCode, SameLocationCode
from eas_schemas.station_settings import Originator
from eas_schemas.text import CleanText, OneLine

MAX_TEXT = 1800  # ECIG 3.6: the alert text is at most 1800 characters


def known_event(code: str) -> str:
    if code not in EVENT_CODES:
        raise ValueError(
            f"{code!r} is not a SAME event code of the station's table (47 CFR 11.31), "
            "e.g. TOR, SVR, CEM, RWT, RMT"
        )
    return code


def existing_location(code: str) -> str:
    """A location that exists: the nation, a whole state, or a county of the FIPS table."""
    loc = LocationCode.parse(code)
    if loc.is_national or loc.is_statewide:
        return code
    if loc.state + loc.county not in codes.counties():
        raise ValueError(f"{code!r}: county {loc.state}{loc.county} does not exist")
    return code


def legal_duration(text: str) -> str:
    try:
        validate_duration(text)
    except SameHeaderError as exc:
        raise ValueError(
            f"{exc}; durations are HHMM in 15-minute steps up to 0100, then 30-minute steps "
            "(0130, 0200, ... 9930)"
        ) from exc
    if text == "0000":
        raise ValueError("a duration of 0000 means the message is already over")
    return text


KnownEvent = Annotated[SameEventCode, AfterValidator(known_event)]
ExistingLocation = Annotated[SameLocationCode, AfterValidator(existing_location)]
LegalDuration = Annotated[str, Field(pattern=r"^\d{4}$"), AfterValidator(legal_duration)]


# ---- decisions -----------------------------------------------------------------------------


class StateFilter(StrEnum):
    OPEN = "open"  # waiting for confirmation, scheduled or confirmed


class DecisionPage(BaseModel):
    items: list[RelayDecisionEvent]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")


class OperatorNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: OneLine | None = Field(default=None, max_length=500, description="why, for the log")


DecisionStateQuery = DecisionState | StateFilter
Source = RelaySource


# ---- messages ------------------------------------------------------------------------------


class MessageOut(BaseModel):
    id: int
    kind: Literal["relay", "origination"]
    decision_id: int | None
    header: str = Field(description="the ZCZC header sent three times")
    originator: str
    event_code: str
    event_name: str
    locations: list[str]
    duration: str = Field(description="TTTT, HHMM")
    issued: AwareDatetime
    narration_source: str = Field(description="cap_audio, tts, upload, air_clip or none")
    text: str | None = Field(description="the text spoken (or shown), when there is one")
    tone: str | None = Field(description="attention signal: broadcast or nwr; none without text")
    attention_s: float | None
    rate: int = Field(description="sample rate of the WAV, Hz")
    duration_s: float
    sha256: str = Field(description="of the WAV")
    components: dict[str, Any] = Field(
        description="where each part is (header x3, attention, narration, EOM x3) and how the "
        "narration was chosen, with every source that failed"
    )
    created_at: AwareDatetime
    created_by: str
    audio_url: str

    @classmethod
    def of(cls, row: Any) -> MessageOut:
        return cls(
            id=row.id,
            kind=row.kind,
            decision_id=row.decision_id,
            header=row.header,
            originator=row.originator,
            event_code=row.event_code,
            event_name=EVENT_CODES.get(row.event_code, row.event_code),
            locations=json.loads(row.locations),
            duration=row.duration,
            issued=row.issued,
            narration_source=row.narration_source,
            text=row.text,
            tone=row.tone,
            attention_s=row.attention_s,
            rate=row.rate,
            duration_s=row.duration_s,
            sha256=row.sha256,
            components=json.loads(row.components),
            created_at=row.created_at,
            created_by=row.created_by,
            audio_url=f"/api/audio/messages/{row.id}/audio",
        )


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class OriginationIn(BaseModel):
    """An operator's message. The station's callsign and the issue time (now) are filled in."""

    model_config = ConfigDict(extra="forbid")

    event_code: KnownEvent = Field(description="SAME event code, e.g. CEM, EVI, RMT")
    originator: Originator | None = Field(
        default=None, description="SAME originator; default: the station's (identity)"
    )
    locations: list[ExistingLocation] = Field(
        min_length=1,
        max_length=MAX_LOCATIONS,
        description="PSSCCC codes, at most 31 (47 CFR 11.31)",
    )
    duration: LegalDuration = Field(
        description="purge time HHMM: 0015, 0030, 0045, 0100, then 30-minute steps"
    )
    narration: Literal["tts", "none"] = Field(
        default="tts", description="tts: speak ``text``; none: header, tones and EOM only"
    )
    text: CleanText | None = Field(
        default=None,
        max_length=MAX_TEXT,
        validate_default=True,
        description="narration, spoken by the station's text-to-speech engine; '***' is a "
        "one-second pause",
    )

    @field_validator("locations")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"each location once; repeated: {', '.join(repeated)}")
        return value

    @field_validator("text")
    @classmethod
    def _text_for_speech(cls, value: str | None, info: ValidationInfo) -> str | None:
        narration = info.data.get("narration", "tts")
        if narration == "tts" and not (value and value.strip()):
            raise ValueError(
                "narration text is required (or set narration to none for header, tones and "
                "EOM only)"
            )
        if narration == "none" and value:
            raise ValueError("given, but narration is none: it would not be heard")
        return value.strip() if value else None


class TestIn(BaseModel):
    """A required test originated now for the station's own area."""

    model_config = ConfigDict(extra="forbid")

    duration: LegalDuration | None = Field(
        default=None, description="purge time; default 0015 for an RWT, 0100 for an RMT"
    )
    text: CleanText | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="RMT only: the test script; default the standard one with the station's name",
    )


# ---- outputs -------------------------------------------------------------------------------

OUTPUT_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$"


class _OutputBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: OutputConfig = Field(description="the output's settings, by kind (no secret)")
    keying: KeyingConfig = Field(
        default_factory=NoKeyingConfig, description="transmitter keying around each message"
    )
    enabled: bool = True
    secret: SecretStr | None = Field(
        default=None,
        max_length=256,
        description="write-only credential (a stream's source password); never returned",
    )


class OutputIn(_OutputBody):
    name: str = Field(pattern=OUTPUT_NAME, description="unique; events and levels use it")


class OutputUpdate(_OutputBody):
    """The whole output again; ``secret`` left out keeps the stored one, null clears it."""

    name: str | None = Field(default=None, pattern=OUTPUT_NAME, description="to rename it")


class OutputAiring(BaseModel):
    item_id: int
    state: str = Field(description="playing, aired, interrupted or failed")
    started_at: AwareDatetime
    finished_at: AwareDatetime | None
    error: str | None = None


class OutputStatus(BaseModel):
    """What the worker last reported: its lease (Redis, live), its last level (Redis, set by
    the worker as it plays) and its last airing (the database: what the worker committed)."""

    held_by: str | None = Field(description="the playout worker that holds it, if any")
    playing: bool
    level: OutputLevel | None = Field(description="the last level the worker measured")
    last: OutputAiring | None = Field(description="the last message on this output")


class OutputOut(BaseModel):
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    keying: dict[str, Any]
    enabled: bool
    has_secret: bool = Field(description="a secret is stored (it is never returned)")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    status: OutputStatus


# ---- the station log -------------------------------------------------------------------------


class LogEntryOut(BaseModel):
    seq: int = Field(description="place in the hash chain")
    at: datetime
    kind: str
    summary: str
    originator: str | None
    event_code: str | None
    locations: list[str]
    header: str | None
    decision_state: str | None
    reasons: str | None
    output: str | None = Field(description="the output of a per-output playout result")
    result: dict[str, Any] | None = Field(description="what that output reported")
    actor: str | None
    alert_id: int | None
    decision_id: int | None
    message_id: int | None
    item_id: int | None
    detail: dict[str, Any]
    hash: str = Field(description="the entry's link hash (SHA-256, hex)")


class LogPage(BaseModel):
    items: list[LogEntryOut]
    total: int = Field(description="entries matching the filters, on every page")
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")
