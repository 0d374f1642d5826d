"""alerts-api as the station runs and tests it (read through ``servicekit.manifest``)."""

from __future__ import annotations

from typing import Any

from alerts_api.app import asyncapi_document, create_app
from alerts_api.migrate import upgrade_url
from alerts_api.settings import AlertsApiSettings
from servicekit.manifest import ServiceManifest, TestResources


def _test_settings(resources: TestResources) -> dict[str, Any]:
    return {
        "auth_public_key": resources.public_key_pem,
        "station_same_codes": ["039035"],
        "station_ugc_codes": ["OHZ014"],
        "outbox_interval_s": 0.2,
    }


MANIFEST = ServiceManifest(
    name="alerts-api",
    summary="the CAP alert store: ingest consumer, lifecycle events, /api/alerts",
    prefixes=("/api/alerts",),
    settings=AlertsApiSettings,
    create_app=create_app,
    default_port=8001,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
    test_settings=_test_settings,
    order=10,
)
