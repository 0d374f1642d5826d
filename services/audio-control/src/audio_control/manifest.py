"""audio-control as the station runs and tests it (read through ``servicekit.manifest``)."""

from __future__ import annotations

from typing import Any

from audio_control.app import asyncapi_document, create_app
from audio_control.migrate import upgrade_url
from audio_control.settings import AudioControlSettings
from servicekit.manifest import ServiceManifest, TestResources


def _test_settings(resources: TestResources) -> dict[str, Any]:
    return {
        "auth_public_key": resources.public_key_pem,
        "outbox_interval_s": 0.2,
        "sweep_interval_s": 0.2,
        "composer_interval_s": 0.2,
        "settings_sync_timeout_s": 1.0,
        # The playout worker is a process of its own; tests that need it start it.
        "run_playout": False,
        "aired_dir": resources.tmp_path / "aired",
        "chain_key_file": resources.tmp_path / "chain.pem",
    }


MANIFEST = ServiceManifest(
    name="audio-control",
    summary="relay decisions, EAS message generation and origination, /api/audio",
    prefixes=("/api/audio",),
    settings=AudioControlSettings,
    create_app=create_app,
    default_port=8004,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
    test_settings=_test_settings,
    order=50,
)
