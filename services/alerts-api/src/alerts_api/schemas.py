"""HTTP request and response models of /api/alerts, and the checks their fields share."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from alerts_api.render import AlertItem
from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapInfo,
    CapMsgType,
    CapScope,
    CapSeverity,
    CapStatus,
    CapUrgency,
    ValuePair,
)
from eas_schemas.same_codes import EVENT_CODES, SameEventCode, SameLocationCode, UgcCode
from eas_schemas.text import CleanText, UtcTime

# ---- input checks shared by queries and bodies --------------------------------------------


def any_case(enum_cls: type[Enum]) -> BeforeValidator:
    """Accept an enum value in any letter case (``extreme`` for CAP's ``Extreme``)."""
    lookup = {str(m.value).lower(): m.value for m in enum_cls}

    def before(value: Any) -> Any:
        if isinstance(value, str):
            return lookup.get(value.strip().lower(), value)
        return value

    return BeforeValidator(before)


def _known_event_code(code: str) -> str:
    if code not in EVENT_CODES:
        raise ValueError(
            f"{code!r} is not a known SAME event code (47 CFR 11.31), e.g. TOR, SVR, CEM, RWT"
        )
    return code


class OutputFormat(StrEnum):
    JSON = "json"
    GEOJSON = "geojson"


class StatusFilter(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    INACTIVE = "inactive"
    ALL = "all"


# GET /api/alerts page size: the route's default and bound (its fast path takes the same).
LIST_LIMIT, MAX_LIST_LIMIT = 50, 500

STATES_OF: dict[StatusFilter, tuple[str, ...] | None] = {
    StatusFilter.ACTIVE: ("active",),
    StatusFilter.EXPIRED: ("expired",),
    StatusFilter.CANCELLED: ("cancelled",),
    StatusFilter.UPDATED: ("updated",),
    StatusFilter.INACTIVE: ("expired", "cancelled", "updated"),
    StatusFilter.ALL: None,
}


class HistoryEntry(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    reason: str
    by_alert_id: int | None


class RelatedAlert(BaseModel):
    id: int
    identifier: str
    msg_type: str
    sent: datetime


class ReferenceOut(BaseModel):
    sender: str
    identifier: str
    sent: datetime
    alert_id: int | None = Field(description="null while the referenced alert is not stored")


class AlertDetail(BaseModel):
    alert: AlertItem
    cap: CapAlert
    geometry: dict[str, Any] | None
    references: list[ReferenceOut]
    referenced_by: list[RelatedAlert]
    history: list[HistoryEntry]


class AlertStats(BaseModel):
    total: int
    active: int
    last_24h: int
    last_7d: int
    by_event: dict[str, int]
    by_severity: dict[str, int]
    by_source: dict[str, int]
    by_state: dict[str, int]
    by_event_7d: dict[str, int]
    by_severity_7d: dict[str, int]
    by_source_7d: dict[str, int]


class ManualAlertRequest(BaseModel):
    """A station-originated alert. The station fills identifier, sender and sent."""

    model_config = ConfigDict(extra="forbid")

    event: CleanText = Field(min_length=1, max_length=255, description="CAP event name")
    same_event: Annotated[SameEventCode, AfterValidator(_known_event_code)] | None = None
    status: CapStatus = CapStatus.ACTUAL
    scope: CapScope = CapScope.PUBLIC
    severity: CapSeverity
    urgency: CapUrgency
    certainty: CapCertainty
    headline: CleanText | None = Field(default=None, max_length=500)
    description: CleanText | None = Field(default=None, max_length=20_000)
    instruction: CleanText | None = Field(default=None, max_length=20_000)
    area_desc: CleanText = Field(min_length=1, max_length=2_000)
    same_codes: list[SameLocationCode] = Field(default_factory=list, max_length=31)
    ugc_codes: list[UgcCode] = Field(default_factory=list, max_length=200)
    expires: UtcTime | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    language: str = Field(default="en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

    @field_validator("event", "area_desc")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("status")
    @classmethod
    def _not_draft(cls, value: CapStatus) -> CapStatus:
        if value == CapStatus.DRAFT:
            raise ValueError("Draft alerts are not stored; use Exercise or Test")
        return value

    @field_validator("scope")
    @classmethod
    def _public_only(cls, value: CapScope) -> CapScope:
        # CAP 1.2 requires <restriction> for Restricted and <addresses> for Private, which a
        # manual alert does not carry: storing one would store an invalid CAP document.
        if value != CapScope.PUBLIC:
            raise ValueError(f"scope {value.value} is not supported for manual alerts; use Public")
        return value

    @field_validator("expires")
    @classmethod
    def _in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("expires must be in the future")
        return value

    @model_validator(mode="after")
    def _checks(self) -> ManualAlertRequest:
        if not self.same_codes and not self.ugc_codes:
            raise ValueError("give at least one code in same_codes or ugc_codes for the area")
        if (self.expires is None) == (self.duration_minutes is None):
            raise ValueError("give exactly one of expires or duration_minutes")
        return self

    def to_cap(self, sender: str, actor: str) -> CapAlert:
        sent = datetime.now(UTC).replace(microsecond=0)
        expires = self.expires or sent + timedelta(minutes=self.duration_minutes or 0)
        geocodes = [ValuePair(value_name="SAME", value=c) for c in self.same_codes]
        geocodes += [ValuePair(value_name="UGC", value=c) for c in self.ugc_codes]
        return CapAlert(
            identifier=f"eas-station-{uuid.uuid4().hex}",
            sender=sender,
            sent=sent,
            status=self.status,
            msg_type=CapMsgType.ALERT,
            scope=self.scope,
            note=f"manual alert by {actor}",
            infos=[
                CapInfo(
                    language=self.language,
                    categories=["Safety"],
                    event=self.event,
                    urgency=self.urgency,
                    severity=self.severity,
                    certainty=self.certainty,
                    event_codes=[ValuePair(value_name="SAME", value=self.same_event)]
                    if self.same_event
                    else [],
                    effective=sent,
                    onset=sent,
                    expires=expires,
                    headline=self.headline,
                    description=self.description,
                    instruction=self.instruction,
                    areas=[CapArea(area_desc=self.area_desc, geocodes=geocodes)],
                )
            ],
        )


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: CleanText | None = Field(default=None, max_length=2_000)


class CreatedAlert(BaseModel):
    id: int
    alert: AlertItem
