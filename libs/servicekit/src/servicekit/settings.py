"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from servicekit.proxy import parse_networks


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ServiceSettings(BaseSettings):
    """Common knobs. A service's prefixed variable wins, then the station-wide ``EAS_`` one.

    Subclasses set their own ``env_prefix`` (``ALERTS_API_``, ``POLLERS_`` ...); any field may
    also be given once for the whole station as ``EAS_<FIELD>`` (e.g. ``EAS_REDIS_URL``).
    """

    model_config = SettingsConfigDict(env_prefix="EAS_", extra="ignore", env_file=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        station_env = EnvSettingsSource(settings_cls, env_prefix="EAS_")
        return (init_settings, env_settings, station_env, dotenv_settings, file_secret_settings)

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis (Streams bus)")
    bus_namespace: str = Field(
        default="", description="prefix for every stream key, so stations can share one Redis"
    )
    instance: str = Field(default_factory=default_instance)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"
    log_json: bool = True
    # Auth: tokens are verified locally with the station's public key (Ed25519).
    auth_public_key_file: Path | None = None
    auth_public_key: str | None = Field(default=None, description="PEM text, instead of a file")
    anonymous_read: bool = Field(
        default=False, description="let anyone read non-private data without a token"
    )
    max_request_bytes: int = Field(default=1_048_576, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or CIDR networks of the reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed (comma-separated); empty: none, the socket's "
        "peer is the client",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)  # the JSON form pydantic-settings uses for lists
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value


class StoreSettings(ServiceSettings):
    """A service that owns tables: where its database is and how many connections it keeps."""

    database_url: str = Field(
        default="sqlite+aiosqlite:///var/eas-station.db",
        description="PostgreSQL (postgresql://...) or SQLite (sqlite:///path)",
    )
    db_pool_size: int = Field(default=10, ge=1)
    outbox_interval_s: float = Field(
        default=2.0, gt=0, description="how often events left unpublished are sent again"
    )
    chain_key_file: Path = Field(
        default=Path("var/keys/chain.pem"),
        description="Ed25519 key that signs the service's tamper-evident logs (station log, "
        "audit log); kept outside the database, made (0600) on first start",
    )
