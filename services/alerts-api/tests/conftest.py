from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from alerts_api.app import create_app
from alerts_api.migrate import upgrade_url
from alerts_api.settings import AlertsApiSettings
from servicekit.auth.permissions import Role


@pytest.fixture
async def settings(
    database_url: str, redis_url: str, bus_namespace: str, keypair: tuple[str, str]
) -> AlertsApiSettings:
    await upgrade_url(database_url)
    return AlertsApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        auth_public_key=keypair[1],
        station_same_codes=["039035"],
        station_ugc_codes=["OHZ014"],
        consumer_min_idle_ms=300,
        expiry_interval_s=0.2,
        outbox_interval_s=0.2,
        heartbeat_interval_s=0.5,
        instance="test-1",
    )


@pytest.fixture
async def client(
    settings: AlertsApiSettings, token: Callable[..., str]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as http:
            http.app = app  # type: ignore[attr-defined]
            http.token = token(Role.VIEWER)  # type: ignore[attr-defined]
            yield http
