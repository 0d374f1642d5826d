"""Authentication and resume over both transports: the websockets server (A) and the ASGI
adapter under a real uvicorn (B), on real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import connect

from eas_schemas.streams import ALERT_EVENTS
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair
from servicekit.bus import AsyncBus, stream_key
from servicekit.embedded import free_port
from ws_broadcaster.asgi import create_asgi_app
from ws_broadcaster.hub import Hub
from ws_broadcaster.server import StandaloneServer
from ws_broadcaster.settings import WsBroadcasterSettings
from ws_broadcaster.testing import close_code, events, poll, publish, recv, recv_until, send
from ws_broadcaster.testing import subscribe as subscribe_topics

pytestmark = pytest.mark.integration

KEYS = generate_keypair()
SIGNER = TokenSigner(KEYS[0])
TRANSPORTS = ["websockets", "asgi"]


def token(role: Role = Role.VIEWER, ttl_s: int = 600) -> str:
    return SIGNER.mint("tester", role, ttl_s=ttl_s)


@dataclass
class Running:
    port: int
    hub: Hub

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws{query}"


async def _start(transport: str, settings: WsBroadcasterSettings) -> AsyncIterator[Running]:
    if transport == "websockets":
        async with StandaloneServer(settings) as server:
            yield Running(server.port, server.broadcaster.hub)
        return
    app = create_asgi_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await poll(lambda: server.started or task.done())
    assert server.started
    adapter = app.state.ws_broadcaster
    try:
        yield Running(port, adapter.broadcaster.hub)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
def start(redis_url: str, bus_namespace: str) -> Callable[..., Any]:
    def build(transport: str, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "bus_namespace": bus_namespace,
            "host": "127.0.0.1",
            "port": 0,
            "auth_public_key": KEYS[1],
            "heartbeat_interval_s": 3600.0,
            "auth_timeout_s": 1.0,
            "instance": f"t-{uuid.uuid4().hex[:6]}",
        }
        values.update(overrides)
        return asynccontextmanager(_start)(transport, WsBroadcasterSettings(**values))

    return build


@pytest.fixture
def bus(aredis: Any, bus_namespace: str) -> AsyncBus:
    return AsyncBus(aredis, bus_namespace)


def _signed(claims: dict[str, Any]) -> str:
    key = serialization.load_pem_private_key(KEYS[0].encode(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA")  # type: ignore[arg-type]


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "eas-station",
        "aud": "eas-station",
        "sub": "x",
        "role": "viewer",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(over)
    return base


def _tampered() -> str:
    head, body, sig = token().split(".")
    flipped = ("A" if sig[5] != "A" else "B").join((sig[:5], sig[6:]))
    return ".".join((head, body, flipped))


BAD_TOKENS = {
    "expired": lambda: SIGNER.mint("x", Role.VIEWER, ttl_s=60, now=time.time() - 3600),
    "tampered": _tampered,
    "garbage": lambda: "not-a-jwt",
    "other_key": lambda: TokenSigner(generate_keypair()[0]).mint("x", Role.ADMIN),
    "wrong_issuer": lambda: _signed(_claims(iss="someone-else")),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bad", sorted(BAD_TOKENS))
async def test_bad_tokens_close_with_4401(start: Any, transport: str, bad: str) -> None:
    async with start(transport) as srv, connect(srv.url(f"?token={BAD_TOKENS[bad]()}")) as ws:
        assert await close_code(ws) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_token_closes_with_4401_after_the_auth_timeout(start: Any, transport: str) -> None:
    async with start(transport) as srv, connect(srv.url()) as ws:
        assert await close_code(ws) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_role_closes_with_4403(start: Any, transport: str) -> None:
    forged = _signed(_claims(role="guest"))
    async with start(transport) as srv, connect(srv.url(f"?token={forged}")) as ws:
        assert await close_code(ws) == 4403


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_token_sources_header_cookie_and_auth_message(start: Any, transport: str) -> None:
    async with start(transport) as srv:
        async with connect(
            srv.url(), additional_headers={"Authorization": f"Bearer {token(Role.ADMIN)}"}
        ) as ws:
            assert (await recv(ws))["principal"]["role"] == "admin"
        async with connect(
            srv.url(), additional_headers={"Cookie": f"theme=dark; eas_access={token()}"}
        ) as ws:
            assert (await recv(ws))["principal"]["role"] == "viewer"
        async with connect(srv.url()) as ws:
            await send(ws, {"type": "subscribe", "topics": ["alerts"]})
            assert (await recv(ws))["code"] == "not_authenticated"
            await send(ws, {"type": "auth", "token": token(Role.OPERATOR)})
            assert (await recv(ws))["principal"]["role"] == "operator"
        async with connect(srv.url()) as ws:
            await send(ws, {"type": "auth", "token": "nope"})
            assert await close_code(ws) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_token_expiring_while_connected_closes_with_4401(start: Any, transport: str) -> None:
    async with start(transport) as srv, connect(srv.url(f"?token={token(ttl_s=2)}")) as ws:
        welcome = await recv(ws)
        assert welcome["principal"]["expires_at"] <= time.time() + 2
        assert await close_code(ws, wait_s=10) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refreshing_the_token_keeps_the_socket(start: Any, transport: str) -> None:
    async with start(transport) as srv, connect(srv.url(f"?token={token(ttl_s=2)}")) as ws:
        await recv(ws)
        await send(ws, {"type": "auth", "token": token(ttl_s=600)})
        assert (await recv(ws))["type"] == "welcome"
        await send(ws, {"type": "auth", "token": "bad"})
        assert (await recv(ws))["code"] == "bad_token"
        # Instead of sleeping past the first token's expiry: the only close now scheduled is
        # the new token's, ten minutes out (the bad token changed nothing).
        (client,) = srv.hub.clients
        assert client.expiry is not None and not client.expiry.cancelled()
        assert client.expiry.when() - asyncio.get_running_loop().time() > 500
        assert client.principal is not None and client.principal.expires_at is not None
        assert client.principal.expires_at > time.time() + 500
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_anonymous_read(start: Any, transport: str, bus: AsyncBus) -> None:
    async with start(transport, anonymous_read=True) as srv, connect(srv.url()) as ws:
        welcome = await recv(ws)
        assert welcome["principal"] == {"subject": "anonymous", "role": None, "expires_at": None}
        await subscribe_topics(ws, ["alerts"])
        entry = await publish(bus, ALERT_EVENTS, "alert.created", {"alert": {"relevant": True}})
        assert events(await recv_until(ws, lambda m: m.get("id") == entry))[-1]["id"] == entry
    # A bad token is refused even when anonymous read is on.
    async with (
        start(transport, anonymous_read=True) as srv,
        connect(srv.url("?token=bad")) as ws,
    ):
        assert await close_code(ws) == 4401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resume_after_disconnect(
    start: Any, transport: str, bus: AsyncBus, aredis: Any, bus_namespace: str
) -> None:
    async with start(transport) as srv:
        async with connect(srv.url(f"?token={token()}")) as ws:
            await recv(ws)
            await subscribe_topics(ws, ["alerts"])
            first = await publish(bus, ALERT_EVENTS, "alert.created", {"n": 0})
            await recv_until(ws, lambda m: m.get("id") == first)
        missed = [await publish(bus, ALERT_EVENTS, "alert.created", {"n": i}) for i in range(10)]
        key = stream_key(ALERT_EVENTS, bus_namespace)
        await poll(lambda: srv.hub.positions.get(key) == missed[-1])
        async with connect(srv.url(f"?token={token()}")) as ws:
            await recv(ws)
            answer = await subscribe_topics(ws, [{"topic": "alerts", "last_id": first}])
            live = await publish(bus, ALERT_EVENTS, "alert.created", {"n": 99})
            rest = await recv_until(ws, lambda m: m.get("id") == live)
    assert [e["id"] for e in events(answer + rest)] == [*missed, live]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_oversized_frame_closes_with_1009(start: Any, transport: str) -> None:
    async with (
        start(transport, max_frame_bytes=1000) as srv,
        connect(srv.url(f"?token={token()}"), max_size=None) as ws,
    ):
        await recv(ws)
        await ws.send("y" * 5000)
        assert await close_code(ws) == 1009
