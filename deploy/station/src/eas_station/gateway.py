"""The one-port gateway: every FastAPI service of the station in one process, behind one port.

DESIGN.md's one-machine run mode allows "several in one process behind one port"; this is that
shape. One ASGI app dispatches by path prefix, in-process (no HTTP proxying, no
BaseHTTPMiddleware):

================================================  ==========================================
each service's ``prefixes``                       that service (its manifest's prefixes:
                                                  ``/api/alerts`` alerts-api, ``/ws`` the
                                                  ws-broadcaster's ASGI adapter, ...)
``/services/<name>/<path>``                       that service's own routes at its root
                                                  (``healthz``, ``readyz``, ``metrics``, ``docs``,
                                                  ``openapi.json``, ``asyncapi.json``; any path,
                                                  so /docs "try it out" works), served with
                                                  ``root_path=/services/<name>``
``/healthz`` ``/readyz``                          the gateway as a whole (ready when every
                                                  hosted service answers ready)
``/`` ``/static/*``                               the dashboard
================================================  ==========================================

Every installed service is hosted (each registers a ``servicekit.manifest.ServiceManifest``;
a registered service that fails to import stops the gateway, naming it). The gateway's
lifespan enters each hosted app's own lifespan in order and leaves them in reverse; a service
whose startup fails fails the gateway's startup, naming the service.

Run it with ``python -m eas_station.gateway --host H --port P`` (``eas-station run`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.logs import configure_logging
from servicekit.manifest import ManifestError, ServiceManifest, installed
from servicekit.proxy import LOOPBACK_HOSTS, HostPolicy
from servicekit.settings import ServiceSettings, StoreSettings
from servicekit.web import SECURITY_HEADERS

log = logging.getLogger("eas_station.gateway")

GATEWAY = "gateway"
SERVICES_PREFIX = "/services/"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class GatewaySettings(ServiceSettings):
    """``EAS_GATEWAY_<FIELD>``, falling back to the station-wide ``EAS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="EAS_GATEWAY_", extra="ignore", env_file=None)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    disable: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="service names not to host, e.g. station-api"
    )
    readiness_timeout_s: float = Field(default=5.0, gt=0)
    station_name: str = Field(default="EAS Station", max_length=120)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host names the station answers to, comma-separated (.example.org: and "
        "its subdomains; *: any). Page origins opening /ws must be one of them too",
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _split(value)

    @field_validator("disable", mode="before")
    @classmethod
    def _split_disable(cls, value: object) -> object:
        return _split(value)


class GatewayError(RuntimeError):
    """A hosted service could not be loaded or started."""


@dataclass
class Hosted:
    """One service app mounted in the gateway."""

    name: str
    app: ASGIApp
    prefixes: tuple[str, ...]
    readiness_path: str = "/readyz"
    state: dict[str, Any] = field(default_factory=dict)
    started: bool = False


def discover(
    settings: GatewaySettings | None = None,
    manifests: Sequence[ServiceManifest] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[Hosted]:
    """Build the app of every installed, enabled service (``servicekit.manifest``).
    ``overrides`` maps a service name to the settings object to build it with (tests);
    otherwise each reads its own environment."""
    settings = settings or GatewaySettings()
    overrides = overrides or {}
    hosted: list[Hosted] = []
    for manifest in _manifests(manifests):
        if manifest.name in settings.disable:
            log.info("gateway: %s disabled by configuration", manifest.name)
            continue
        service_settings = overrides.get(manifest.name) or manifest.settings()
        hosted.append(
            Hosted(manifest.name, manifest.create_app(service_settings), manifest.prefixes)
        )
        log.info("gateway: hosting %s at %s", manifest.name, " ".join(manifest.prefixes))
    return hosted


async def migrate_all(
    settings: GatewaySettings | None = None, manifests: Sequence[ServiceManifest] | None = None
) -> list[str]:
    """Upgrade the schema of every enabled service that has one; returns their names."""
    settings = settings or GatewaySettings()
    done: list[str] = []
    for manifest in _manifests(manifests):
        if manifest.upgrade_url is None or manifest.name in settings.disable:
            continue
        service_settings = manifest.settings()
        if not isinstance(service_settings, StoreSettings):
            continue
        log.info("gateway: migrating %s", manifest.name)
        await manifest.upgrade_url(service_settings.database_url)
        done.append(manifest.name)
    return done


def _manifests(given: Sequence[ServiceManifest] | None) -> Sequence[ServiceManifest]:
    try:
        return installed() if given is None else given
    except ManifestError as exc:
        raise GatewayError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# The ASGI app


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _json(
    send: Send, status: int, doc: Any, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(doc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def call_get(
    app: ASGIApp, path: str, state: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    """GET ``path`` from an ASGI app in-process (no socket) and return (status, body)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": ("gateway", 80),
        "state": dict(state or {}),
    }
    status = 500
    chunks: list[bytes] = []
    sent = False
    done = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return status, b"".join(chunks)


class Gateway:
    """Pure ASGI dispatcher over the hosted apps and the dashboard."""

    def __init__(
        self,
        hosted: Sequence[Hosted],
        dashboard: ASGIApp | None = None,
        settings: GatewaySettings | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self.hosted = list(hosted)
        self.dashboard = dashboard
        names = [h.name for h in self.hosted]
        if len(names) != len(set(names)):
            raise GatewayError(f"two hosted services share a name: {names}")
        self.by_name = {h.name: h for h in self.hosted}
        # Longest prefix first, so a later, more specific prefix can never be shadowed.
        routes = [(p, h) for h in self.hosted for p in h.prefixes]
        seen: dict[str, str] = {}
        for prefix, h in routes:
            if prefix in seen:
                raise GatewayError(f"{prefix} is claimed by {seen[prefix]} and {h.name}")
            seen[prefix] = h.name
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.started = False
        self.hosts = HostPolicy(self.settings.allowed_hosts)

    # -- lifespan ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """Enter every hosted app's lifespan in order; leave them in reverse."""
        async with contextlib.AsyncExitStack() as stack:
            for h in self.hosted:
                lifespan = getattr(getattr(h.app, "router", None), "lifespan_context", None)
                if lifespan is None:
                    log.info("gateway: %s has no lifespan", h.name)
                    h.started = True
                    continue
                log.info("gateway: starting %s", h.name)
                try:
                    state = await stack.enter_async_context(lifespan(h.app))
                except Exception as exc:
                    raise GatewayError(
                        f"{h.name} failed to start: {type(exc).__name__}: {exc}"
                    ) from exc
                h.state = dict(state or {})
                h.started = True

                def stopped(h: Hosted = h) -> None:
                    h.started = False
                    log.info("gateway: stopped %s", h.name)

                stack.callback(stopped)
            self.started = True
            try:
                yield self
            finally:
                self.started = False
                log.info("gateway: stopping %d services", len(self.hosted))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        context = self.running()
        try:
            await context.__aenter__()
        except BaseException as exc:
            text = str(exc) if isinstance(exc, GatewayError) else f"{type(exc).__name__}: {exc}"
            log.error("gateway startup failed: %s", text, exc_info=exc)
            await send({"type": "lifespan.startup.failed", "message": text})
            if not isinstance(exc, Exception):
                raise
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            await context.__aexit__(None, None, None)
        except Exception as exc:
            log.error("gateway shutdown failed: %s", exc, exc_info=exc)
            await send({"type": "lifespan.shutdown.failed", "message": f"{exc!r}"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    # -- dispatch ---------------------------------------------------------------------------

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Refuse a Host the station does not answer to, and a WebSocket from a page origin
        it does not know (DNS rebinding; cross-site WebSocket hijacking)."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host")
        if not self.hosts.host_allowed(host):
            detail = f"Host {host!r} is not one this station answers to (EAS_GATEWAY_ALLOWED_HOSTS)"
            await self._refuse(scope, receive, send, 421, detail)
            return False
        if scope["type"] == "websocket" and not self.hosts.origin_allowed(headers.get("origin")):
            detail = f"Origin {headers.get('origin')!r} may not open this socket"
            await self._refuse(scope, receive, send, 403, detail)
            return False
        return True

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        await _json(send, status, {"detail": detail})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if not await self._admitted(scope, receive, send):
            return
        path: str = scope["path"]
        if kind == "http" and path == "/healthz":
            await _json(send, 200, self.health())
            return
        if kind == "http" and path == "/readyz":
            ok, doc = await self.readiness()
            await _json(send, 200 if ok else 503, doc)
            return
        if path.startswith(SERVICES_PREFIX):
            name, _, rest = path[len(SERVICES_PREFIX) :].partition("/")
            hosted = self.by_name.get(name)
            if hosted is not None and rest:
                root = scope.get("root_path", "") + SERVICES_PREFIX + name
                await hosted.app(self._scope(scope, hosted, root_path=root), receive, send)
                return
            await self._not_found(scope, receive, send)
            return
        for prefix, hosted in self.routes:
            if _matches(path, prefix):
                await hosted.app(self._scope(scope, hosted), receive, send)
                return
        if self.dashboard is not None and kind == "http" and _is_dashboard_path(path):
            await self.dashboard(scope, receive, send)
            return
        await self._not_found(scope, receive, send)

    @staticmethod
    def _scope(scope: Scope, hosted: Hosted, root_path: str | None = None) -> Scope:
        out = dict(scope)
        if hosted.state:
            out["state"] = {**scope.get("state", {}), **hosted.state}
        if root_path is not None:
            # Starlette >= 0.35 routes on path minus root_path (path keeps the full URL).
            out["root_path"] = root_path
        return out

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "no such endpoint"})
            return
        await _json(send, 404, {"detail": f"nothing at {scope['path']}"})

    # -- health -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "service": GATEWAY,
            "hosted": {h.name: list(h.prefixes) for h in self.hosted},
        }

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        async def one(h: Hosted) -> tuple[str, dict[str, Any]]:
            if not h.started:
                return h.name, {"ready": False, "status": "not started"}
            try:
                status, body = await asyncio.wait_for(
                    call_get(h.app, h.readiness_path, h.state), self.settings.readiness_timeout_s
                )
            except TimeoutError:
                return h.name, {"ready": False, "status": "readiness check timed out"}
            except Exception as exc:
                return h.name, {"ready": False, "status": f"error: {type(exc).__name__}: {exc}"}
            try:
                detail = json.loads(body) if body else {}
            except ValueError:
                detail = {"body": body[:200].decode("utf-8", "replace")}
            return h.name, {"ready": status == 200, "status": status, "detail": detail}

        results = dict(await asyncio.gather(*(one(h) for h in self.hosted)))
        ok = self.started and all(r["ready"] for r in results.values())
        return ok, {"ready": ok, "service": GATEWAY, "services": results}


def _is_dashboard_path(path: str) -> bool:
    return path in ("/", "/index.html", "/favicon.ico") or path.startswith("/static/")


# ---------------------------------------------------------------------------------------------
# Factories and the command line


def create_gateway(
    settings: GatewaySettings | None = None,
    hosted: Sequence[Hosted] | None = None,
    overrides: dict[str, Any] | None = None,
    dashboard: bool = True,
) -> Gateway:
    """The gateway app. ``hosted`` replaces discovery (tests); ``overrides`` gives discovery a
    settings object per service name."""
    from eas_station.dashboard import DashboardConfig, create_dashboard

    settings = settings or GatewaySettings()
    apps = list(hosted) if hosted is not None else discover(settings, overrides=overrides)
    names = {h.name for h in apps}
    board = (
        create_dashboard(
            DashboardConfig(
                station_name=settings.station_name,
                login_available="station-api" in names,
                anonymous_read=settings.anonymous_read,
                live_available="ws-broadcaster" in names,
            )
        )
        if dashboard
        else None
    )
    return Gateway(apps, board, settings)


def main(argv: list[str] | None = None) -> int:
    settings = GatewaySettings()
    parser = argparse.ArgumentParser(
        prog="python -m eas_station.gateway",
        description="Every FastAPI service of the station and the dashboard on one port.",
    )
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--no-migrate", action="store_true", help="do not upgrade schemas first")
    args = parser.parse_args(argv)
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "migrate" or not args.no_migrate:
        done = asyncio.run(migrate_all(settings))
        log.info("gateway: schemas up to date for %s", ", ".join(done) or "no service")
    if args.command == "migrate":
        return 0
    import uvicorn

    app = create_gateway(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # ws-broadcaster builds each event's text once; per-client compression would undo it.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        # Uvicorn would trust X-Forwarded-For from loopback, i.e. from any local process;
        # each hosted service believes only EAS_TRUSTED_PROXIES (servicekit.proxy).
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "Hosted",
    "call_get",
    "create_gateway",
    "discover",
    "main",
    "migrate_all",
]
