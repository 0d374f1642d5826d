"""ws-broadcaster settings: ``WS_BROADCASTER_<FIELD>``, falling back to the station's ``EAS_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class WsBroadcasterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WS_BROADCASTER_", extra="ignore", env_file=None)

    host: str = "0.0.0.0"
    port: int = Field(default=8002, ge=0, le=65535)
    queue_size: int = Field(
        default=1000, gt=0, description="events held per client before it is cut off as too slow"
    )
    queue_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="bytes written but not yet taken by a client before it is cut off (4008)",
    )
    ping_interval_s: float = Field(default=20.0, gt=0)
    ping_timeout_s: float = Field(default=20.0, gt=0)
    max_frame_bytes: int = Field(default=65_536, gt=0, description="largest client frame (1009)")
    auth_timeout_s: float = Field(default=5.0, gt=0, description="wait for an `auth` message")
    replay_limit: int = Field(
        default=1000, gt=0, description="most events replayed per topic before resync_required"
    )
    close_timeout_s: float = Field(
        default=10.0, gt=0, description="wait for a closing client's handshake, then drop it"
    )
    read_batch: int = Field(default=500, gt=0, description="XREAD COUNT per stream")
    coalesce_flush_s: float = Field(
        default=0.1, gt=0, description="how often held latest-value (levels) events are retried"
    )
    use_uvloop: bool = Field(default=True, description="standalone server: uvloop if installed")
