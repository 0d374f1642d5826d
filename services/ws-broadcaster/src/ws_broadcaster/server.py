"""Transport A, the production server: the ``websockets`` library's own asyncio server.

Why this stack: the handshake, framing of client messages, close handshake and size limits
come from a maintained library, while the hot path bypasses its per-message ``send()``: every
event's finished WebSocket frame is built once by the hub (server frames are unmasked, so the
bytes are identical for every client) and a client's frames for one bus batch go out with a
single ``transport.write``. Whole frames are written between the library's own writes on the
same event loop thread, so they never interleave inside a frame.

Compression is off (``compression=None``): permessage-deflate would compress each message per
client (its context is per connection), costing CPU per client per event — exactly the cost
the serialize-once design removes — for JSON events of a few hundred bytes on a LAN.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from eas_schemas.ws_protocol import WS_PATH
from ws_broadcaster.core import Broadcaster
from ws_broadcaster.hub import COALESCE_LOW_WATER, Client, Hub
from ws_broadcaster.session import extract_token
from ws_broadcaster.settings import WsBroadcasterSettings

log = logging.getLogger(__name__)

# Strong references to close tasks, which the event loop itself only holds weakly.
_closing: set[asyncio.Task[None]] = set()


class WebSocketsClient(Client):
    transport_name = "websockets"

    def __init__(self, hub: Hub, connection: ServerConnection) -> None:
        super().__init__(hub)
        self.connection = connection
        self.transport: asyncio.WriteTransport = connection.transport
        self.queue_bytes = hub.settings.queue_bytes
        self.close_timeout = hub.settings.close_timeout_s
        self.closer: asyncio.Task[None] | None = None

    def _write(self) -> int:
        pending = self.pending
        if self.connection.protocol.state is not State.OPEN:
            pending.clear()
            self.coalesced.clear()
            return 0
        buffered = self.transport.get_write_buffer_size()
        if buffered > self.queue_bytes:
            return -1
        count = len(pending)
        if count == 1:
            data = pending[0].wire
        elif count:
            data = b"".join([f.wire for f in pending])
        else:
            data = b""
        pending.clear()
        coalesced = self.coalesced
        if coalesced and buffered < COALESCE_LOW_WATER:
            # Latest-value events go only to a client that is keeping up; otherwise they stay
            # here and are replaced by newer ones (the hub retries this client shortly).
            data += b"".join([f.wire for f in coalesced.values()])
            count += len(coalesced)
            coalesced.clear()
        if data:
            self.transport.write(data)
        return count

    def _close(self, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._closing(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        self.closer = task

    async def _closing(self, code: int, reason: str) -> None:
        # The close frame queues behind what the client has not read; a client that reads
        # nothing would keep the library's close() waiting for the buffer to drain forever.
        try:
            await asyncio.wait_for(self.connection.close(code, reason), self.close_timeout)
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        finally:
            if self.connection.state is not State.CLOSED:
                self.transport.abort()


async def _incoming(connection: ServerConnection) -> AsyncIterator[str | bytes]:
    with contextlib.suppress(ConnectionClosed):
        async for message in connection:
            yield message


def _http(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def make_process_request(broadcaster: Broadcaster) -> Any:
    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == WS_PATH:
            return None  # the library answers 426 itself when it is not an upgrade
        if path == "/healthz":
            body = orjson.dumps({"status": "ok", "service": "ws-broadcaster"})
            return _http(http.HTTPStatus.OK, body, "application/json")
        if path == "/readyz":
            ok, checks = await broadcaster.readiness()
            status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
            return _http(status, orjson.dumps({"ready": ok, "checks": checks}), "application/json")
        if path == "/metrics":
            body, content_type = broadcaster.metrics_text()
            return _http(http.HTTPStatus.OK, body, content_type)
        return _http(http.HTTPStatus.NOT_FOUND, b'{"detail":"not found"}', "application/json")

    return process_request


def make_handler(broadcaster: Broadcaster) -> Any:
    session = broadcaster.session
    hub = broadcaster.hub

    async def handler(connection: ServerConnection) -> None:
        request = connection.request
        if request is None:  # pragma: no cover - the library always sets it after a handshake
            return
        _, _, query = request.path.partition("?")
        token = extract_token(
            query, request.headers.get("Authorization"), request.headers.get("Cookie")
        )
        client = WebSocketsClient(hub, connection)
        await session.serve(client, _incoming(connection), token)
        if client.closer is not None:
            # Returning first would let the library close with 1000 before our code is sent.
            await asyncio.shield(client.closer)

    return handler


async def start_server(
    broadcaster: Broadcaster, host: str | None = None, port: int | None = None
) -> Server:
    settings = broadcaster.settings
    return await serve(
        make_handler(broadcaster),
        settings.host if host is None else host,
        settings.port if port is None else port,
        process_request=make_process_request(broadcaster),
        compression=None,
        max_size=settings.max_frame_bytes,
        # Liveness is the protocol's JSON ping/pong (the ASGI transport cannot send control
        # frames, and browsers' JS cannot see them), so the library's keepalive is off.
        ping_interval=None,
        close_timeout=settings.close_timeout_s,
        max_queue=16,
        server_header=None,
        backlog=4096,
    )


class StandaloneServer:
    """``async with StandaloneServer(settings) as s:`` — a running server on ``s.port``."""

    def __init__(self, settings: WsBroadcasterSettings) -> None:
        self.settings = settings
        self.broadcaster = Broadcaster(settings, transport="websockets")
        self.server: Server | None = None
        self.port = settings.port

    async def __aenter__(self) -> StandaloneServer:
        await self.broadcaster.start()
        self.server = await start_server(self.broadcaster)
        sockets = list(self.server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close(close_connections=False)
        await self.broadcaster.stop()
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), self.settings.close_timeout_s)


async def serve_until_signal(settings: WsBroadcasterSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with StandaloneServer(settings) as server:
        log.info("ws-broadcaster listening on %s:%d%s", settings.host, server.port, WS_PATH)
        await stop.wait()


def run_standalone(settings: WsBroadcasterSettings | None = None) -> None:
    """Run transport A until SIGINT/SIGTERM (uvloop when installed and enabled)."""
    settings = settings or WsBroadcasterSettings()
    # Thousands of long-lived connection objects make every full collection walk them all;
    # freezing what startup made and collecting young objects less often keeps those pauses
    # (measured as latency spikes and slower handshakes) down. Nothing here relies on cycles
    # being freed promptly.
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    if settings.use_uvloop:
        try:
            import uvloop
        except ImportError:
            uvloop = None  # type: ignore[assignment]
        if uvloop is not None:
            uvloop.run(serve_until_signal(settings))
            return
    asyncio.run(serve_until_signal(settings))
