from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from eas_monitor.app import create_app
from eas_monitor.migrate import upgrade_url
from eas_monitor.settings import EasMonitorSettings
from eas_same import generate, write_wav
from servicekit.auth.permissions import Role

RWT = "ZCZC-EAS-RWT-042001-042071-042133+0300-3040858-WJON/TV -"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def settings(
    database_url: str, redis_url: str, bus_namespace: str, keypair: tuple[str, str], tmp_path: Path
) -> EasMonitorSettings:
    await upgrade_url(database_url)
    return EasMonitorSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        auth_public_key=keypair[1],
        data_dir=tmp_path / "data",
        instance="test-1",
        heartbeat_interval_s=0.5,
        reconcile_interval_s=0.5,
        progress_interval_s=0.2,
        start_timeout_s=30.0,
        stop_timeout_s=5.0,
        restart_backoff_s=0.2,
        restart_backoff_max_s=1.0,
        consumer_min_idle_ms=500,
        aggregation_window_s=1.5,
    )


@pytest.fixture
def sample_wav(tmp_path: Path) -> Path:
    """A complete EAS message (header x3, attention tone, EOM x3) at 22.05 kHz."""
    path = tmp_path / "rwt.wav"
    write_wav(path, generate(RWT, 22050, attention=2.0), 22050)
    return path


@pytest.fixture
async def client(
    settings: EasMonitorSettings, token: Callable[..., str]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://monitor", timeout=60
        ) as http:
            http.app = app  # type: ignore[attr-defined]
            http.headers.update(auth(token(Role.OPERATOR)))
            yield http
