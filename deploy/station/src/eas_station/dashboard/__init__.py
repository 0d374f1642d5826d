"""The station dashboard: one HTML page, plain ES modules and CSS, served from the station.

No build step and nothing from a CDN. The page gets what it must know before its first request
(is there a login service, may anonymous readers read, is /ws hosted) from ``data-`` attributes
on ``<body>``, so there is no inline script and the page runs under a strict CSP
(``script-src 'self'``).
"""

from __future__ import annotations

import hashlib
import html
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

# Scripts only from the station; inline styles allowed (style attributes set by the scripts for
# meters); the only connections are to the station itself ('self' covers same-origin ws/wss).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'; frame-ancestors 'none'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
]


@dataclass(frozen=True)
class DashboardConfig:
    station_name: str = "EAS Station"
    login_available: bool = False
    anonymous_read: bool = False
    live_available: bool = True


@cache
def asset_version() -> str:
    """A digest of the static files, appended to their URLs so browsers never run stale JS."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def render_index(config: DashboardConfig) -> str:
    text = (TEMPLATES / "index.html").read_text(encoding="utf-8")
    values = {
        "station_name": config.station_name,
        "login": "true" if config.login_available else "false",
        "anonymous": "true" if config.anonymous_read else "false",
        "live": "true" if config.live_available else "false",
        "v": asset_version(),
    }
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", html.escape(value, quote=True))
    return text


class _Headers:
    """Pure ASGI: add the dashboard's security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _CachedStatic(StaticFiles):
    """A file asked for with ?v=<digest> (what the page links) may be cached for long; one
    without it (what an ES module imports: ``import "./console.js"``, the map's vendored files)
    is revalidated (ETag, 304) on each load, so an upgraded station never runs a stale module
    beside a fresh app.js."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        versioned = query.get("v") == [asset_version()]
        response.headers["cache-control"] = "public, max-age=86400" if versioned else "no-cache"
        return response


def create_dashboard(config: DashboardConfig | None = None) -> ASGIApp:
    config = config or DashboardConfig()
    page = render_index(config)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"cache-control": "no-cache"})

    async def favicon(request: Request) -> Response:
        return RedirectResponse(f"/static/icon.svg?v={asset_version()}", status_code=301)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/index.html", index),
            Route("/favicon.ico", favicon),
            Mount("/static", app=_CachedStatic(directory=STATIC), name="static"),
        ]
    )
    return _Headers(app)


__all__ = ["CSP", "DashboardConfig", "asset_version", "create_dashboard", "render_index"]
