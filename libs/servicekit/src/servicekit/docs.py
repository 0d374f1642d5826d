"""Each service's ``/docs``: Swagger UI served from the station itself.

FastAPI's default page loads Swagger UI from a CDN with an inline script, so it needs
``'unsafe-inline'`` and a third-party origin in the CSP, carries no integrity check, and on an
air-gapped station does not load at all. Here the assets come from the ``swagger-ui-bundle``
package, the page's only script is a file of ours, and the CSP is the dashboard's.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path

ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
_INIT_JS = """\
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def _page(title: str, openapi_url: str, base: str) -> str:
    t, o, b = html.escape(title), html.escape(openapi_url), html.escape(base)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{t} - API docs</title>"
        f'<link rel=icon href="{b}/favicon-32x32.png">'
        f'<link rel=stylesheet href="{b}/swagger-ui.css"></head>'
        f'<body><div id="swagger-ui" data-openapi="{o}"></div>'
        f'<script src="{b}/swagger-ui-bundle.js"></script>'
        f'<script src="{b}/init.js"></script></body></html>'
    )


def install_docs(app: FastAPI, title: str) -> None:
    """Add ``/docs`` and its assets (the app must be made with ``docs_url=None``)."""
    folder = Path(swagger_ui_path)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(_page(title, f"{root}/openapi.json", f"{root}/docs"))

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return PlainTextResponse(_INIT_JS, media_type="text/javascript")

    @app.get("/docs/{asset}", include_in_schema=False)
    async def docs_asset(asset: str) -> FileResponse:
        kind = ASSETS.get(asset)
        if kind is None:
            raise HTTPException(404, f"no docs asset {asset!r}")
        return FileResponse(
            folder / asset, media_type=kind, headers={"cache-control": "max-age=86400"}
        )
