"""HTTP endpoints under /api/alerts. Thin: validate, call the service, answer."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response

from alerts_api import repository as repo
from alerts_api.fast_reads import detail_response, list_response
from alerts_api.render import GEOJSON, AlertPage, feature_bytes, page_body, wants_geojson
from alerts_api.schemas import (
    LIST_LIMIT,
    MAX_LIST_LIMIT,
    STATES_OF,
    AlertDetail,
    AlertStats,
    CancelRequest,
    CreatedAlert,
    ManualAlertRequest,
    OutputFormat,
    StatusFilter,
    any_case,
)
from alerts_api.service import AlertService
from eas_schemas.cap import CapCertainty, CapSeverity, CapStatus, CapUrgency
from eas_schemas.events import FeedKind
from eas_schemas.same_codes import SameEventCode, SameLocationCode, UgcCode
from eas_schemas.text import CleanText, UtcTime
from servicekit.auth.audit import audit_request
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES, BadRequest, error

router = APIRouter(prefix="/api/alerts", tags=["alerts"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.ALERTS_READ))]
Writer = Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))]
AlertId = Annotated[int, Path(ge=1, le=2**62)]


def _service(request: Request) -> AlertService:
    service: AlertService = request.app.state.alert_service
    return service


@router.get(
    "",
    summary="List alerts (newest first, cursor paging; JSON or GeoJSON)",
    response_model=AlertPage,
    responses={
        200: {
            "description": "an AlertPage as JSON, or a GeoJSON FeatureCollection",
            "content": {GEOJSON: {"schema": {"type": "object"}}},
        },
        400: error("invalid cursor, or since not before until"),
    },
)
async def list_alerts(
    request: Request,
    _: Reader,
    status_filter: Annotated[
        StatusFilter,
        any_case(StatusFilter),
        Query(alias="status", description="alert state; inactive = expired, cancelled or updated"),
    ] = StatusFilter.ALL,
    event: Annotated[
        CleanText | None, Query(max_length=255, description="CAP event name, any letter case")
    ] = None,
    same_event: Annotated[
        SameEventCode | None, Query(description="SAME event code, e.g. TOR")
    ] = None,
    severity: Annotated[CapSeverity | None, any_case(CapSeverity), Query()] = None,
    urgency: Annotated[CapUrgency | None, any_case(CapUrgency), Query()] = None,
    certainty: Annotated[CapCertainty | None, any_case(CapCertainty), Query()] = None,
    cap_status: Annotated[
        CapStatus | None, any_case(CapStatus), Query(description="CAP status, e.g. Actual")
    ] = None,
    same: Annotated[
        SameLocationCode | None, Query(description="SAME location code PSSCCC (exact match)")
    ] = None,
    ugc: Annotated[
        UgcCode | None, Query(description="UGC zone or county, e.g. OHZ014; OHZALL for a state")
    ] = None,
    source: Annotated[FeedKind | None, any_case(FeedKind), Query()] = None,
    relevant: Annotated[bool | None, Query(description="relevant to this station")] = None,
    since: Annotated[
        UtcTime | None, Query(description="sent at or after (ISO 8601 with offset)")
    ] = None,
    until: Annotated[
        UtcTime | None, Query(description="sent before (ISO 8601 with offset)")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIST_LIMIT, description="items per page")
    ] = LIST_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    format: Annotated[
        OutputFormat | None,
        any_case(OutputFormat),
        Query(description="json or geojson; without it, the Accept header decides"),
    ] = None,
) -> Response:
    try:
        after = repo.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise BadRequest("invalid cursor: use next_cursor as given") from exc
    if since and until and since >= until:
        raise BadRequest("since must be before until")
    filters = repo.AlertFilters(
        states=STATES_OF[status_filter],
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
        wants_geo = wants_geojson(request.headers.get("accept", ""))
    else:
        wants_geo = format == OutputFormat.GEOJSON
    rows, next_cursor = await _service(request).list_page(filters, after, limit, wants_geo)
    if wants_geo:
        tail = json.dumps(next_cursor).encode()
        features = b",".join(feature_bytes(r.item_json, r.geometry_json, r.id) for r in rows)
        body = (
            b'{"type":"FeatureCollection","features":['
            + features
            + b'],"next_cursor":'
            + tail
            + b"}"
        )
        return Response(body, media_type=GEOJSON, headers={"Vary": "Accept"})
    return list_response(page_body([r.item_json for r in rows], next_cursor))


@router.get(
    "/stats", summary="Counts by event, severity, source and state", response_model=AlertStats
)
async def alert_stats(request: Request, _: Reader) -> AlertStats:
    return await _service(request).stats()


@router.get(
    "/{alert_id}",
    summary="One alert with its CAP document, references and history",
    response_model=AlertDetail,
    responses={404: error("no alert with this id")},
)
async def get_alert(request: Request, alert_id: AlertId, _: Reader) -> Response:
    # The read cache's fast path (alerts_api.fast_reads) answers most of these without
    # reaching here, with the same bytes: this route is the contract and the fallback.
    return detail_response(await _service(request).detail(alert_id))


def _created(body: CreatedAlert) -> JSONResponse:
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/alerts/{body.id}"},
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
        409: error("an identical alert is already stored"),
        413: error("request body over the size limit"),
    },
)
async def create_alert(
    request: Request, body: ManualAlertRequest, principal: Writer
) -> JSONResponse:
    service = _service(request)
    cap = body.to_cap(service.station_sender, principal.subject)
    alert_id = await service.create_manual(cap, principal.subject)
    await audit_request(
        request,
        "alert.create",
        principal,
        target=f"alert/{alert_id}",
        detail={"event": cap.infos[0].event if cap.infos else None, "msg_type": cap.msg_type},
    )
    return _created(await service.created(alert_id))


@router.post(
    "/{alert_id}/cancel",
    summary="Cancel an alert (issues a CAP Cancel referencing it)",
    status_code=201,
    response_model=CreatedAlert,
    responses={
        201: {"headers": {"Location": {"description": "the Cancel", "schema": {"type": "string"}}}},
        404: error("no alert with this id"),
        409: error("the alert is not active, or is a Cancel"),
        413: error("request body over the size limit"),
    },
)
async def cancel_alert(
    request: Request, alert_id: AlertId, principal: Writer, body: CancelRequest | None = None
) -> JSONResponse:
    service = _service(request)
    cancel_id = await service.cancel_by_operator(
        alert_id, principal.subject, body.note if body else None
    )
    await audit_request(
        request, "alert.cancel", principal, target=f"alert/{alert_id}", detail={"cancel": cancel_id}
    )
    return _created(await service.created(cancel_id))
