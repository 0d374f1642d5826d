from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from station_api.app import create_app
from station_api.migrate import upgrade_url
from station_api.settings import StationApiSettings

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture
def key_file(tmp_path: Path, keypair: tuple[str, str]) -> Path:
    path = tmp_path / "signing.pem"
    path.write_text(keypair[0])
    return path


@pytest.fixture
async def settings(
    database_url: str, redis_url: str, bus_namespace: str, key_file: Path
) -> StationApiSettings:
    await upgrade_url(database_url)
    return StationApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        signing_key_file=key_file,
        chain_key_file=key_file.with_name("chain.pem"),
        instance="test-1",
        heartbeat_interval_s=0.5,
        fleet_check_interval_s=0.1,
        outbox_interval_s=0.2,
        # Cheap hashes keep the suite fast; one test checks the production parameters.
        password_memory_kib=1024,
        password_time_cost=1,
    )


@dataclass
class Session:
    username: str
    role: str
    access_token: str
    refresh_token: str
    csrf_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class StationClient(httpx.AsyncClient):
    app: Any

    async def login(self, username: str, password: str, keep_cookies: bool = False) -> Session:
        answer = await self.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if not keep_cookies:
            # Bearer tests must not be authenticated by the cookie jar behind their back.
            self.cookies.clear()
        return Session(
            body["username"],
            body["role"],
            body["access_token"],
            body["refresh_token"],
            body["csrf_token"],
        )

    async def make_user(self, admin: Session, username: str, role: str) -> Session:
        password = f"{username}-password-123"
        answer = await self.post(
            "/api/users",
            json={"username": username, "password": password, "role": role},
            headers=admin.headers,
        )
        assert answer.status_code == 201, answer.text
        return await self.login(username, password)


@pytest.fixture
async def client(settings: StationApiSettings) -> AsyncIterator[StationClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with StationClient(transport=transport, base_url="http://station") as http:
            http.app = app
            yield http


@pytest.fixture
async def admin(client: StationClient) -> Session:
    token = client.app.state.setup_token
    answer = await client.post(
        "/api/auth/setup",
        json={"setup_token": token, "username": ADMIN, "password": ADMIN_PASSWORD},
    )
    assert answer.status_code == 201, answer.text
    return await client.login(ADMIN, ADMIN_PASSWORD)


@pytest.fixture
async def operator(client: StationClient, admin: Session) -> Session:
    return await client.make_user(admin, "oper-1", "operator")


@pytest.fixture
async def viewer(client: StationClient, admin: Session) -> Session:
    return await client.make_user(admin, "view-1", "viewer")
