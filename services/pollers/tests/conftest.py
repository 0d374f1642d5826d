"""Fixtures for the pollers tests: CAP/NWS fixture files, a scripted HTTP server on loopback,
a recording sleeper (no real waiting) and a sync Redis client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture
def cap_fixtures() -> Path:
    return FIXTURES / "cap"


@pytest.fixture
def nws_fixtures() -> Path:
    return FIXTURES / "nws"


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[Seen], Reply]


@dataclass
class FakeServer:
    url: str
    requests: list[Seen] = field(default_factory=list)
    responder: Responder = lambda seen: (404, {}, b"")
    script: list[Reply] = field(default_factory=list)

    def reply(self, seen: Seen) -> Reply:
        self.requests.append(seen)
        if self.script:
            return self.script.pop(0)
        return self.responder(seen)


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """HTTP on 127.0.0.1: answers from ``script`` (in order) first, then ``responder``."""
    state: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            seen = Seen(
                parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}
            )
            status, headers, body = state["server"].reply(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "content-length" not in {k.lower() for k in headers}:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # Clients that hang up early (size-bounded reads) are expected; keep stderr quiet.
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    server = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


class RecordingSleeper:
    """Stands in for time.sleep / Event.wait: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


@pytest.fixture
def sleeper() -> RecordingSleeper:
    return RecordingSleeper()


@pytest.fixture
def sync_redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def read_stream(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """Every envelope of a stream, decoded (helper, imported by fixture below)."""
    from eas_schemas.envelope import decode_entry

    rows: Any = client.xrange(key)
    return [decode_entry(fields).model_dump(mode="json") for _id, fields in rows]


@pytest.fixture
def stream_reader(sync_redis_client: redis.Redis) -> Callable[[str], list[dict[str, Any]]]:
    return lambda key: read_stream(sync_redis_client, key)


@pytest.fixture
def dead_redis() -> redis.Redis:
    """A client for a port nobody listens on, failing at once (no redis-py retries)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        port=1, socket_connect_timeout=0.5, decode_responses=True, retry=Retry(NoBackoff(), 0)
    )
