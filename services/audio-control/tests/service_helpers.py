"""What the service-level tests share: the station they run as, and how it is set."""

from __future__ import annotations

from typing import Any

from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings
from eas_testkit.factories import current_settings_body

CALLSIGN = "WXYZ/FM"
AREA = ["039035"]


def station(**relay: Any) -> StationSettings:
    doc: dict[str, Any] = {
        "identity": {"name": "Test Station", "callsign": CALLSIGN, "timezone": "America/New_York"},
        "location": {"same_codes": AREA},
        "relay": {"enabled": True, "events": ["TOR", "SVR", "RWT", "RMT"], **relay},
        "messages": {"attention_signal_s": 8},
    }
    return StationSettings.model_validate(doc)


async def set_station(aredis: Any, namespace: str, doc: StationSettings, version: int = 1) -> None:
    await aredis.set(f"{namespace}:{CURRENT_SETTINGS_KEY}", current_settings_body(version, doc))
