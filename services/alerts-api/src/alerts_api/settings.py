"""alerts-api settings: env prefix ALERTS_API_, falling back to station-wide EAS_ variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from eas_schemas.same_codes import validate_location_code, validate_ugc_code
from servicekit.settings import StoreSettings


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class AlertsApiSettings(StoreSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTS_API_")

    service_name: str = "alerts-api"
    station_same_codes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="SAME codes (PSSCCC) this station serves"
    )
    station_ugc_codes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="NWS UGC zones/counties this station serves"
    )
    consumer_concurrency: int = Field(default=16, ge=1, le=256)
    consumer_batch: int = Field(default=128, ge=1, le=1000)
    consumer_min_idle_ms: int = Field(default=30_000, ge=100)
    consumer_max_deliveries: int = Field(default=5, ge=1)
    expiry_interval_s: float = Field(default=5.0, gt=0)
    missing_expires_h: float = Field(
        default=24.0,
        gt=0,
        le=24 * 14,
        description="an alert whose CAP gives no expires (CAP 1.2 makes it optional) is "
        "expired this long after it takes effect (effective, else sent); see "
        "docs/architecture.md",
    )
    run_consumer: bool = True
    follow_station_settings: bool = Field(
        default=True,
        description="apply station-api's settings (station codes) on every settings.changed",
    )
    settings_sync_timeout_s: float = Field(default=3.0, gt=0)
    page_size_max: int = Field(default=500, ge=1)
    read_cache: bool = Field(
        default=True,
        description="answer repeated GETs of /api/alerts* from memory (PostgreSQL only)",
    )
    # The freshness bound: a cached page lags the newest commit by at most this.
    read_cache_max_lag_s: float = Field(default=0.08, gt=0, le=0.1)
    read_cache_entries: int = Field(default=512, ge=1)
    fast_reads: bool = Field(
        default=True,
        description="answer misses of GET /api/alerts/{id} and of the plain GET /api/alerts page "
        "(status, limit, cursor) inside the read cache layer, over a small asyncpg pool of its "
        "own, instead of through FastAPI (PostgreSQL only; the same answers: "
        "alerts_api.fast_reads)",
    )
    fast_reads_pool_size: int = Field(
        default=8, ge=1, description="connections of the fast reads' pool (per process)"
    )

    @field_validator("station_same_codes", mode="before")
    @classmethod
    def _split_same(cls, value: object) -> object:
        return _split(value)

    @field_validator("station_ugc_codes", mode="before")
    @classmethod
    def _split_ugc(cls, value: object) -> object:
        return _split(value)

    @field_validator("station_same_codes")
    @classmethod
    def _valid_same(cls, codes: list[str]) -> list[str]:
        return [validate_location_code(c) for c in codes]

    @field_validator("station_ugc_codes")
    @classmethod
    def _valid_ugc(cls, codes: list[str]) -> list[str]:
        return [validate_ugc_code(c) for c in codes]
