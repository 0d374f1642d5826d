"""HTTP endpoints under /api/eas-monitor. Thin: validate, call the service, answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from eas_monitor.inputs import InputConfig
from eas_monitor.repository import DecodeFilter
from eas_monitor.service import InputView, MonitorService
from eas_schemas.monitor_events import (
    SAME_ATTENTION_TONE_TYPE,
    SAME_EOM_TYPE,
    SAME_HEADER_TYPE,
    InputKind,
    MonitorStatus,
)
from eas_schemas.same_codes import EVENT_CODES
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES, TooLarge, error, unprocessable

router = APIRouter(prefix="/api/eas-monitor", tags=["eas-monitor"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.MONITOR_READ))]
Writer = Annotated[Principal, Depends(require(Permission.MONITOR_WRITE))]
InputId = Annotated[int, Path(ge=1, le=2**62, description="input id")]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$"


def _service(request: Request) -> MonitorService:
    svc: MonitorService = request.app.state.monitor_service
    return svc


Svc = Annotated[MonitorService, Depends(_service)]


def _usable_config(config: InputConfig | None) -> InputConfig | None:
    # A path with a NUL cannot even be looked up (the OS call raises): say so as a 422.
    path = getattr(config, "path", None)
    if isinstance(path, str) and any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ValueError("path must not contain control characters (such as NUL)")
    return config


class InputCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description="unique, 1-64 characters")
    config: InputConfig

    _config = field_validator("config")(_usable_config)


class InputUpdate(BaseModel):
    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    config: InputConfig | None = None

    _config = field_validator("config")(_usable_config)

    @model_validator(mode="after")
    def _something(self) -> InputUpdate:
        if self.name is None and self.config is None:
            raise ValueError("give a new name, a new config, or both")
        return self


class InputOut(BaseModel):
    id: int
    name: str
    kind: InputKind
    config: InputConfig
    wanted_running: bool = Field(description="the supervisor keeps it running")
    created_at: datetime
    updated_at: datetime
    status: MonitorStatus

    @classmethod
    def of(cls, view: InputView) -> InputOut:
        return cls(
            id=view.id,
            name=view.name,
            kind=view.kind,
            config=view.config,
            wanted_running=view.wanted_running,
            created_at=view.created_at,
            updated_at=view.updated_at,
            status=view.status,
        )


class DecodeType(StrEnum):
    HEADER = SAME_HEADER_TYPE
    EOM = SAME_EOM_TYPE
    ATTENTION_TONE = SAME_ATTENTION_TONE_TYPE


class DecodeOut(BaseModel):
    id: int
    event_id: str = Field(description="the bus event's envelope id")
    type: DecodeType
    text: str
    event_code: str | None
    confidence: float
    heard_at: datetime
    input_ids: list[int]
    clip_id: str | None
    clip_url: str | None
    data: dict[str, Any] = Field(description="the event payload as published")

    @classmethod
    def of(cls, row: dict[str, Any]) -> DecodeOut:
        clip = row["clip_id"]
        return cls(**row, clip_url=f"/api/eas-monitor/clips/{clip}" if clip else None)


class DecodePage(BaseModel):
    items: list[DecodeOut]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")


class UploadDecoded(BaseModel):
    format: str
    rate: int
    channels: int
    duration_s: float
    events: list[dict[str, Any]] = Field(description="header / attention / eom, in order")
    stats: dict[str, Any]


def _utc_time(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("time is outside the representable range once converted to UTC") from exc


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc_time)]


def _event_code(code: str) -> str:
    if code not in EVENT_CODES:
        raise ValueError(f"{code!r} is not a known SAME event code, e.g. RWT, TOR, SVR")
    return code


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
async def create_input(body: InputCreate, svc: Svc, _: Writer) -> InputOut:
    return InputOut.of(await svc.create_input(body.name, body.config))


@router.get("/inputs/{input_id}", summary="One input", responses={404: _ERR})
async def get_input(input_id: InputId, svc: Svc, _: Reader) -> InputOut:
    return InputOut.of(await svc.get_input(input_id))


@router.patch(
    "/inputs/{input_id}",
    summary="Rename or reconfigure an input (a running one restarts with it)",
    responses={404: _ERR, 409: _ERR, 422: unprocessable("the configuration cannot work here")},
)
async def update_input(input_id: InputId, body: InputUpdate, svc: Svc, _: Writer) -> InputOut:
    return InputOut.of(await svc.update_input(input_id, body.name, body.config))


@router.delete(
    "/inputs/{input_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop and remove an input (its decode history stays)",
    responses={404: _ERR},
)
async def delete_input(input_id: InputId, svc: Svc, _: Writer) -> Response:
    await svc.delete_input(input_id)
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
async def start_input(input_id: InputId, svc: Svc, _: Writer) -> InputOut:
    return InputOut.of(await svc.start_input(input_id))


@router.post(
    "/inputs/{input_id}/stop",
    summary="Stop an input and answer once its worker is confirmed gone",
    responses={404: _ERR, 503: _ERR, 504: _ERR},
)
async def stop_input(input_id: InputId, svc: Svc, _: Writer) -> InputOut:
    return InputOut.of(await svc.stop_input(input_id))


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
        str | None, Query(pattern=r"^[A-Z]{3}$"), AfterValidator(lambda v: v and _event_code(v))
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
    svc: Svc,
    _: Writer,
    file: Annotated[UploadFile, File(description="WAV or FLAC audio")],
) -> UploadDecoded:
    limit = svc.settings.upload_max_bytes
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the upload is {file.size} bytes; the limit is {limit} bytes")
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the upload is over the limit of {limit} bytes")
    # Decoding is CPU work (tens of ms per minute of audio): keep it off the event loop.
    return UploadDecoded(**await asyncio.to_thread(svc.decode_upload, data))
