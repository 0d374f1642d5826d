"""/api/reference: the station's tables of SAME locations and event codes, for pickers.

Read from the one SAME code table (``eas_schemas.same_codes``), so a form offers exactly the
codes the services accept (audio-control's origination checks against the same table).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from eas_schemas.same_codes import EVENT_TABLE, EventSource
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES
from station_api.locations import search_locations

router = APIRouter(prefix="/api/reference", tags=["reference"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.SYSTEM_READ))]


class LocationOut(BaseModel):
    code: str
    name: str


class EventOut(BaseModel):
    code: str
    name: str
    event_class: str


@router.get(
    "/locations",
    response_model=list[LocationOut],
    summary="Counties and whole states by name (or code prefix), with their SAME code",
)
async def locations(
    _: Reader,
    q: Annotated[
        str, Query(min_length=2, max_length=64, description="part of a county or state name")
    ],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[LocationOut]:
    return [LocationOut(code=c, name=n) for c, n in search_locations(q, limit)]


@router.get(
    "/events",
    response_model=list[EventOut],
    summary="SAME event codes the station accepts, by name (retired ones left out)",
)
async def events(_: Reader) -> list[EventOut]:
    return [
        EventOut(code=e.code, name=e.name, event_class=e.event_class.value)
        for e in sorted(EVENT_TABLE.values(), key=lambda e: e.name)
        if e.source is not EventSource.RETIRED
    ]
