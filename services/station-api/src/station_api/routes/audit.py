"""/api/audit: the audit log, filtered and paged, its CSV export, and its hash chain's
verification (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from eas_schemas.system_events import AuditOutcome
from eas_schemas.text import OneLine, UtcTime
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES
from servicekit.hashchain import VerificationOut
from station_api.repository import AuditFilters
from station_api.routes.common import audit_log
from station_api.schemas import (
    AuditEntryOut,
    AuditPageOut,
)

router = APIRouter(prefix="/api/audit", tags=["audit"], responses=COMMON_RESPONSES)

Auditor = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


def _filters(
    action: Annotated[
        OneLine | None,
        Query(max_length=64, description="exact (auth.login) or a family (auth, settings)"),
    ] = None,
    actor: Annotated[OneLine | None, Query(max_length=255)] = None,
    target: Annotated[OneLine | None, Query(max_length=255)] = None,
    outcome: Annotated[AuditOutcome | None, Query()] = None,
    service: Annotated[OneLine | None, Query(max_length=64)] = None,
    since: Annotated[UtcTime | None, Query(description="at or after")] = None,
    until: Annotated[UtcTime | None, Query(description="before")] = None,
) -> AuditFilters:
    return AuditFilters(
        action=action,
        actor=actor,
        target=target,
        outcome=outcome.value if outcome else None,
        service=service,
        since=since,
        until=until,
    )


Filters = Annotated[AuditFilters, Depends(_filters)]


@router.get("", response_model=AuditPageOut, summary="Audit entries, newest first")
async def list_audit(
    request: Request,
    _: Auditor,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="entries older than this id")
    ] = None,
) -> AuditPageOut:
    rows = await audit_log(request).query(filters, before, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    return AuditPageOut(
        items=[AuditEntryOut.model_validate(r) for r in rows],
        next_before=rows[-1]["id"] if more and rows else None,
    )


@router.get(
    "/export.csv",
    summary="The filtered audit log as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, header row first"}},
)
async def export_audit(request: Request, _: Auditor, filters: Filters) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        audit_log(request).csv_chunks(filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="eas-station-audit-{stamp}.csv"'},
    )


@router.get(
    "/verify",
    summary="Check the audit log's hash chain: intact, or the first broken link and why",
    response_model=VerificationOut,
)
async def verify_audit(request: Request, _: Auditor) -> VerificationOut:
    return VerificationOut.of(await audit_log(request).verify())
