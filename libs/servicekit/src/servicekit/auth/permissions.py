"""Roles and the permission table every route names."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Permission(StrEnum):
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    MONITOR_READ = "monitor:read"
    MONITOR_WRITE = "monitor:write"
    AUDIO_READ = "audio:read"
    AUDIO_WRITE = "audio:write"
    RELAY_CONFIRM = "relay:confirm"
    SYSTEM_READ = "system:read"
    SETTINGS_READ = "settings:read"
    SETTINGS_WRITE = "settings:write"
    USERS_ADMIN = "users:admin"
    AUDIT_READ = "audit:read"
    # One's own account (who am I, change my password): every signed-in user, never anonymous.
    ACCOUNT_SELF = "account:self"


_VIEWER = {
    Permission.ALERTS_READ,
    Permission.MONITOR_READ,
    Permission.AUDIO_READ,
    Permission.SYSTEM_READ,
}
_OPERATOR = _VIEWER | {
    Permission.ALERTS_WRITE,
    Permission.MONITOR_WRITE,
    Permission.AUDIO_WRITE,
    Permission.RELAY_CONFIRM,
    Permission.SETTINGS_READ,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_VIEWER | {Permission.ACCOUNT_SELF}),
    Role.OPERATOR: frozenset(_OPERATOR | {Permission.ACCOUNT_SELF}),
    Role.ADMIN: frozenset(Permission),
}

# Rank for "no one grants a role above their own".
ROLE_RANK: dict[Role, int] = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

# What the station's "anonymous read" switch opens to callers without a token.
ANONYMOUS_PERMISSIONS: frozenset[Permission] = frozenset(_VIEWER)
