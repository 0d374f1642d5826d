"""CAP 1.2 domain model (OASIS CAP v1.2): alert, info, resource, area.

Field names are snake_case versions of the CAP element names. Times are timezone-aware and
normalised to UTC; CAP requires an explicit offset on every dateTime, so naive times are
rejected rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


class CapStatus(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class CapMsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class CapScope(StrEnum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class CapUrgency(StrEnum):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class CapSeverity(StrEnum):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class CapCertainty(StrEnum):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


NonEmpty = Annotated[str, Field(min_length=1, max_length=10_000)]
Text = Annotated[str, Field(max_length=100_000)]


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


class ValuePair(BaseModel):
    """CAP's valueName/value pair (geocode, eventCode, parameter)."""

    model_config = ConfigDict(frozen=True)

    value_name: NonEmpty
    value: Annotated[str, Field(max_length=10_000)]


class CapReference(BaseModel):
    """One entry of ``references``: ``sender,identifier,sent``."""

    model_config = ConfigDict(frozen=True)

    sender: NonEmpty
    identifier: NonEmpty
    sent: AwareDatetime

    @field_validator("sent")
    @classmethod
    def _sent_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def parse(cls, text: str) -> CapReference:
        parts = text.strip().split(",")
        if len(parts) != 3:
            raise ValueError(f"CAP reference must be 'sender,identifier,sent', got {text!r}")
        return cls(sender=parts[0], identifier=parts[1], sent=datetime.fromisoformat(parts[2]))


class Circle(BaseModel):
    """A CAP circle: centre (WGS 84) and radius in kilometres."""

    model_config = ConfigDict(frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(ge=0)


Point = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]


class CapArea(BaseModel):
    area_desc: NonEmpty
    polygons: list[list[Point]] = Field(
        default_factory=list, description="each a closed ring of (lat, lon) pairs, as in CAP"
    )
    circles: list[Circle] = Field(default_factory=list)
    geocodes: list[ValuePair] = Field(default_factory=list)
    altitude: float | None = None
    ceiling: float | None = None

    @field_validator("polygons")
    @classmethod
    def _closed_rings(cls, rings: list[list[Point]]) -> list[list[Point]]:
        for ring in rings:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise ValueError("a CAP polygon needs at least 4 points and must be closed")
        return rings

    def geocode_values(self, *names: str) -> list[str]:
        wanted = {n.upper() for n in names}
        return [g.value.strip() for g in self.geocodes if g.value_name.strip().upper() in wanted]


class CapResource(BaseModel):
    resource_desc: NonEmpty
    mime_type: NonEmpty
    size: int | None = Field(default=None, ge=0)
    uri: str | None = None
    deref_uri: str | None = Field(default=None, description="base64 content, if embedded")
    digest: str | None = None


class CapInfo(BaseModel):
    language: str = "en-US"
    categories: list[str] = Field(default_factory=list)
    event: NonEmpty
    response_types: list[str] = Field(default_factory=list)
    urgency: CapUrgency
    severity: CapSeverity
    certainty: CapCertainty
    audience: str | None = None
    event_codes: list[ValuePair] = Field(default_factory=list)
    effective: AwareDatetime | None = None
    onset: AwareDatetime | None = None
    expires: AwareDatetime | None = None
    sender_name: str | None = None
    headline: Text | None = None
    description: Text | None = None
    instruction: Text | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[ValuePair] = Field(default_factory=list)
    resources: list[CapResource] = Field(default_factory=list)
    areas: list[CapArea] = Field(default_factory=list)

    @field_validator("effective", "onset", "expires")
    @classmethod
    def _times_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    def same_event_code(self) -> str | None:
        for code in self.event_codes:
            if code.value_name.strip().upper() == "SAME" and code.value.strip():
                return code.value.strip().upper()
        return None


class CapAlert(BaseModel):
    """A CAP 1.2 alert. Identity is (sender, identifier, sent)."""

    identifier: NonEmpty
    sender: NonEmpty
    sent: AwareDatetime
    status: CapStatus
    msg_type: CapMsgType
    source: str | None = None
    scope: CapScope
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = Field(default_factory=list)
    note: Text | None = None
    references: list[CapReference] = Field(default_factory=list)
    incidents: str | None = None
    infos: list[CapInfo] = Field(default_factory=list)

    @field_validator("sent")
    @classmethod
    def _sent_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("identifier", "sender")
    @classmethod
    def _no_forbidden_chars(cls, value: str) -> str:
        # CAP 1.2 forbids spaces, commas and restricted characters (< and &) in these fields.
        if any(ch in value for ch in " ,<&"):
            raise ValueError("must not contain spaces, commas, '<' or '&' (CAP 1.2)")
        return value

    @model_validator(mode="after")
    def _update_needs_references(self) -> CapAlert:
        if self.msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL) and not self.references:
            raise ValueError(f"msgType {self.msg_type.value} requires references")
        return self

    # Convenience views used for relevance, filtering and summaries.
    def same_codes(self) -> list[str]:
        seen: dict[str, None] = {}
        for info in self.infos:
            for area in info.areas:
                for code in area.geocode_values("SAME", "FIPS6"):
                    seen.setdefault(code.zfill(6), None)
        return list(seen)

    def ugc_codes(self) -> list[str]:
        seen: dict[str, None] = {}
        for info in self.infos:
            for area in info.areas:
                for code in area.geocode_values("UGC"):
                    seen.setdefault(code.upper(), None)
        return list(seen)

    def primary_info(self, preferred_language: str = "en") -> CapInfo | None:
        for info in self.infos:
            if info.language.lower().startswith(preferred_language.lower()):
                return info
        return self.infos[0] if self.infos else None

    def expires(self) -> datetime | None:
        """Latest expiry across info blocks (an alert lives while any info is current)."""
        times = [i.expires for i in self.infos if i.expires is not None]
        return max(times) if times else None
