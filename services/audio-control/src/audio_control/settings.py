"""audio-control settings: env prefix AUDIO_CONTROL_, falling back to station-wide EAS_ ones.

What the station relays and how messages sound (relay rules, callsign, area, TTS engine)
are station settings (station-api's document, followed live); these are the process's own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import StoreSettings


class AudioControlSettings(StoreSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIO_CONTROL_")

    service_name: str = "audio-control"
    run_consumers: bool = Field(
        default=True, description="decide on alert.* and same.header (off: API only)"
    )
    run_composer: bool = Field(default=True, description="compose the messages of decisions")
    follow_station_settings: bool = True
    settings_sync_timeout_s: float = Field(default=3.0, gt=0)
    consumer_min_idle_ms: int = Field(default=30_000, ge=100)
    consumer_max_deliveries: int = Field(default=5, ge=1)
    sweep_interval_s: float = Field(
        default=1.0, gt=0, description="how often timed-out confirmations are settled"
    )
    composer_interval_s: float = Field(
        default=2.0, gt=0, description="how often decisions waiting for a message are looked at"
    )
    origination_max_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="largest narration upload accepted"
    )
    tts_timeout_s: float = Field(default=30.0, gt=0)
    log_prune_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="how often station log entries past retention.station_log_days are pruned",
    )
    # ---- playout
    run_playout: bool = Field(
        default=True,
        description="supervise a playout worker process beside the API (the one-machine "
        "default); off where the worker runs as its own process (`audio-control playout`)",
    )
    aired_dir: Path = Field(
        default=Path("var/audio-control/aired"),
        description="the folder of the WAV output created when no output is configured",
    )
    lease_ttl_s: float = Field(
        default=5.0, ge=1, le=60, description="an output's lease: a second worker waits for it"
    )
    playout_block_s: float = Field(default=0.1, gt=0, le=1, description="audio per write")
    requeue_interrupted: bool = Field(
        default=True, description="a message an EAN interrupted airs again afterwards"
    )
    test_schedule_interval_s: float = Field(
        default=30.0, gt=0, description="how often the test schedule is looked at"
    )
    command_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="how long a command waits for the worker"
    )
