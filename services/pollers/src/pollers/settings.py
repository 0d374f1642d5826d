"""Pollers settings: ``POLLERS_*`` variables first, then the station-wide ``EAS_*`` ones.

Every field is read from ``POLLERS_<NAME>`` and, when that is absent, from ``EAS_<NAME>``, so
``EAS_REDIS_URL`` / ``EAS_BUS_NAMESPACE`` (station-wide) and ``EAS_CAP_FOLDER`` work as well as
their ``POLLERS_`` forms. Lists accept comma-separated text or JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from eas_schemas.events import FeedKind
from pollers.cap_xml import DEFAULT_MAX_DOCUMENT_BYTES
from pollers.feeds.nws_api import DEFAULT_NWS_BASE_URL
from servicekit.settings import ServiceSettings

POLLED_KINDS = (FeedKind.NWS, FeedKind.IPAWS, FeedKind.CAP_FOLDER, FeedKind.CAP_URL)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class PollersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="POLLERS_", extra="ignore", env_file=None)

    feeds: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="feeds to run (nws, ipaws, cap-folder, cap-url); empty = every configured one",
    )
    # NWS API
    nws_zones: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="NWS zone/county UGC codes, e.g. OHZ014,OHC035"
    )
    nws_areas: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="state/marine area codes, e.g. OH,LE"
    )
    nws_contact: str = Field(
        default="", description="contact (e-mail or URL) sent in the User-Agent; required"
    )
    nws_base_url: str = DEFAULT_NWS_BASE_URL
    nws_interval_s: float = Field(default=60.0, gt=0)
    nws_cap_xml_per_poll: int = Field(
        default=10,
        ge=0,
        le=100,
        description="at most this many per-alert CAP XML requests per poll, for alerts whose "
        "JSON is unusable (0: never ask)",
    )
    nws_cap_xml_interval_s: float = Field(
        default=1.0, ge=0, le=60, description="seconds between two CAP XML requests"
    )
    # IPAWS-OPEN
    ipaws_url: str = Field(
        default="",
        description="IPAWS-OPEN feed base, e.g. https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest/eas",
    )
    ipaws_pin: SecretStr | None = Field(default=None, description="IPAWS-OPEN PIN (secret)")
    ipaws_pin_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["https://apps.fema.gov", "https://tdl.apps.fema.gov"],
        description="the only origins the PIN is sent to (comma-separated)",
    )
    allow_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="feed hosts allowed to resolve to private or loopback addresses "
        "(comma-separated); any other such host, or a redirect to one, is refused",
    )
    ipaws_interval_s: float = Field(default=60.0, gt=0)
    ipaws_overlap_s: float = Field(default=60.0, ge=0)
    ipaws_initial_lookback_s: float = Field(default=3600.0, ge=0)
    # CAP folder / URL
    cap_folder: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folder(s) of CAP *.xml files, comma-separated"
    )
    cap_folder_recursive: bool = False
    cap_folder_interval_s: float = Field(default=10.0, gt=0)
    cap_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cap_url_interval_s: float = Field(default=60.0, gt=0)
    cap_url_max_entries: int = Field(default=100, gt=0)
    # HTTP and limits
    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    http_read_timeout_s: float = Field(default=20.0, gt=0)
    http_deadline_s: float = Field(default=60.0, gt=0, description="whole response, per request")
    retry_max_attempts: int = Field(default=4, ge=1)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_cap_s: float = Field(default=30.0, gt=0)
    retry_after_max_s: float = Field(default=120.0, ge=0)
    max_document_bytes: int = Field(default=DEFAULT_MAX_DOCUMENT_BYTES, gt=0)
    max_response_bytes: int = Field(default=16 * 1_048_576, gt=0)
    # State and health
    seen_ttl_s: int = Field(default=4 * 24 * 3600, gt=0)
    redis_timeout_s: float = Field(default=5.0, gt=0)
    health_port: int = Field(default=0, ge=0, le=65535, description="0 = no /healthz server")
    health_host: str = "127.0.0.1"
    # Station settings (station-api's document in Redis) applied without a restart.
    follow_station_settings: bool = Field(
        default=True, description="apply station-api's feed settings on every settings.changed"
    )

    @field_validator(
        "feeds",
        "nws_zones",
        "nws_areas",
        "cap_folder",
        "cap_urls",
        "ipaws_pin_origins",
        "allow_private_hosts",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("feeds")
    @classmethod
    def _known_feeds(cls, value: list[str]) -> list[str]:
        known = {k.value for k in POLLED_KINDS}
        wrong = [v for v in value if v not in known]
        if wrong:
            raise ValueError(f"unknown feed(s) {wrong}; choose from {sorted(known)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        station_wide = EnvSettingsSource(settings_cls, env_prefix="EAS_")
        return init_settings, env_settings, station_wide, dotenv_settings, file_secret_settings

    def enabled_feeds(self) -> list[FeedKind]:
        """The feeds asked for, or (none asked for) every feed that has its settings."""
        if self.feeds:
            return [FeedKind(f) for f in dict.fromkeys(self.feeds)]
        enabled = []
        if self.nws_zones or self.nws_areas:
            enabled.append(FeedKind.NWS)
        if self.ipaws_url:
            enabled.append(FeedKind.IPAWS)
        if self.cap_folder:
            enabled.append(FeedKind.CAP_FOLDER)
        if self.cap_urls:
            enabled.append(FeedKind.CAP_URL)
        return enabled

    def pin(self) -> str | None:
        return self.ipaws_pin.get_secret_value() if self.ipaws_pin else None
