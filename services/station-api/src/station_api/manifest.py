"""station-api as the station runs and tests it (read through ``servicekit.manifest``)."""

from __future__ import annotations

from typing import Any

from servicekit.manifest import ServiceManifest, TestResources
from station_api.app import asyncapi_document, create_app
from station_api.migrate import upgrade_url
from station_api.settings import StationApiSettings


def _test_settings(resources: TestResources) -> dict[str, Any]:
    key_file = resources.tmp_path / "station-signing.pem"
    key_file.write_text(resources.private_key_pem)
    return {
        "signing_key_file": key_file,
        "chain_key_file": resources.tmp_path / "station-chain.pem",
        "fleet_check_interval_s": 0.1,
        "outbox_interval_s": 0.2,
        # The production Argon2 cost (64 MiB, ~0.15 s) would dominate every test's time.
        "password_memory_kib": 1024,
        "password_time_cost": 1,
    }


MANIFEST = ServiceManifest(
    name="station-api",
    summary="settings, users and roles, login, audit log, fleet health",
    prefixes=("/api/settings", "/api/auth", "/api/users", "/api/system", "/api/audit"),
    settings=StationApiSettings,
    create_app=create_app,
    default_port=8005,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
    test_settings=_test_settings,
    order=20,
)
