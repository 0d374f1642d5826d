"""What the supervisor hands a worker (on stdin) and what the worker reports (stdout lines).

The worker prints one JSON object per line:

- ``{"t": "state", "state": "connecting" | "running" | "finished", "error": ...}``
- ``{"t": "progress", "samples_total": ..., "samples_per_s": ..., "signal": ..., ...}`` every
  progress interval, whether or not audio flows, so the supervisor also learns errors;
- ``{"t": "fatal", "error": ...}`` before exiting with :data:`EXIT_CONFIG`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from eas_monitor.inputs import InputConfig
from eas_monitor.settings import EasMonitorSettings

EXIT_CONFIG = 78  # EX_CONFIG: cannot work as configured; the supervisor does not retry


class WorkerSettings(BaseModel):
    redis_url: str
    bus_namespace: str
    instance: str
    clips_dir: str
    dedup_window_s: float
    aggregation_window_s: float
    takeover_grace_s: float
    eom_window_s: float
    progress_interval_s: float
    ffmpeg: str
    stream_rate: int
    reconnect_backoff_s: float
    reconnect_backoff_max_s: float
    chunk_s: float
    level_interval_s: float
    level_change_db: float
    silence_dbfs: float
    clip_dbfs: float
    clip_pre_s: float
    clip_post_s: float
    clip_max_s: float

    @classmethod
    def from_settings(cls, s: EasMonitorSettings) -> WorkerSettings:
        values: dict[str, Any] = {
            name: getattr(s, name) for name in cls.model_fields if name != "clips_dir"
        }
        return cls(clips_dir=str(s.clips_dir.resolve()), **values)


class WorkerSpec(BaseModel):
    input_id: int
    name: str
    config: InputConfig
    settings: WorkerSettings
