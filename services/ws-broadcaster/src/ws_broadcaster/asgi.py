"""Transport B: the same hub behind an ASGI ``/ws`` endpoint, for the one-port gateway.

ASGI gives no access to the socket, so each client gets a writer task that awaits the server's
``send`` for one frame at a time; the hub still builds each event's text once and only appends
it to the client's bounded deque. The ASGI server frames (and, if it negotiated
permessage-deflate, compresses) per client, so this transport costs more per message than the
standalone server; run uvicorn with ``ws_per_message_deflate=False`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from eas_schemas.ws_protocol import WS_PATH, CloseCode
from ws_broadcaster.core import Broadcaster
from ws_broadcaster.hub import Client, Frame, Hub
from ws_broadcaster.session import extract_token
from ws_broadcaster.settings import WsBroadcasterSettings


class AsgiClient(Client):
    transport_name = "asgi"

    def __init__(self, hub: Hub, websocket: WebSocket) -> None:
        super().__init__(hub)
        self.websocket = websocket
        self.queue: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.queue_size = hub.settings.queue_size
        self.close_timeout = hub.settings.close_timeout_s
        self.writer: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._writer())
        self.closer: asyncio.Task[None] | None = None

    def _write(self) -> int:
        pending = self.pending
        count = len(pending)
        if count:
            self.queue.extend(pending)
            pending.clear()
        if len(self.queue) > self.queue_size:
            return -1
        if count or self.coalesced:
            self.wake.set()
        # Counted when handed over; the writer only moves them to the socket.
        return count

    async def _writer(self) -> None:
        send = self.websocket.send
        queue = self.queue
        coalesced = self.coalesced
        stats = self.hub.stats
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while queue or coalesced:
                    if queue:
                        frame = queue.popleft()
                    else:
                        key = next(iter(coalesced))
                        frame = coalesced.pop(key)
                        stats.messages_out += 1
                    await send({"type": "websocket.send", "text": frame.text})
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The peer went away mid-send; the receive side notices and detaches the client.
            return

    def _close(self, code: int, reason: str) -> None:
        self.closer = asyncio.get_running_loop().create_task(self._closing(code, reason))

    async def _closing(self, code: int, reason: str) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.writer
        # The close frame needs the socket to be writable; a client that reads nothing keeps
        # it from ever being so, and then leaving the endpoint drops the TCP connection.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.websocket.send({"type": "websocket.close", "code": code, "reason": reason}),
                self.close_timeout,
            )


async def _incoming(websocket: WebSocket, max_bytes: int) -> AsyncIterator[str | bytes]:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        data: str | bytes | None = text if text is not None else message.get("bytes")
        if data is None:
            continue
        if len(data) > max_bytes:
            # What the websockets server does itself for transport A (RFC 6455 7.4.1).
            with contextlib.suppress(Exception):
                await websocket.send(
                    {
                        "type": "websocket.close",
                        "code": CloseCode.MESSAGE_TOO_BIG,
                        "reason": "frame too big",
                    }
                )
            return
        yield data


class AsgiBroadcaster:
    """The ASGI face of one broadcaster: ``lifespan()`` runs the hub, ``websocket_endpoint``
    serves ``/ws`` (a Starlette endpoint taking a ``WebSocket``)."""

    def __init__(self, settings: WsBroadcasterSettings | None = None) -> None:
        self.settings = settings or WsBroadcasterSettings()
        self.broadcaster: Broadcaster | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[Broadcaster]:
        broadcaster = Broadcaster(self.settings, transport="asgi")
        await broadcaster.start()
        self.broadcaster = broadcaster
        try:
            yield broadcaster
        finally:
            self.broadcaster = None
            await broadcaster.stop()

    async def websocket_endpoint(self, websocket: WebSocket) -> None:
        broadcaster = self.broadcaster
        if broadcaster is None:
            # Lifespan not entered (or shutting down): refuse rather than hang.
            await websocket.close(code=CloseCode.GOING_AWAY, reason="broadcaster not running")
            return
        await websocket.accept()
        token = extract_token(
            websocket.scope.get("query_string", b"").decode("latin-1"),
            websocket.headers.get("authorization"),
            websocket.headers.get("cookie"),
        )
        client = AsgiClient(broadcaster.hub, websocket)
        try:
            await broadcaster.session.serve(
                client, _incoming(websocket, self.settings.max_frame_bytes), token
            )
        finally:
            if client.closer is not None:
                with contextlib.suppress(Exception):
                    await client.closer
            else:
                client.writer.cancel()

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "ws-broadcaster"})

    async def readyz(self, request: Request) -> Response:
        if self.broadcaster is None:
            return JSONResponse({"ready": False, "checks": {"lifespan": "not started"}}, 503)
        ok, checks = await self.broadcaster.readiness()
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    async def metrics(self, request: Request) -> Response:
        if self.broadcaster is None:
            return Response(b"", status_code=503)
        body, content_type = self.broadcaster.metrics_text()
        return Response(body, media_type=content_type)

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute(WS_PATH, self.websocket_endpoint),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]


def create_asgi_app(settings: WsBroadcasterSettings | None = None) -> Starlette:
    """A Starlette app serving ``/ws``, ``/healthz``, ``/readyz``, ``/metrics``.

    Its lifespan starts the hub. Starlette does not run the lifespans of mounted sub-apps, so a
    gateway that mounts it (or only adds its ``/ws`` route) enters it from its own lifespan::

        ws_app = create_asgi_app(settings)
        async with ws_app.router.lifespan_context(ws_app):
            yield

    ``ws_app.state.ws_broadcaster`` is the ``AsgiBroadcaster`` (``websocket_endpoint`` for
    ``gateway.add_websocket_route("/ws", ...)``).
    """
    adapter = AsgiBroadcaster(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with adapter.lifespan():
            yield {}

    app = Starlette(routes=adapter.routes(), lifespan=lifespan)
    app.state.ws_broadcaster = adapter
    return app
