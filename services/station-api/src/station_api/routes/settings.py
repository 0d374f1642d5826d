"""/api/settings: the station's settings document, its versions, rollback, export/import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from eas_schemas.station_settings import SettingsExport, redacted
from eas_schemas.text import CleanText
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES, error, unprocessable
from station_api.locations import location_names
from station_api.routes.common import client_addr, settings_service
from station_api.schemas import (
    VERSION_MAX,
    RollbackIn,
    SaveOut,
    SettingsOut,
    SettingsPatchIn,
    SettingsPutIn,
    VersionOut,
    VersionsOut,
)
from station_api.services.settings import SaveResult, SettingsState

router = APIRouter(prefix="/api/settings", tags=["settings"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.SETTINGS_READ))]
Writer = Annotated[Principal, Depends(require(Permission.SETTINGS_WRITE))]
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: error("base_version is not the current version"),
    422: unprocessable("the document is invalid; every bad field named"),
}


def _settings_out(state: SettingsState) -> SettingsOut:
    location = state.settings.location
    return SettingsOut(
        version=state.version,
        saved_at=state.created_at,
        saved_by=state.actor,
        action=state.action,
        comment=state.comment,
        settings=redacted(state.settings),
        location_names=location_names(location.same_codes, location.ugc_codes),
    )


def _save_out(result: SaveResult) -> SaveOut:
    return SaveOut(
        changed=result.changed,
        version=result.version,
        previous_version=result.previous_version,
        sections=result.sections,
        secrets_changed=result.secrets_changed,
    )


@router.get("", response_model=SettingsOut, summary="The current settings (secrets as markers)")
async def get_settings(request: Request, _: Reader) -> SettingsOut:
    return _settings_out(await settings_service(request).current())


@router.put(
    "",
    response_model=SaveOut,
    summary='Replace the whole document (secrets: omitted/null keep, "" clears)',
    responses=WRITE_ERRORS,
)
async def put_settings(request: Request, body: SettingsPutIn, principal: Writer) -> SaveOut:
    result = await settings_service(request).replace(
        body.settings, principal, client_addr(request), body.base_version, body.comment
    )
    return _save_out(result)


@router.patch(
    "",
    response_model=SaveOut,
    summary="Change part of the document (JSON merge patch); validated as a whole",
    responses=WRITE_ERRORS,
)
async def patch_settings(request: Request, body: SettingsPatchIn, principal: Writer) -> SaveOut:
    result = await settings_service(request).patch(
        body.patch, principal, client_addr(request), body.base_version, body.comment
    )
    return _save_out(result)


@router.get("/versions", response_model=VersionsOut, summary="Saved versions, newest first")
async def list_versions(
    request: Request,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=VERSION_MAX, description="versions older than this")
    ] = None,
) -> VersionsOut:
    states = await settings_service(request).versions(limit + 1, before)
    more, states = len(states) > limit, states[:limit]
    return VersionsOut(
        items=[
            VersionOut(
                version=s.version,
                saved_at=s.created_at,
                saved_by=s.actor,
                action=s.action,
                sections=s.sections,
                based_on=s.based_on,
                comment=s.comment,
            )
            for s in states
        ],
        next_before=states[-1].version if more and states else None,
    )


@router.get(
    "/versions/{version}",
    response_model=SettingsOut,
    summary="One earlier version (secrets as markers)",
    responses={404: error("no such version")},
)
async def get_version(
    request: Request, version: Annotated[int, Path(ge=1, le=VERSION_MAX)], _: Reader
) -> SettingsOut:
    return _settings_out(await settings_service(request).version(version))


@router.post(
    "/rollback",
    response_model=SaveOut,
    summary="Make the previous (or a named) version current again, as a new version",
    responses={409: error("nothing to roll back to")},
)
async def rollback(request: Request, principal: Writer, body: RollbackIn | None = None) -> SaveOut:
    body = body or RollbackIn()
    result = await settings_service(request).rollback(
        principal, client_addr(request), body.to_version, body.base_version
    )
    return _save_out(result)


@router.get(
    "/export",
    summary="The whole configuration as one document (without secrets)",
    response_model=SettingsExport,
)
async def export_settings(request: Request, _: Reader) -> JSONResponse:
    document = await settings_service(request).export()
    return JSONResponse(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="eas-station-settings-v'
            f'{document["version"]}.json"'
        },
    )


@router.post(
    "/import",
    response_model=SaveOut,
    summary="Replace the configuration with an exported document (secrets not in it are kept)",
    responses=WRITE_ERRORS,
)
async def import_settings(
    request: Request,
    body: SettingsExport,
    principal: Writer,
    comment: Annotated[CleanText | None, Query(max_length=500)] = None,
) -> SaveOut:
    result = await settings_service(request).import_document(
        body, principal, client_addr(request), comment
    )
    return _save_out(result)
