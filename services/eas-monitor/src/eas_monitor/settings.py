"""eas-monitor settings: env prefix EAS_MONITOR_, falling back to station-wide EAS_ variables."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import StoreSettings


class EasMonitorSettings(StoreSettings):
    model_config = SettingsConfigDict(env_prefix="EAS_MONITOR_")

    service_name: str = "eas-monitor"
    db_pool_size: int = Field(default=5, ge=1)
    data_dir: Path = Field(default=Path("var/eas-monitor"), description="clips, worker specs")

    # de-duplication of same.* events across inputs and repeats (see README)
    dedup_window_s: float = Field(
        default=180.0, gt=0, description="the same header again within this is one transmission"
    )
    aggregation_window_s: float = Field(
        default=1.0,
        gt=0,
        le=1.5,
        description="after the first decode, wait this long for other inputs before publishing",
    )
    takeover_grace_s: float = Field(
        default=1.0, gt=0, description="other hearers publish if the first one has not by then"
    )
    eom_window_s: float = Field(default=10.0, gt=0, description="EOM/attention de-dup window")

    # supervision of worker processes
    run_supervisor: bool = True
    stall_timeout_s: float = Field(default=10.0, gt=0, description="no samples this long: stalled")
    startup_grace_s: float = Field(
        default=30.0, gt=0, description="a new worker may take this long to report anything"
    )
    restart_backoff_s: float = Field(default=1.0, gt=0, description="first restart delay")
    restart_backoff_max_s: float = Field(default=60.0, gt=0)
    healthy_reset_s: float = Field(
        default=60.0, gt=0, description="running this long resets the restart backoff"
    )
    start_timeout_s: float = Field(default=20.0, gt=0, description="start answers within this")
    stop_timeout_s: float = Field(default=5.0, gt=0, description="then the worker is killed")
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    progress_interval_s: float = Field(default=1.0, gt=0, description="worker -> supervisor")
    status_refresh_s: float = Field(
        default=30.0, gt=0, description="re-send unchanged monitor.status this often"
    )
    python_executable: str = Field(default=sys.executable)
    input_lease_ttl_s: float = Field(
        default=5.0,
        ge=1,
        le=60,
        description="an input's lease in Redis: a second eas-monitor waits this long after "
        "the holder's last renewal before it takes the input over",
    )

    # capture
    ffmpeg: str = "ffmpeg"
    stream_rate: int = Field(default=22050, ge=8000, le=48000, description="ffmpeg output rate")
    reconnect_backoff_s: float = Field(default=1.0, gt=0)
    reconnect_backoff_max_s: float = Field(default=30.0, gt=0)
    chunk_s: float = Field(default=0.1, gt=0, le=1.0, description="audio read size")

    # levels on audio.metrics
    level_interval_s: float = Field(
        default=0.25, ge=0.05, description="at most one level event per input this often"
    )
    level_change_db: float = Field(default=1.0, gt=0, description="smaller changes are not sent")
    silence_dbfs: float = Field(default=-50.0, le=0)
    clip_dbfs: float = Field(default=-0.1, le=0, description="peaks at or above: clipping")

    # clips around decoded headers
    clip_pre_s: float = Field(default=1.0, ge=0)
    clip_post_s: float = Field(default=0.5, ge=0)
    clip_max_s: float = Field(default=15.0, gt=0)
    clip_retention_days: float = Field(default=30.0, gt=0)
    clip_max_count: int = Field(default=1000, ge=1)
    retention_interval_s: float = Field(default=600.0, gt=0)

    # API
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    upload_max_samples: int = Field(
        default=48_000 * 2 * 600,
        gt=0,
        description="frames x channels an upload may hold (default: 10 min of 48 kHz stereo); "
        "compressed silence makes a small file declare hours",
    )
    max_request_bytes: int = Field(default=21 * 1024 * 1024, gt=0)
    page_size_max: int = Field(default=200, ge=1)
    run_consumer: bool = True
    consumer_min_idle_ms: int = Field(default=30_000, ge=100)

    @property
    def clips_dir(self) -> Path:
        return self.data_dir / "clips"

    @property
    def specs_dir(self) -> Path:
        return self.data_dir / "workers"
