"""Request and response bodies of the HTTP API (no password hash or secret in any of them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from eas_schemas.station_settings import StationSettings
from eas_schemas.text import CleanText, OneLine
from servicekit.auth.permissions import Role

# ---- input checks: text PostgreSQL can store and compare (no NUL), times it can hold --------

# Version numbers are PostgreSQL integers.
VERSION_MAX = 2**31 - 1


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type name)
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str = Field(description="opaque; rotated on every use")
    refresh_expires_in: int
    csrf_token: str = Field(
        description="echo it in X-CSRF-Token on unsafe requests authenticated by the cookie"
    )
    username: str
    role: Role


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(
        default=None, max_length=200, description="omit to use the eas_refresh cookie"
    )


class SetupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    setup_token: OneLine = Field(min_length=1, max_length=200)
    username: OneLine = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None


class UserCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: OneLine = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.VIEWER


class UserUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(
        default=None, min_length=1, max_length=1024, description="reset the password"
    )


# ---- settings --------------------------------------------------------------------------------


class SettingsOut(BaseModel):
    version: int = Field(description="0 until the first save (defaults shown)")
    saved_at: datetime | None
    saved_by: str | None
    action: str | None
    comment: str | None
    settings: dict[str, Any] = Field(
        description="the document; each secret appears only as <name>_set: true|false"
    )
    location_names: dict[str, str] = Field(
        default_factory=dict, description="names of the configured SAME codes and UGC zones"
    )


class SettingsPutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    settings: StationSettings
    base_version: int | None = Field(
        default=None,
        ge=0,
        le=VERSION_MAX,
        description="refuse (409) if the current version is another one",
    )
    comment: CleanText | None = Field(default=None, max_length=500)


class SettingsPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patch: dict[str, Any] = Field(
        description="JSON merge patch (RFC 7396) over the current document; "
        "the result is validated as a whole"
    )
    base_version: int | None = Field(default=None, ge=0, le=VERSION_MAX)
    comment: CleanText | None = Field(default=None, max_length=500)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_version: int | None = Field(
        default=None,
        ge=1,
        le=VERSION_MAX,
        description="default: the version before the current one",
    )
    base_version: int | None = Field(default=None, ge=0, le=VERSION_MAX)


class SaveOut(BaseModel):
    changed: bool
    version: int
    previous_version: int
    sections: list[str]
    secrets_changed: list[str] = Field(description="paths of secrets set or cleared")


class VersionOut(BaseModel):
    version: int
    saved_at: datetime | None
    saved_by: str | None
    action: str | None
    sections: list[str]
    based_on: int | None
    comment: str | None


class VersionsOut(BaseModel):
    items: list[VersionOut]
    next_before: int | None = Field(description="pass as ?before= for the next page")


# ---- audit -----------------------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    id: int
    at: AwareDatetime
    service: str
    actor: str
    actor_role: str | None
    client_addr: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any]


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page")


# ---- system ----------------------------------------------------------------------------------


class InstanceOut(BaseModel):
    service: str
    instance: str
    version: str
    status: Literal["up", "down", "not-ready"]
    ready: bool
    started_at: AwareDatetime
    uptime_s: float
    last_heartbeat: AwareDatetime
    seconds_since_heartbeat: float
    interval_s: float
    down_since: AwareDatetime | None
    figures: dict[str, float]


class FleetOut(BaseModel):
    rebuilt: bool = Field(description="state rebuilt from the stream's history")
    total: int
    up: int
    down: int
    not_ready: int
    instances: list[InstanceOut]


class DependencyOut(BaseModel):
    name: str
    ok: bool
    latency_ms: float | None
    error: str | None


class DependenciesOut(BaseModel):
    database: DependencyOut
    redis: DependencyOut


class DiskOut(BaseModel):
    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent: float


class CpuOut(BaseModel):
    count: int
    percent: float
    load_average: list[float]


class MemoryOut(BaseModel):
    total_bytes: int
    available_bytes: int
    percent: float
    swap_total_bytes: int
    swap_percent: float


class HostOut(BaseModel):
    hostname: str
    platform: str
    python: str
    cpu: CpuOut
    memory: MemoryOut
    disks: list[DiskOut]
    boot_time: AwareDatetime
    uptime_s: float
