"""The station's settings as audio-control last applied them (followed live)."""

from __future__ import annotations

from dataclasses import dataclass, field

from eas_schemas.station_settings import StationSettings


@dataclass
class StationView:
    """Defaults until station-api's document arrives: relay off, so nothing airs."""

    settings: StationSettings = field(default_factory=StationSettings)
    version: int = 0

    def apply(self, version: int, settings: StationSettings) -> None:
        self.settings, self.version = settings, version
