"""HTTP routes. Thin: parse, check the permission, call the service layer, answer."""

from __future__ import annotations

from fastapi import APIRouter

from station_api.routes import audit, auth, settings, system, users

router = APIRouter()
for module in (auth, users, settings, audit, system):
    router.include_router(module.router)

# Routes open without a token: logging in, refreshing, logging out, the one-time setup.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/auth/token"),
        ("POST", "/api/auth/refresh"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/auth/setup"),
    }
)
