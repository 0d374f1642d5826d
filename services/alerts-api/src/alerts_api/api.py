"""HTTP endpoints under /api/alerts. Thin: validate, call the service or repository, answer."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from alerts_api import repository as repo
from alerts_api.render import AlertItem, AlertPage, feature_bytes
from alerts_api.service import AlertService
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
from eas_schemas.events import FeedKind
from eas_schemas.same_codes import EVENT_CODES, SameEventCode, SameLocationCode, UgcCode
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.security import require

GEOJSON = "application/geo+json"


class ErrorOut(BaseModel):
    """Every 4xx other than 422 (whose ``detail`` lists the invalid fields)."""

    detail: str = Field(description="what was wrong, in words")


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no token, or an expired or invalid one"},
    403: {"model": ErrorOut, "description": "the token's role lacks the permission"},
}


router = APIRouter(
    prefix="/api/alerts",
    tags=["alerts"],
    responses=_AUTH_ERRORS,
)


# ---- input checks shared by queries and bodies --------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str) -> str:
    """Text the database can store as given: no NUL/control characters, no lone surrogates."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (such as NUL)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    return value


CleanText = Annotated[str, AfterValidator(_clean_text)]


def _utc_time(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("time is outside the representable range once converted to UTC") from exc


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc_time)]


def _any_case(enum_cls: type[Enum]) -> BeforeValidator:
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


def _wants_geojson(accept: str) -> bool:
    """Content negotiation between JSON and GeoJSON: GeoJSON only when asked for by name and
    preferred at least as much as JSON (wildcards such as a browser's ``*/*`` mean JSON)."""
    geo = plain = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == GEOJSON:
            geo = max(geo, q)
        elif media == "application/json":
            plain = max(plain, q)
    return geo > 0 and geo >= plain


