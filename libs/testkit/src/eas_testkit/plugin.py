"""pytest fixtures: real Redis and PostgreSQL, each test isolated.

- ``bus_namespace``: a unique stream prefix per test, so tests never see each other's events.
- ``database_url``: a fresh PostgreSQL database per test (dropped afterwards).
- ``keypair`` (the station's Ed25519 private and public PEM, one per session) and ``token``
  (mints an access token for a role with it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis

from eas_testkit.servers import Servers
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair


@pytest.fixture(scope="session")
def test_servers() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def redis_url(test_servers: Servers) -> str:
    return test_servers.redis_url()


@pytest.fixture(scope="session")
def postgres_admin_url(test_servers: Servers) -> str:
    return test_servers.database_url()


@pytest.fixture
def bus_namespace(redis_url: str) -> Iterator[str]:
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"eas_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_admin_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(postgres_admin_url, name)
    asyncio.run(_admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def keypair() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def token(keypair: tuple[str, str]) -> Callable[..., str]:
    """``token(role, ttl_s=600, now=None)``: an access token for ``test-<role>``."""
    signer = TokenSigner(keypair[0])

    def mint(role: Role = Role.VIEWER, ttl_s: int = 600, now: float | None = None) -> str:
        return signer.mint(f"test-{role.value}", role, ttl_s=ttl_s, now=now)

    return mint
