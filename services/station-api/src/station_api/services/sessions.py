"""Login sessions: logins, refresh-token rotation, logout, password change, first-admin setup.

- Access tokens: short-lived Ed25519 JWTs (servicekit.auth.tokens), verified by every service
  locally; each is bound to a fresh CSRF token (its hash is a claim) for cookie use.
- Refresh tokens: 256-bit random strings, stored only as SHA-256, rotated on every use. The
  tokens descending from one login form a family; presenting a token that was already rotated
  means it was copied, so the whole family is revoked (the thief's and the user's sessions).
- Every privileged action and every failure is written to the audit log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from eas_schemas.clock import utcnow
from eas_schemas.system_events import AuditOutcome
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import Principal, TokenSigner
from servicekit.errors import Forbidden, NotFound, ServiceError, Unauthorized, Unavailable
from station_api import repository as repo
from station_api.services.accounts import (
    BAD_CREDENTIALS,
    AccountStore,
    UserView,
    check_password,
    check_username,
    field_error,
    normalize_username,
    token_hash,
)
from station_api.services.audit import audit_record
from station_api.throttle import LoginThrottle

# How long a setup token made by another replica (or an earlier start) stays valid beside a
# new one: longer than replicas take to start together, short enough to retire old logs.
SETUP_TOKEN_OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class TokenBundle:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    csrf_token: str
    username: str
    role: Role


class SessionService:
    def __init__(
        self,
        accounts: AccountStore,
        signer: TokenSigner | None,
        throttle: LoginThrottle,
        access_ttl_s: int = 300,
        refresh_ttl_s: int = 14 * 86_400,
    ) -> None:
        self.accounts = accounts
        self.engine = accounts.engine
        self.audit = accounts.audit
        self.signer = signer
        self.throttle = throttle
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def _require_signer(self) -> TokenSigner:
        if self.signer is None:
            raise Unavailable(
                "no signing key: set STATION_API_SIGNING_KEY_FILE or EAS_AUTH_SIGNING_KEY_FILE"
            )
        return self.signer

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

    # ---- login, refresh, logout ----------------------------------------------------------

    async def login(self, username: str, password: str, client_addr: str) -> TokenBundle:
        self._require_signer()
        name = normalize_username(username)[:64]
        async with self.accounts.audit_failure("auth.login", name or "(empty)", client_addr, name):
            await self.throttle.attempt(name, client_addr)
            async with self.engine.connect() as conn:
                user = await repo.user_by_name(conn, name)
            stored = user.password_hash if user is not None and not user.disabled else None
            ok, rehash = await self.accounts.verify(password, stored)
            if not ok or user is None:
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
        pending = None
        async with self.engine.begin() as conn:
            actor: str | None = principal.subject if principal else None
            revoked = 0
            if principal is not None and principal.token_id is not None:
                # The access token itself, not only the refresh token: it would otherwise
                # keep working (and keep its sockets open) until it expires.
                pending = await self.accounts.revoke(
                    conn, principal.subject, "logout", token_id=principal.token_id
                )
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
        await self.accounts.published(pending)

    async def change_password(
        self, principal: Principal, current: str, new: str, client_addr: str
    ) -> TokenBundle:
        name = principal.subject
        async with self.accounts.audit_failure(
            "auth.password_change", principal, client_addr, name
        ):
            await self.throttle.attempt(name, client_addr)
            async with self.engine.connect() as conn:
                user = await repo.user_by_name(conn, name)
            if user is None or user.disabled:
                raise Unauthorized("account not found or disabled")
            ok, _ = await self.accounts.verify(current, user.password_hash)
            if not ok:
                raise Forbidden("current password is wrong")
            await self.throttle.succeeded(name, client_addr)
            check_password(new, name, "new_password")
            if new == current:
                raise field_error("new_password", "new password must differ from the current")
        new_hash = await self.accounts.hash(new)
        now = utcnow()
        async with self.engine.begin() as conn:
            await repo.update_user(
                conn, user.id, {"password_hash": new_hash, "password_changed_at": now}
            )
            revoked = await repo.revoke_user_tokens(conn, user.id, "password-change", now)
            # Every access token issued before now; the new one, minted after, stays good.
            pending = await self.accounts.revoke(conn, name, "password-change")
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
        await self.accounts.published(pending)
        return bundle

    # ---- first admin ---------------------------------------------------------------------

    async def ensure_setup_token(self, now: datetime | None = None) -> str | None:
        """A new one-time setup token while no user exists, printed by the caller.

        Replicas started together each make and print their own, and each one works (until
        the first admin exists, which ends them all): a single token replaced by every
        replica in turn made all but the last replica's printed token useless, and two
        replicas inserting the one row at once failed the start of one of them (seen in the
        scaled fault run). A token older than ``SETUP_TOKEN_OVERLAP`` is dropped when a new
        one is made, so a restart still retires what older logs show.
        """
        at = now or utcnow()
        async with self.engine.begin() as conn:
            if await repo.count_users(conn) > 0:
                await repo.clear_setup_tokens(conn)
                return None
            token = secrets.token_urlsafe(24)
            await repo.add_setup_token(conn, token_hash(token), at, at - SETUP_TOKEN_OVERLAP)
        return token

    async def setup(
        self, setup_token: str, username: str, password: str, client_addr: str
    ) -> UserView:
        # Cheap refusals first and unaudited: once setup is closed, or while an address is
        # throttled, a request costs one query and writes nothing (it is a public endpoint).
        async with self.engine.connect() as conn:
            if await repo.count_users(conn) > 0 or not await repo.has_setup_token(conn):
                raise Forbidden("setup is closed: the first admin exists")
        await self.throttle.attempt_setup(client_addr)
        async with self.accounts.audit_failure(
            "auth.setup", username[:64] or "(empty)", client_addr
        ):
            async with self.engine.connect() as conn:
                if not await repo.setup_token_matches(conn, token_hash(setup_token)):
                    raise Forbidden("invalid or already used setup token")
            name = check_username(username)
            check_password(password, name)
            # Only a holder of the token gets here, so only they can make the server hash.
            password_hash = await self.accounts.hash(password)
            async with self.engine.begin() as conn:
                consumed = await repo.consume_setup_token(conn, token_hash(setup_token))
                if not consumed or await repo.count_users(conn) > 0:
                    raise Forbidden("invalid or already used setup token")
                user = await self.accounts.insert_user(
                    conn, name, password_hash, Role.ADMIN, "setup"
                )
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

    async def me(self, principal: Principal) -> UserView:
        async with self.engine.connect() as conn:
            row = await repo.user_by_name(conn, principal.subject)
        if row is None:
            raise NotFound("this token's user no longer exists")
        return UserView.of(row)

    async def housekeeping(self) -> None:
        """Drop refresh tokens that expired a day ago (kept a while for reuse detection)."""
        async with self.engine.begin() as conn:
            await repo.delete_stale_refresh(conn, utcnow() - timedelta(days=1))
