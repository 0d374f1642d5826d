"""HTTP endpoints under /api/alerts. Thin: validate, call the service or repository, answer."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

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
from eas_schemas.same_codes import SameEventCode, SameLocationCode, UgcCode
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.security import require

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

GEOJSON = "application/geo+json"


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

    event: str = Field(min_length=1, max_length=255)
    same_event: SameEventCode | None = None
    status: CapStatus = CapStatus.ACTUAL
    scope: CapScope = CapScope.PUBLIC
    severity: CapSeverity
    urgency: CapUrgency
    certainty: CapCertainty
    headline: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    instruction: str | None = Field(default=None, max_length=20_000)
    area_desc: str = Field(min_length=1, max_length=2_000)
    same_codes: list[SameLocationCode] = Field(default_factory=list, max_length=31)
    ugc_codes: list[UgcCode] = Field(default_factory=list, max_length=200)
    expires: AwareDatetime | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    language: str = Field(default="en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

    @model_validator(mode="after")
    def _checks(self) -> ManualAlertRequest:
        if not self.same_codes and not self.ugc_codes:
            raise ValueError("give at least one SAME or UGC code for the alert area")
        if (self.expires is None) == (self.duration_minutes is None):
            raise ValueError("give exactly one of expires or duration_minutes")
        if self.expires is not None and self.expires <= datetime.now(UTC):
            raise ValueError("expires must be in the future")
        if self.status == CapStatus.DRAFT:
            raise ValueError("Draft alerts are not stored; use Exercise or Test")
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
    note: str | None = Field(default=None, max_length=2_000)


class CreatedAlert(BaseModel):
    id: int
    alert: AlertItem


@router.get(
    "",
    summary="List alerts (newest first, cursor paging; JSON or GeoJSON)",
    response_model=AlertPage,
    responses={200: {"content": {GEOJSON: {}}}},
)
async def list_alerts(
    request: Request,
    _: Annotated[Principal, Depends(require(Permission.ALERTS_READ))],
    status_filter: Annotated[StatusFilter, Query(alias="status")] = StatusFilter.ALL,
    event: Annotated[str | None, Query(max_length=255, description="CAP event name")] = None,
    same_event: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    severity: CapSeverity | None = None,
    urgency: CapUrgency | None = None,
    certainty: CapCertainty | None = None,
    cap_status: CapStatus | None = None,
    same: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="SAME code")] = None,
    ugc: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}[CZcz][0-9]{3}$")] = None,
    source: FeedKind | None = None,
    relevant: bool | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    format: Annotated[str | None, Query(pattern="^(json|geojson)$")] = None,
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
        same_event=same_event.upper() if same_event else None,
        severity=severity.value if severity else None,
        urgency=urgency.value if urgency else None,
        certainty=certainty.value if certainty else None,
        cap_status=cap_status.value if cap_status else None,
        same_code=same,
        ugc_code=ugc.upper() if ugc else None,
        source=source.value if source else None,
        relevant=relevant,
        since=since,
        until=until,
    )
    async with _service(request).engine.connect() as conn:
        rows = await repo.list_page(conn, filters, after, limit)
    next_cursor = repo.encode_cursor(rows[-1].sent, rows[-1].id) if len(rows) == limit else None
    tail = json.dumps(next_cursor).encode()
    wants_geo = format == "geojson" or (
        format is None and GEOJSON in request.headers.get("accept", "")
    )
    if wants_geo:
        features = b",".join(feature_bytes(r.item_json, r.geometry_json, r.id) for r in rows)
        body = (
            b'{"type":"FeatureCollection","features":['
            + features
            + b'],"next_cursor":'
            + tail
            + b"}"
        )
        return Response(body, media_type=GEOJSON)
    items = b",".join(r.item_json.encode() for r in rows)
    return Response(
        b'{"items":[' + items + b'],"next_cursor":' + tail + b"}", media_type="application/json"
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
)
async def create_alert(
    request: Request,
    body: ManualAlertRequest,
    principal: Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))],
) -> JSONResponse:
    service = _service(request)
    alert_id = await service.create_manual(
        body.to_cap(service.station_sender, principal.subject), principal.subject
    )
    return await _created(service, alert_id)


@router.post(
    "/{alert_id}/cancel",
    summary="Cancel an alert (issues a CAP Cancel referencing it)",
    status_code=201,
    response_model=CreatedAlert,
)
async def cancel_alert(
    request: Request,
    alert_id: AlertId,
    principal: Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))],
    body: CancelRequest | None = None,
) -> JSONResponse:
    service = _service(request)
    async with service.engine.connect() as conn:
        row = await repo.get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id {alert_id}")
    current = AlertItem.model_validate_json(row.item_json)
    if current.state not in ("active", "updated"):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"alert {alert_id} is {current.state}, not active"
        )
    if current.msg_type == CapMsgType.CANCEL:
        raise HTTPException(status.HTTP_409_CONFLICT, "a Cancel message cannot itself be cancelled")
    cancel_id = await service.cancel(alert_id, principal.subject, body.note if body else None)
    assert cancel_id is not None
    return await _created(service, cancel_id)
