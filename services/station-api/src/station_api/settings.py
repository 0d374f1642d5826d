"""station-api settings: env prefix STATION_API_, falling back to station-wide EAS_ variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import StoreSettings


class StationApiSettings(StoreSettings):
    model_config = SettingsConfigDict(env_prefix="STATION_API_", populate_by_name=True)

    service_name: str = "station-api"

    # The private half of the station's Ed25519 key: only station-api holds it.
    signing_key_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("STATION_API_SIGNING_KEY_FILE", "EAS_AUTH_SIGNING_KEY_FILE"),
    )
    # Short: a stolen access token is good for minutes; the browser refreshes silently.
    access_ttl_s: int = Field(default=300, ge=30, le=86_400)
    refresh_ttl_s: int = Field(default=14 * 86_400, ge=300, le=365 * 86_400)
    cookie_secure: bool | None = Field(
        default=None, description="Secure flag on cookies; unset = only when the request is https"
    )

    # Login throttling: failures counted per user name and per client address in a window.
    login_window_s: int = Field(default=900, ge=1)
    login_max_failures_user: int = Field(default=5, ge=1)
    login_max_failures_addr: int = Field(default=20, ge=1)

    setup_token_enabled: bool = Field(
        default=True, description="print a one-time setup token at start while no user exists"
    )

    # Fleet view: an instance silent for more than `down_after_intervals` of its own heartbeat
    # interval is down; instances down longer than `forget_after_s` leave the view.
    fleet_down_after_intervals: float = Field(default=3.0, gt=1)
    fleet_check_interval_s: float = Field(default=1.0, gt=0)
    fleet_rebuild_window_s: float = Field(default=3600.0, gt=0)
    fleet_forget_after_s: float = Field(default=3600.0, gt=0)

    host_disk_paths: list[str] = Field(default_factory=lambda: ["/"])
    audit_page_max: int = Field(default=500, ge=1)
    run_audit_consumer: bool = True
    # Argon2id cost; the defaults are pwdlib's (64 MiB, 3 passes).
    password_memory_kib: int = Field(default=65_536, ge=1024)
    password_time_cost: int = Field(default=3, ge=1)
