"""Fixtures for eas-station tests: a WebSocket client that talks ASGI to an app in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from starlette.types import ASGIApp


class WebSocketClosed(Exception):
    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class AsgiWebSocket:
    Closed = WebSocketClosed

    def __init__(
        self, app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"localhost"), *(headers or [])],
            "client": ("127.0.0.1", 5000),
            "server": ("station.test", 80),
            "subprotocols": [],
            "state": {},
        }
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsgiWebSocket:
        self.task = asyncio.create_task(self.app(self.scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "websocket.connect"})
        first = await asyncio.wait_for(self.from_app.get(), 10)
        if first["type"] == "websocket.close":
            raise WebSocketClosed(first.get("code", 1000), first.get("reason", ""))
        assert first["type"] == "websocket.accept", first
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.to_app.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task

    async def send_json(self, doc: Any) -> None:
        await self.to_app.put({"type": "websocket.receive", "text": json.dumps(doc)})

    async def receive_json(self, timeout: float = 10) -> Any:
        message = await asyncio.wait_for(self.from_app.get(), timeout)
        if message["type"] == "websocket.close":
            raise WebSocketClosed(message.get("code", 1000), message.get("reason", ""))
        return json.loads(message["text"])

    async def receive_until(self, predicate: Any, timeout: float = 20) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            doc = await self.receive_json(max(0.1, deadline - loop.time()))
            if doc.get("type") == "ping":
                await self.send_json({"type": "pong", "t": doc.get("t")})
                continue
            if predicate(doc):
                return doc


@pytest.fixture
def asgi_websocket() -> type[AsgiWebSocket]:
    """``async with asgi_websocket(app, "/ws", headers) as ws`` (``asgi_websocket.Closed``)."""
    return AsgiWebSocket
