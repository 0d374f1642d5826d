"""Helpers for tests and the benchmark: publish envelopes, talk the protocol as a client."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from eas_schemas.envelope import EventEnvelope
from eas_schemas.streams import StreamSpec
from servicekit.bus import AsyncBus

Json = dict[str, Any]


def envelope(event_type: str, data: Json, subject: str | None = None) -> EventEnvelope[Json]:
    return EventEnvelope[Json](type=event_type, source="test/1", subject=subject, data=data)


async def publish(bus: AsyncBus, spec: StreamSpec, event_type: str, data: Json) -> str:
    return await bus.publish(spec, envelope(event_type, data))


async def send(ws: ClientConnection, message: Json) -> None:
    await ws.send(orjson.dumps(message).decode())


async def recv(ws: ClientConnection, wait_s: float = 5.0) -> Json:
    raw = await asyncio.wait_for(ws.recv(), wait_s)
    doc: Json = orjson.loads(raw)
    return doc


async def recv_until(
    ws: ClientConnection,
    done: Callable[[Json], bool],
    wait_s: float = 10.0,
    answer_pings: bool = True,
) -> list[Json]:
    """Every message up to and including the first one ``done`` accepts (deadline-bound)."""
    deadline = time.monotonic() + wait_s
    out: list[Json] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no matching message in {wait_s}s; got {out[-5:]}")
        msg = await recv(ws, remaining)
        if answer_pings and msg.get("type") == "ping":
            await send(ws, {"type": "pong", "t": msg.get("t")})
            continue
        out.append(msg)
        if done(msg):
            return out


async def subscribe(ws: ClientConnection, topics: list[Any], wait_s: float = 10.0) -> list[Json]:
    """Subscribe and return everything up to the last topic's `subscribed`."""
    names = {t if isinstance(t, str) else t["topic"] for t in topics}
    await send(ws, {"type": "subscribe", "topics": topics})
    seen: set[str] = set()
    out: list[Json] = []

    def done(msg: Json) -> bool:
        if msg.get("type") == "subscribed":
            seen.add(msg["topic"])
        return seen == names

    out = await recv_until(ws, done, wait_s)
    return out


def events(messages: list[Json]) -> list[Json]:
    return [m for m in messages if m.get("type") == "event"]


def mask_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65_536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def parse_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Pop every complete unmasked (server) frame from ``buf`` as (opcode, payload)."""
    out: list[tuple[int, bytes]] = []
    while len(buf) >= 2:
        opcode = buf[0] & 0x0F
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n, pos = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, pos = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < pos + n:
            break
        out.append((opcode, bytes(buf[pos : pos + n])))
        del buf[: pos + n]
    return out


class RawClient:
    """A bare-socket WebSocket client that reads only when told to (slow-client tests)."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.buf = bytearray(rest)

    @classmethod
    async def connect(cls, host: str, port: int, path: str, rcvbuf: int | None = None) -> RawClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        return cls(sock, rest)

    async def send_text(self, text: str) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, mask_frame(text.encode()))

    async def read_until_closed(self, wait_s: float) -> tuple[list[Json], int | None]:
        """Read everything until the server's close frame or EOF; (messages, close code)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + wait_s
        messages: list[Json] = []
        while True:
            for opcode, payload in parse_frames(self.buf):
                if opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                    return messages, code
                if opcode == 0x1:
                    messages.append(orjson.loads(payload))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("server did not close")
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), remaining)
            except (ConnectionResetError, BrokenPipeError):
                return messages, None
            if not chunk:
                return messages, None
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


async def poll(condition: Callable[[], bool], wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def close_code(ws: ClientConnection, wait_s: float = 10.0) -> int | None:
    """Read (answering nothing) until the server closes; the close code it sent."""
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise TimeoutError("not closed")