class StatusFilter(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    INACTIVE = "inactive"
    ALL = "all"


_STATES: dict[StatusFilter, tuple[str, ...] | None] = {
    StatusFilter.ACTIVE: ("active",),
    StatusFilter.EXPIRED: ("expired",),
    StatusFilter.CANCELLED: ("cancelled",),
    StatusFilter.UPDATED: ("updated",),
    StatusFilter.INACTIVE: ("expired", "cancelled", "updated"),
    StatusFilter.ALL: None,
}


def _service(request: Request) -> AlertService:
    service: AlertService = request.app.state.alert_service
    return service


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


@router.get(
    "",
    summary="List alerts (newest first, cursor paging; JSON or GeoJSON)",
    response_model=AlertPage,
    responses={
        200: {
            "description": "an AlertPage as JSON, or a GeoJSON FeatureCollection",
            "content": {GEOJSON: {"schema": {"type": "object"}}},
        },
        400: {"model": ErrorOut, "description": "invalid cursor, or since not before until"},
    },
)
async def list_alerts(
    request: Request,
    _: Annotated[Principal, Depends(require(Permission.ALERTS_READ))],
    status_filter: Annotated[
        StatusFilter,
        _any_case(StatusFilter),
        Query(alias="status", description="alert state; inactive = expired, cancelled or updated"),
    ] = StatusFilter.ALL,
    event: Annotated[
        CleanText | None, Query(max_length=255, description="CAP event name, any letter case")
    ] = None,
    same_event: Annotated[
        SameEventCode | None, Query(description="SAME event code, e.g. TOR")
    ] = None,
    severity: Annotated[CapSeverity | None, _any_case(CapSeverity), Query()] = None,
    urgency: Annotated[CapUrgency | None, _any_case(CapUrgency), Query()] = None,
    certainty: Annotated[CapCertainty | None, _any_case(CapCertainty), Query()] = None,
    cap_status: Annotated[
        CapStatus | None, _any_case(CapStatus), Query(description="CAP status, e.g. Actual")
    ] = None,
    same: Annotated[
        SameLocationCode | None, Query(description="SAME location code PSSCCC (exact match)")
    ] = None,
    ugc: Annotated[
        UgcCode | None, Query(description="UGC zone or county, e.g. OHZ014; OHZALL for a state")
    ] = None,
    source: Annotated[FeedKind | None, _any_case(FeedKind), Query()] = None,
    relevant: Annotated[bool | None, Query(description="relevant to this station")] = None,
    since: Annotated[
        UtcTime | None, Query(description="sent at or after (ISO 8601 with offset)")
    ] = None,
    until: Annotated[
        UtcTime | None, Query(description="sent before (ISO 8601 with offset)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="items per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    format: Annotated[
        OutputFormat | None,
        _any_case(OutputFormat),
        Query(description="json or geojson; without it, the Accept header decides"),
    ] = None,
) -> Response:
    try:
        after = repo.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "invalid cursor: use next_cursor as given"
        ) from exc
    if since and until and since >= until:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "since must be before until")
    filters = repo.AlertFilters(
        states=_STATES[status_filter],
        event=event,
        same_event=same_event,
        severity=severity.value if severity else None,
        urgency=urgency.value if urgency else None,
        certainty=certainty.value if certainty else None,
        cap_status=cap_status.value if cap_status else None,
        same_code=same,
        ugc_code=ugc,
        source=source.value if source else None,
        relevant=relevant,
        since=since,
        until=until,
    )
    if format is None:
        wants_geo = _wants_geojson(request.headers.get("accept", ""))
    else:
        wants_geo = format == OutputFormat.GEOJSON
    async with _service(request).read_engine.connect() as conn:
        # One row more than asked for tells whether another page exists, so an exactly full
        # last page does not hand out a cursor to an empty page.
        rows = await repo.list_page(conn, filters, after, limit + 1, with_geometry=wants_geo)
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = repo.encode_cursor(rows[-1].sent, rows[-1].id) if more else None
    tail = json.dumps(next_cursor).encode()
    if wants_geo:
        features = b",".join(feature_bytes(r.item_json, r.geometry_json, r.id) for r in rows)
        body = (
            b'{"type":"FeatureCollection","features":['
            + features
            + b'],"next_cursor":'
            + tail
            + b"}"
        )
        return Response(body, media_type=GEOJSON, headers={"Vary": "Accept"})
    items = b",".join(r.item_json.encode() for r in rows)
    return Response(
        b'{"items":[' + items + b'],"next_cursor":' + tail + b"}",
        media_type="application/json",
        headers={"Vary": "Accept"},
    )


@router.get(
    "/stats", summary="Counts by event, severity, source and state", response_model=AlertStats
)
async def alert_stats(
    request: Request, _: Annotated[Principal, Depends(require(Permission.ALERTS_READ))]
) -> AlertStats:
    now = datetime.now(UTC)
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    async with _service(request).engine.connect() as conn:
        return AlertStats(
            total=await repo.count(conn),
            active=await repo.count(conn, state="active"),
            last_24h=await repo.count(conn, since=day),
            last_7d=await repo.count(conn, since=week),
            by_event=await repo.counts_by(conn, "event", None),
            by_severity=await repo.counts_by(conn, "severity", None),
            by_source=await repo.counts_by(conn, "source", None),
            by_state=await repo.counts_by(conn, "state", None),
            by_event_7d=await repo.counts_by(conn, "event", week),
            by_severity_7d=await repo.counts_by(conn, "severity", week),
            by_source_7d=await repo.counts_by(conn, "source", week),
        )


AlertId = Annotated[int, Path(ge=1, le=2**62)]


@router.get(
    "/{alert_id}",
    summary="One alert with its CAP document, references and history",
    response_model=AlertDetail,
    responses={404: {"model": ErrorOut, "description": "no alert with this id"}},
)
async def get_alert(
    request: Request,
    alert_id: AlertId,
    _: Annotated[Principal, Depends(require(Permission.ALERTS_READ))],
) -> AlertDetail:
    async with _service(request).engine.connect() as conn:
        row = await repo.get_alert(conn, alert_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id {alert_id}")
        refs = await repo.references_of(conn, alert_id)
        later = await repo.referenced_by(conn, alert_id)
        hist = await repo.history(conn, alert_id)
    return AlertDetail(
        alert=AlertItem.model_validate_json(row.item_json),
        cap=CapAlert.model_validate_json(row.cap),
        geometry=json.loads(row.geometry_json) if row.geometry_json else None,
        references=[
            ReferenceOut(
                sender=r.ref_sender,
                identifier=r.ref_identifier,
                sent=r.ref_sent,
                alert_id=r.ref_alert_id,
            )
            for r in refs
        ],
        referenced_by=[
            RelatedAlert(id=r.id, identifier=r.identifier, msg_type=r.msg_type, sent=r.sent)
            for r in later
        ],
        history=[
            HistoryEntry(
                at=h.at,
                from_state=h.from_state,
                to_state=h.to_state,
                reason=h.reason,
                by_alert_id=h.by_alert_id,
            )
            for h in hist
        ],
    )


@asynccontextmanager
async def _cancel_lock(request: Request, alert_id: int) -> AsyncIterator[None]:
    """Serialise cancels: within this process with one asyncio.Lock (operator actions are rare,
    and one lock means a waiting cancel never holds a pooled connection), across instances
    with a PostgreSQL advisory lock on the alert, held by its own transaction."""
    state = request.app.state
    gate: asyncio.Lock | None = getattr(state, "alerts_cancel_gate", None)
    if gate is None:
        gate = state.alerts_cancel_gate = asyncio.Lock()
    async with gate:
        engine = _service(request).engine
        if engine.dialect.name != "postgresql":
            yield
            return
        async with engine.begin() as conn:
            await repo.lock_for_cancel(conn, alert_id)
            yield


async def _created(service: AlertService, alert_id: int) -> JSONResponse:
    async with service.engine.connect() as conn:
        row = await repo.get_alert(conn, alert_id)
    assert row is not None
    body = CreatedAlert(id=alert_id, alert=AlertItem.model_validate_json(row.item_json))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/alerts/{alert_id}"},
    )


@router.post(
    "",
    summary="Create a manual (station-originated) alert",
    status_code=201,
    response_model=CreatedAlert,
    responses={
        201: {
            "headers": {"Location": {"description": "the new alert", "schema": {"type": "string"}}}
        },
        409: {"model": ErrorOut, "description": "an identical alert is already stored"},
        413: {"model": ErrorOut, "description": "request body over the size limit"},
    },
)
async def create_alert(
    request: Request,
    body: ManualAlertRequest,
    principal: Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))],
) -> JSONResponse:
    service = _service(request)
    cap = body.to_cap(service.station_sender, principal.subject)
    try:
        alert_id = await service.create_manual(cap, principal.subject)
    except ValueError as exc:  # the same (sender, identifier, sent) is already stored
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return await _created(service, alert_id)


