"""What login sessions and user administration share: the user model, name and password
rules, password hashing off the event loop, the insert of a new user, and the audit of refused
actions."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.clock import utcnow
from eas_schemas.system_events import AUTH_REVOCATIONS, AuditOutcome
from servicekit.auth.permissions import Role
from servicekit.auth.revocation import revocation_envelope
from servicekit.auth.tokens import Principal
from servicekit.errors import Conflict, Forbidden, Invalid, ServiceError, Throttled
from servicekit.outbox import Outbox, Pending
from station_api import repository as repo
from station_api.passwords import Passwords, policy_problem
from station_api.services.audit import AuditLog, audit_record

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
BAD_CREDENTIALS = "incorrect user name or password"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_username(username: str) -> str:
    return username.strip().lower()


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


def field_error(field: str, message: str) -> Invalid:
    return Invalid(message, loc=("body", field))


def check_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise field_error(
            "username",
            "user name must be 2-64 characters: lowercase letters, digits, '.', '_', '-'",
        )
    return name


def check_password(password: str, username: str, field: str = "password") -> None:
    problem = policy_problem(password, username)
    if problem:
        raise field_error(field, problem)


class AccountStore:
    """The users table as both services use it."""

    def __init__(
        self,
        engine: AsyncEngine,
        passwords: Passwords,
        audit: AuditLog,
        outbox: Outbox | None = None,
        access_ttl_s: int = 300,
    ) -> None:
        self.engine = engine
        self.passwords = passwords
        self.audit = audit
        self.outbox = outbox
        self.access_ttl_s = access_ttl_s

    async def revoke(
        self, conn: AsyncConnection, subject: str, reason: str, token_id: str | None = None
    ) -> Pending | None:
        """Stage a revocation of ``subject``'s access tokens (or of one) in ``conn``'s
        transaction; the caller publishes the result after commit. Refresh tokens are revoked
        in the database; this reaches the access tokens every service verifies on its own."""
        if self.outbox is None:
            return None
        envelope = revocation_envelope(
            subject, reason, valid_for_s=self.access_ttl_s, token_id=token_id
        )
        return await self.outbox.add(conn, [(AUTH_REVOCATIONS, envelope)])

    async def published(self, pending: Pending | None) -> None:
        if pending is not None and self.outbox is not None:
            await self.outbox.publish(pending)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.passwords.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        return await asyncio.to_thread(self.passwords.verify, password, stored)

    @asynccontextmanager
    async def audit_failure(
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

    async def insert_user(
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
