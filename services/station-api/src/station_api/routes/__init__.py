"""HTTP routes. Thin: parse, check the permission, call the service layer, answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from station_api.routes import audit, auth, reference, settings, system, users

router = APIRouter()
for module in (auth, users, settings, audit, system, reference):
    router.include_router(module.router)


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    # Included routers are kept as wrappers around the original (no prefix is added here).
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
        elif hasattr(route, "routes"):
            found.extend(_api_routes(route.routes))
    return found


# Routes open without a token (logging in, refreshing, logging out, the one-time setup): the
# ones that carry the PUBLIC marker (``x-public: true`` in OpenAPI), never a hand-kept list.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    (method, route.path)
    for route in _api_routes(router.routes)
    if (route.openapi_extra or {}).get("x-public") is True
    for method in route.methods or ()
)
