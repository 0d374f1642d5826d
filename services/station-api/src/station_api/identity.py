"""Users, logins and tokens.

- Access tokens: short-lived Ed25519 JWTs (servicekit.auth.tokens), verified by every service
  locally; each is bound to a fresh CSRF token (its hash is a claim) for cookie use.
- Refresh tokens: 256-bit random strings, stored only as SHA-256, rotated on every use. The
  tokens descending from one login form a family; presenting a token that was already rotated
  means it was copied, so the whole family is revoked (the thief's and the user's sessions).
- Every privileged action and every failure is written to the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.clock import utcnow
from eas_schemas.system_events import AuditOutcome
from servicekit.auth.permissions import ROLE_RANK, Role
from servicekit.auth.tokens import Principal, TokenSigner
from servicekit.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    Throttled,
    Unauthorized,
    Unavailable,
)
from station_api import repository as repo
from station_api.audit import AuditLog, audit_record
from station_api.passwords import Passwords, policy_problem
from station_api.throttle import LoginThrottle

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
BAD_CREDENTIALS = "incorrect user name or password"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_username(username: str) -> str:
    return username.strip().lower()


@dataclass(frozen=True, slots=True)
class TokenBundle:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    csrf_token: str
    username: str
    role: Role


@dataclass(frozen=True, slots=True)
class UserView:
    """A user as any endpoint may show it: never the password hash."""

    username: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> UserView:
        return cls(
            username=row.username,
            role=Role(row.role),
            disabled=bool(row.disabled),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            password_changed_at=row.password_changed_at,
            last_login_at=row.last_login_at,
        )


def _field_error(field: str, message: str) -> Invalid:
    return Invalid(message, loc=("body", field))


def _check_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise _field_error(
            "username",
            "user name must be 2-64 characters: lowercase letters, digits, '.', '_', '-'",
        )
    return name


def _check_password(password: str, username: str, field: str = "password") -> None:
    problem = policy_problem(password, username)
    if problem:
        raise _field_error(field, problem)


class IdentityService:
    def __init__(
        self,
        engine: AsyncEngine,
        signer: TokenSigner | None,
        passwords: Passwords,
        throttle: LoginThrottle,
        audit: AuditLog,
        access_ttl_s: int = 900,
        refresh_ttl_s: int = 14 * 86_400,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.passwords = passwords
        self.throttle = throttle
        self.audit = audit
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    # ---- helpers -------------------------------------------------------------------------

    def _require_signer(self) -> TokenSigner:
        if self.signer is None:
            raise Unavailable(
                "no signing key: set STATION_API_SIGNING_KEY_FILE or EAS_AUTH_SIGNING_KEY_FILE"
            )
        return self.signer

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.passwords.hash, password)

    async def _verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        return await asyncio.to_thread(self.passwords.verify, password, stored)

    async def _issue(
        self,
        conn: AsyncConnection,
        user: Any,
        client_addr: str | None,
        family: str | None = None,
    ) -> TokenBundle:
        signer = self._require_signer()
        now = utcnow()
        refresh = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await repo.insert_refresh(
            conn,
            {
                "user_id": user.id,
                "token_hash": token_hash(refresh),
                "family": family or secrets.token_hex(16),
                "created_at": now,
                "expires_at": now + timedelta(seconds=self.refresh_ttl_s),
                "client_addr": client_addr,
            },
        )
        role = Role(user.role)
        access = signer.mint(user.username, role, ttl_s=self.access_ttl_s, csrf_token=csrf)
        return TokenBundle(
            access_token=access,
            expires_in=self.access_ttl_s,
            refresh_token=refresh,
            refresh_expires_in=self.refresh_ttl_s,
            csrf_token=csrf,
            username=user.username,
            role=role,
        )

    @asynccontextmanager
    async def _audit_failure(
        self,
        action: str,
        actor: str | Principal,
        client_addr: str | None,
        target: str | None = None,
    ) -> AsyncIterator[None]:
        """Record a refused or failed action (its own transaction), then let the error out."""
        try:
            yield
        except ServiceError as exc:
            outcome = (
                AuditOutcome.DENIED
                if isinstance(exc, Forbidden | Throttled)
                else AuditOutcome.FAILURE
            )
            detail: dict[str, Any] = {"reason": exc.detail, "status": exc.status_code}
            if isinstance(exc, Invalid):
                detail["fields"] = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors]
            await self.audit.record_alone(
                audit_record(action, actor, client_addr, target, outcome, detail)
            )
            raise

    # ---- login, refresh, logout ----------------------------------------------------------

    async def login(self, username: str, password: str, client_addr: str) -> TokenBundle:
        self._require_signer()
        name = normalize_username(username)[:64]
        async with self._audit_failure("auth.login", name or "(empty)", client_addr, name):
            await self.throttle.check(name, client_addr)
            async with self.engine.connect() as conn:
                user = await repo.user_by_name(conn, name)
            stored = user.password_hash if user is not None and not user.disabled else None
            ok, rehash = await self._verify(password, stored)
            if not ok or user is None:
                await self.throttle.failed(name, client_addr)
                raise Unauthorized(BAD_CREDENTIALS)
        await self.throttle.succeeded(name, client_addr)
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {"last_login_at": utcnow()}
            if rehash:
                values["password_hash"] = rehash
            await repo.update_user(conn, user.id, values)
            bundle = await self._issue(conn, user, client_addr)
            await self.audit.record(
                conn,
                audit_record("auth.login", name, client_addr, name, actor_role=bundle.role.value),
            )
        return bundle

    async def refresh(self, refresh_token: str, client_addr: str) -> TokenBundle:
        self._require_signer()
        now = utcnow()
        problem: ServiceError | None = None
        reuse_of: str | None = None
        async with self.engine.begin() as conn:
            row = await repo.refresh_by_hash(conn, token_hash(refresh_token))
            user = await repo.user_by_id(conn, row.user_id) if row is not None else None
            if row is None or user is None:
                problem = Unauthorized("invalid refresh token")
            elif row.revoked_at is not None:
                if row.revoked_reason == "rotated":
                    # A rotated token came back: someone kept a copy. End the whole session.
                    await repo.revoke_family(conn, row.family, "reuse", now)
                    reuse_of = user.username
                problem = Unauthorized("refresh token revoked")
            elif row.expires_at <= now:
                problem = Unauthorized("refresh token expired")
            elif user.disabled:
                await repo.revoke_family(conn, row.family, "disabled", now)
                problem = Unauthorized("account disabled")
            elif not await repo.revoke_refresh(conn, row.id, "rotated", now):
                problem = Unauthorized("refresh token already used")
            else:
                return await self._issue(conn, user, client_addr, family=row.family)
        if reuse_of is not None:
            await self.audit.record_alone(
                audit_record(
                    "auth.refresh",
                    reuse_of,
                    client_addr,
                    reuse_of,
                    AuditOutcome.DENIED,
                    {"reason": "rotated refresh token reused: session revoked"},
                )
            )
        assert problem is not None
        raise problem

    async def logout(
        self, refresh_token: str | None, principal: Principal | None, client_addr: str
    ) -> None:
        """Revoke the session of ``refresh_token``; idempotent (an unknown token is fine)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            actor: str | None = principal.subject if principal else None
            revoked = 0
            if refresh_token:
                row = await repo.refresh_by_hash(conn, token_hash(refresh_token))
                if row is not None:
                    revoked = await repo.revoke_family(conn, row.family, "logout", now)
                    user = await repo.user_by_id(conn, row.user_id)
                    actor = actor or (user.username if user else None)
            if actor is not None:
                await self.audit.record(
                    conn,
                    audit_record(
                        "auth.logout", actor, client_addr, actor, detail={"revoked": revoked}
                    ),
                )

    async def change_password(
        self, principal: Principal, current: str, new: str, client_addr: str
    ) -> TokenBundle:
        name = principal.subject
        async with self._audit_failure("auth.password_change", principal, client_addr, name):
            await self.throttle.check(name, client_addr)
            async with self.engine.connect() as conn:
                user = await repo.user_by_name(conn, name)
            if user is None or user.disabled:
                raise Unauthorized("account not found or disabled")
            ok, _ = await self._verify(current, user.password_hash)
            if not ok:
                await self.throttle.failed(name, client_addr)
                raise Forbidden("current password is wrong")
            _check_password(new, name, "new_password")
            if new == current:
                raise _field_error("new_password", "new password must differ from the current")
        new_hash = await self._hash(new)
        now = utcnow()
        async with self.engine.begin() as conn:
            await repo.update_user(
                conn, user.id, {"password_hash": new_hash, "password_changed_at": now}
            )
            revoked = await repo.revoke_user_tokens(conn, user.id, "password-change", now)
            bundle = await self._issue(conn, user, client_addr)
            await self.audit.record(
                conn,
                audit_record(
                    "auth.password_change",
                    principal,
                    client_addr,
                    name,
                    detail={"revoked": revoked},
                ),
            )
        return bundle

    # ---- first admin ---------------------------------------------------------------------

    async def ensure_setup_token(self) -> str | None:
        """A new one-time setup token while no user exists (its hash replaces any older one)."""
        async with self.engine.begin() as conn:
            if await repo.count_users(conn) > 0:
                await repo.clear_setup_tokens(conn)
                return None
            token = secrets.token_urlsafe(24)
            await repo.replace_setup_token(conn, token_hash(token), utcnow())
        return token

    async def setup(
        self, setup_token: str, username: str, password: str, client_addr: str
    ) -> UserView:
        async with self._audit_failure("auth.setup", username[:64] or "(empty)", client_addr):
            name = _check_username(username)
            _check_password(password, name)
            password_hash = await self._hash(password)
            async with self.engine.begin() as conn:
                consumed = await repo.consume_setup_token(conn, token_hash(setup_token))
                if not consumed or await repo.count_users(conn) > 0:
                    raise Forbidden("invalid or already used setup token")
                user = await self._insert_user(conn, name, password_hash, Role.ADMIN, "setup")
                await self.audit.record(
                    conn,
                    audit_record(
                        "user.create",
                        name,
                        client_addr,
                        name,
                        detail={"role": "admin", "via": "setup-token"},
                        actor_role="admin",
                    ),
                )
        return user

    async def create_admin(self, username: str, password: str) -> UserView:
        """For the `station-api create-admin` command (whoever runs it owns the database)."""
        name = _check_username(username)
        _check_password(password, name)
        password_hash = await self._hash(password)
        async with self.engine.begin() as conn:
            user = await self._insert_user(conn, name, password_hash, Role.ADMIN, "cli")
            await repo.clear_setup_tokens(conn)
            await self.audit.record(
                conn,
                audit_record(
                    "user.create", "cli", None, name, detail={"role": "admin", "via": "cli"}
                ),
            )
        return user

    async def _insert_user(
        self, conn: AsyncConnection, name: str, password_hash: str, role: Role, by: str
    ) -> UserView:
        now = utcnow()
        user_id = await repo.insert_user(
            conn,
            {
                "username": name,
                "password_hash": password_hash,
                "role": role.value,
                "disabled": False,
                "created_at": now,
                "created_by": by,
                "updated_at": now,
                "password_changed_at": now,
            },
        )
        if user_id is None:
            raise Conflict(f"user {name!r} already exists")
        row = await repo.user_by_id(conn, user_id)
        return UserView.of(row)

    # ---- users (admins) ------------------------------------------------------------------

    async def me(self, principal: Principal) -> UserView:
        async with self.engine.connect() as conn:
            row = await repo.user_by_name(conn, principal.subject)
        if row is None:
            raise NotFound("this token's user no longer exists")
        return UserView.of(row)

    async def list_users(self) -> list[UserView]:
        async with self.engine.connect() as conn:
            return [UserView.of(r) for r in await repo.list_users(conn)]

    async def get_user(self, username: str) -> UserView:
        async with self.engine.connect() as conn:
            row = await repo.user_by_name(conn, normalize_username(username))
        if row is None:
            raise NotFound(f"no user {username!r}")
        return UserView.of(row)

    @staticmethod
    def _may_grant(principal: Principal, role: Role) -> None:
        if principal.role is None or ROLE_RANK[role] > ROLE_RANK[principal.role]:
            raise Forbidden(f"role {principal.role} cannot grant the role {role.value}")

    async def create_user(
        self, principal: Principal, username: str, password: str, role: Role, client_addr: str
    ) -> UserView:
        async with self._audit_failure("user.create", principal, client_addr, username[:64]):
            self._may_grant(principal, role)
            name = _check_username(username)
            _check_password(password, name)
            password_hash = await self._hash(password)
            async with self.engine.begin() as conn:
                user = await self._insert_user(conn, name, password_hash, role, principal.subject)
                await self.audit.record(
                    conn,
                    audit_record(
                        "user.create", principal, client_addr, name, detail={"role": role.value}
                    ),
                )
        return user

    async def update_user(
        self,
        principal: Principal,
        username: str,
        client_addr: str,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> UserView:
        name = normalize_username(username)
        async with self._audit_failure("user.update", principal, client_addr, name[:64]):
            if role is not None:
                self._may_grant(principal, role)
            if password is not None:
                _check_password(password, name)
            password_hash = await self._hash(password) if password is not None else None
            now = utcnow()
            async with self.engine.begin() as conn:
                admins = await repo.lock_active_admins(conn)
                row = await repo.user_by_name(conn, name, lock=True)
                if row is None:
                    raise NotFound(f"no user {username!r}")
                if principal.role is None or ROLE_RANK[Role(row.role)] > ROLE_RANK[principal.role]:
                    raise Forbidden("cannot change a user whose role is above yours")
                values: dict[str, Any] = {}
                detail: dict[str, Any] = {}
                if role is not None and role.value != row.role:
                    values["role"] = role.value
                    detail["role"] = {"from": row.role, "to": role.value}
                if disabled is not None and disabled != bool(row.disabled):
                    values["disabled"] = disabled
                    detail["disabled"] = disabled
                if password_hash is not None:
                    values["password_hash"] = password_hash
                    values["password_changed_at"] = now
                    detail["password_reset"] = True
                if not values:
                    return UserView.of(row)
                stays_admin = values.get("role", row.role) == "admin" and not values.get(
                    "disabled", bool(row.disabled)
                )
                if row.role == "admin" and not row.disabled and not stays_admin:
                    self._keep_an_admin(admins, row.id)
                values["updated_at"] = now
                await repo.update_user(conn, row.id, values)
                # A changed role, a disabled account or a reset password ends its sessions;
                # access tokens already issued lapse within their short lifetime.
                detail["sessions_revoked"] = await repo.revoke_user_tokens(
                    conn, row.id, "user-update", now
                )
                await self.audit.record(
                    conn, audit_record("user.update", principal, client_addr, name, detail=detail)
                )
                updated = await repo.user_by_id(conn, row.id)
        return UserView.of(updated)

    async def delete_user(self, principal: Principal, username: str, client_addr: str) -> None:
        name = normalize_username(username)
        async with (
            self._audit_failure("user.delete", principal, client_addr, name[:64]),
            self.engine.begin() as conn,
        ):
            admins = await repo.lock_active_admins(conn)
            row = await repo.user_by_name(conn, name, lock=True)
            if row is None:
                raise NotFound(f"no user {username!r}")
            if principal.role is None or ROLE_RANK[Role(row.role)] > ROLE_RANK[principal.role]:
                raise Forbidden("cannot delete a user whose role is above yours")
            if row.role == "admin" and not row.disabled:
                self._keep_an_admin(admins, row.id)
            await repo.delete_user(conn, row.id)
            await self.audit.record(
                conn,
                audit_record(
                    "user.delete", principal, client_addr, name, detail={"role": row.role}
                ),
            )

    @staticmethod
    def _keep_an_admin(admins: list[int], leaving_id: int) -> None:
        if not [a for a in admins if a != leaving_id]:
            raise Conflict("the last admin cannot be demoted, disabled or deleted")

    async def housekeeping(self) -> None:
        """Drop refresh tokens that expired a day ago (kept a while for reuse detection)."""
        async with self.engine.begin() as conn:
            await repo.delete_stale_refresh(conn, utcnow() - timedelta(days=1))
