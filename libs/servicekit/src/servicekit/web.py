"""What every FastAPI service shares: health, readiness, metrics, limits, headers, logs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.errors import install_error_handlers
from servicekit.proxy import ProxyHeadersMiddleware, parse_networks
from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # The dashboard's policy: scripts only from the station itself (docs included).
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        b"object-src 'none'; frame-ancestors 'none'",
    ),
]


class EdgeMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware copy of the body): security headers on every response,
    a request body limit enforced from Content-Length and while streaming, request metrics."""

    def __init__(self, app: ASGIApp, max_body: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await self._reject(send, 413, f"request body over {self.max_body} bytes")
                    return
        received = 0
        status_code = 500
        started = time.perf_counter()

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # FastAPI re-raises HTTPException from body reading (anything else becomes
                    # a 400 "error parsing the body"); non-FastAPI apps reach the except below.
                    raise _BodyTooLarge(413, f"request body over {self.max_body} bytes")
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            await self._reject(send, 413, f"request body over {self.max_body} bytes")
            status_code = 413
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope.get("method", ""), path, str(status_code)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)

    @staticmethod
    async def _reject(send: Send, code: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(HTTPException):
    pass


class ServiceMetrics:
    """A registry per app, so several services can share one process (embedded mode, tests)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.service = service

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)


def install_common(
    app: FastAPI,
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    readiness: Callable[[Request], Awaitable[dict[str, str]]],
    asyncapi: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Add /healthz, /readyz, /metrics, /asyncapi.json, limits, headers and CORS to ``app``."""

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": metrics.service}

    @app.get("/readyz", tags=["health"], summary="Dependencies are reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks = await readiness(request)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if asyncapi is not None:
        document = asyncapi

        @app.get("/asyncapi.json", tags=["health"], summary="AsyncAPI document of the bus contract")
        async def asyncapi_json() -> dict[str, Any]:
            return document()

    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(EdgeMiddleware, max_body=settings.max_request_bytes, metrics=metrics)
    # Outermost, so every layer below sees the real client and scheme.
    app.add_middleware(ProxyHeadersMiddleware, trusted=parse_networks(settings.trusted_proxies))


async def database_and_redis(engine: AsyncEngine, redis_client: Any) -> dict[str, str]:
    """The readiness checks of a service that owns a database and uses the bus."""
    out: dict[str, str] = {}

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    await check("database", database, out)
    await check("redis", redis_client.ping, out)
    return out


UNAVAILABLE = "error: unavailable"


async def check(name: str, probe: Callable[[], Awaitable[Any]], out: dict[str, str]) -> None:
    """``out[name]`` is "ok" or a fixed error word: /readyz is unauthenticated, and a driver's
    message names hosts, users and versions. The detail goes to the service's log."""
    try:
        await probe()
        out[name] = "ok"
    except Exception as exc:
        log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
        out[name] = UNAVAILABLE
