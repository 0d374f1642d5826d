"""HTTP endpoints under /api/eas-monitor. Thin: validate, call the service, answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import (
    AfterValidator,
)

from eas_monitor.repository import DecodeFilter
from eas_monitor.schemas import (
    DecodeOut,
    DecodePage,
    DecodeType,
    InputCreate,
    InputOut,
    InputUpdate,
    UploadDecoded,
    known_event_code,
)
from eas_monitor.service import MonitorService
from eas_schemas.monitor_events import (
    MonitorStatus,
)
from eas_schemas.text import UtcTime
from servicekit.auth.audit import audit_request
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES, TooLarge, error, unprocessable

router = APIRouter(prefix="/api/eas-monitor", tags=["eas-monitor"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.MONITOR_READ))]
Writer = Annotated[Principal, Depends(require(Permission.MONITOR_WRITE))]
InputId = Annotated[int, Path(ge=1, le=2**62, description="input id")]


def _service(request: Request) -> MonitorService:
    svc: MonitorService = request.app.state.monitor_service
    return svc


Svc = Annotated[MonitorService, Depends(_service)]


_ERR = error("see detail")


@router.get("/status", summary="State of every monitored input")
async def all_status(svc: Svc, _: Reader) -> list[MonitorStatus]:
    return await svc.statuses()


@router.get("/inputs", summary="Configured inputs")
async def list_inputs(svc: Svc, _: Reader) -> list[InputOut]:
    return [InputOut.of(v) for v in await svc.list_inputs()]


@router.post(
    "/inputs",
    status_code=status.HTTP_201_CREATED,
    summary="Add an input (stopped; start it with /start)",
    responses={409: _ERR, 422: unprocessable("the configuration cannot work here")},
)
async def create_input(
    request: Request, body: InputCreate, svc: Svc, principal: Writer
) -> InputOut:
    view = await svc.create_input(body.name, body.config)
    await audit_request(
        request,
        "input.create",
        principal,
        target=f"input/{view.id}",
        detail={"name": view.name, "kind": view.kind.value},
    )
    return InputOut.of(view)


@router.get("/inputs/{input_id}", summary="One input", responses={404: _ERR})
async def get_input(input_id: InputId, svc: Svc, _: Reader) -> InputOut:
    return InputOut.of(await svc.get_input(input_id))


@router.patch(
    "/inputs/{input_id}",
    summary="Rename or reconfigure an input (a running one restarts with it)",
    responses={404: _ERR, 409: _ERR, 422: unprocessable("the configuration cannot work here")},
)
async def update_input(
    request: Request, input_id: InputId, body: InputUpdate, svc: Svc, principal: Writer
) -> InputOut:
    view = await svc.update_input(input_id, body.name, body.config)
    changed = [f for f in ("name", "config") if getattr(body, f) is not None]
    await audit_request(
        request, "input.update", principal, target=f"input/{input_id}", detail={"changed": changed}
    )
    return InputOut.of(view)


@router.delete(
    "/inputs/{input_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop and remove an input (its decode history stays)",
    responses={404: _ERR},
)
async def delete_input(
    request: Request, input_id: InputId, svc: Svc, principal: Writer
) -> Response:
    await svc.delete_input(input_id)
    await audit_request(request, "input.delete", principal, target=f"input/{input_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/inputs/{input_id}/start",
    summary="Start an input and answer once its worker is confirmed running",
    responses={
        404: _ERR,
        409: error("it cannot run as configured"),
        503: _ERR,
        504: error("not confirmed in time; still being retried"),
    },
)
async def start_input(request: Request, input_id: InputId, svc: Svc, principal: Writer) -> InputOut:
    view = await svc.start_input(input_id)
    await audit_request(request, "input.start", principal, target=f"input/{input_id}")
    return InputOut.of(view)


@router.post(
    "/inputs/{input_id}/stop",
    summary="Stop an input and answer once its worker is confirmed gone",
    responses={404: _ERR, 503: _ERR, 504: _ERR},
)
async def stop_input(request: Request, input_id: InputId, svc: Svc, principal: Writer) -> InputOut:
    view = await svc.stop_input(input_id)
    await audit_request(request, "input.stop", principal, target=f"input/{input_id}")
    return InputOut.of(view)


@router.get(
    "/decodes",
    summary="Recent decodes (newest first)",
    responses={422: unprocessable("the cursor is not one this API returned")},
)
async def list_decodes(
    request: Request,
    svc: Svc,
    _: Reader,
    type: Annotated[DecodeType | None, Query(description="event type")] = None,
    event_code: Annotated[
        str | None,
        Query(pattern=r"^[A-Z]{3}$"),
        AfterValidator(lambda v: v and known_event_code(v)),
    ] = None,
    input_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: Annotated[UtcTime | None, Query(description="heard at or after")] = None,
    until: Annotated[UtcTime | None, Query(description="heard before")] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DecodePage:
    limit = min(limit, svc.settings.page_size_max)
    flt = DecodeFilter(
        type=type.value if type else None,
        event_code=event_code,
        input_id=input_id,
        since=since,
        until=until,
    )
    rows, next_cursor = await svc.list_decodes(flt, limit, cursor)
    return DecodePage(items=[DecodeOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/decodes/{decode_id}", summary="One decode", responses={404: _ERR})
async def get_decode(
    decode_id: Annotated[int, Path(ge=1, le=2**62)], svc: Svc, _: Reader
) -> DecodeOut:
    return DecodeOut.of(await svc.get_decode(decode_id))


@router.get(
    "/clips/{clip_id}",
    summary="Audio around a decoded header (WAV)",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}, 404: _ERR},
)
async def get_clip(
    clip_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], svc: Svc, _: Reader
) -> FileResponse:
    path = await svc.clip_path(clip_id)
    return FileResponse(path, media_type="audio/wav", filename=f"eas-clip-{clip_id}.wav")


@router.post(
    "/decode",
    summary="Decode an uploaded WAV or FLAC file",
    responses={
        400: error("the multipart body is malformed"),
        413: error("over the upload size limit"),
        415: error("not WAV or FLAC audio"),
        422: unprocessable("the audio is empty or sampled below 6000 Hz"),
    },
)
async def decode_upload(
    request: Request,
    svc: Svc,
    principal: Writer,
    file: Annotated[UploadFile, File(description="WAV or FLAC audio")],
) -> UploadDecoded:
    limit = svc.settings.upload_max_bytes
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the upload is {file.size} bytes; the limit is {limit} bytes")
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the upload is over the limit of {limit} bytes")
    # Decoding is CPU work (tens of ms per minute of audio): keep it off the event loop.
    decoded = await asyncio.to_thread(svc.decode_upload, data)
    await audit_request(
        request,
        "upload.decode",
        principal,
        target="upload",
        detail={
            "file": (file.filename or "")[:120],
            "bytes": len(data),
            "headers": sum(1 for e in decoded["events"] if e.get("type") == "header"),
        },
    )
    return UploadDecoded(**decoded)
