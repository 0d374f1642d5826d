"""eas-monitor as the station runs and tests it (read through ``servicekit.manifest``)."""

from __future__ import annotations

from typing import Any

from eas_monitor.app import asyncapi_document, create_app
from eas_monitor.migrate import upgrade_url
from eas_monitor.settings import EasMonitorSettings
from servicekit.manifest import ServiceManifest, TestResources


def _test_settings(resources: TestResources) -> dict[str, Any]:
    return {
        "auth_public_key": resources.public_key_pem,
        "data_dir": resources.tmp_path / "eas-monitor",
        "reconcile_interval_s": 0.5,
        "start_timeout_s": 5.0,
        "stop_timeout_s": 2.0,
        "restart_backoff_s": 0.2,
        "restart_backoff_max_s": 1.0,
    }


MANIFEST = ServiceManifest(
    name="eas-monitor",
    summary="monitored audio inputs, supervised SAME decoder workers, decode history",
    prefixes=("/api/eas-monitor",),
    settings=EasMonitorSettings,
    create_app=create_app,
    default_port=8003,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
    single_instance="it owns the monitored inputs: two copies would decode and publish twice",
    test_settings=_test_settings,
    order=40,
)
