"""HTTP request and response models of /api/eas-monitor, and the checks their fields share."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from eas_monitor.inputs import InputConfig, StreamConfig
from eas_monitor.service import InputView
from eas_schemas.monitor_events import (
    SAME_ATTENTION_TONE_TYPE,
    SAME_EOM_TYPE,
    SAME_HEADER_TYPE,
    InputKind,
    MonitorStatus,
)
from eas_schemas.same_codes import EVENT_CODES

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$"


def _usable_config(config: InputConfig | None) -> InputConfig | None:
    # A path with a NUL cannot even be looked up (the OS call raises): say so as a 422.
    path = getattr(config, "path", None)
    if isinstance(path, str) and any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ValueError("path must not contain control characters (such as NUL)")
    if isinstance(config, StreamConfig):
        problem = config.literal_address_problem()
        if problem:
            raise ValueError(problem)
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


def known_event_code(code: str) -> str:
    if code not in EVENT_CODES:
        raise ValueError(f"{code!r} is not a known SAME event code, e.g. RWT, TOR, SVR")
    return code