@router.post(
    "/{alert_id}/cancel",
    summary="Cancel an alert (issues a CAP Cancel referencing it)",
    status_code=201,
    response_model=CreatedAlert,
    responses={
        201: {"headers": {"Location": {"description": "the Cancel", "schema": {"type": "string"}}}},
        404: {"model": ErrorOut, "description": "no alert with this id"},
        409: {"model": ErrorOut, "description": "the alert is not active, or is a Cancel"},
        413: {"model": ErrorOut, "description": "request body over the size limit"},
    },
)
async def cancel_alert(
    request: Request,
    alert_id: AlertId,
    principal: Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))],
    body: CancelRequest | None = None,
) -> JSONResponse:
    service = _service(request)
    # Two operators pressing Cancel at once must give one Cancel and one 409, not two Cancels
    # (or a database deadlock between their transactions): check and cancel under one lock.
    async with _cancel_lock(request, alert_id):
        async with service.engine.connect() as conn:
            row = await repo.get_alert(conn, alert_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id {alert_id}")
        current = AlertItem.model_validate_json(row.item_json)
        if current.msg_type == CapMsgType.CANCEL:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"alert {alert_id} is a Cancel message, which cannot itself be cancelled",
            )
        if current.state not in ("active", "updated"):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"alert {alert_id} is already {current.state}; only an active or updated alert "
                "can be cancelled",
            )
        cancel_id = await service.cancel(alert_id, principal.subject, body.note if body else None)
    assert cancel_id is not None
    return await _created(service, cancel_id)
