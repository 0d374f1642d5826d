"""Small helpers every route module shares."""

from __future__ import annotations

from typing import Any, cast

from fastapi import Request

from station_api.services.audit import AuditLog
from station_api.services.fleet import FleetMonitor
from station_api.services.sessions import SessionService
from station_api.services.settings import SettingsService
from station_api.services.users import UserService

# The marker of a route open without a token (login, refresh, logout, setup): it shows in the
# OpenAPI document as ``x-public: true`` and is what the route-permission tests read.
PUBLIC: dict[str, Any] = {"x-public": True}


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def sessions(request: Request) -> SessionService:
    return cast(SessionService, request.app.state.sessions)


def users(request: Request) -> UserService:
    return cast(UserService, request.app.state.users)


def settings_service(request: Request) -> SettingsService:
    return cast(SettingsService, request.app.state.settings_service)


def audit_log(request: Request) -> AuditLog:
    return cast(AuditLog, request.app.state.audit)


def fleet(request: Request) -> FleetMonitor:
    return cast(FleetMonitor, request.app.state.fleet)
