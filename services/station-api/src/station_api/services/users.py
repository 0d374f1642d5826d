"""User administration: list, create, change role, disable, reset password, delete.

A role can only grant roles up to its own; the last active admin cannot be demoted, disabled
or deleted; a changed role, a disabled account or a reset password ends the user's sessions.
"""

from __future__ import annotations

from typing import Any

from eas_schemas.clock import utcnow
from servicekit.auth.permissions import ROLE_RANK, Role
from servicekit.auth.tokens import Principal
from servicekit.errors import Conflict, Forbidden, NotFound
from station_api import repository as repo
from station_api.services.accounts import (
    AccountStore,
    UserView,
    check_password,
    check_username,
    normalize_username,
)
from station_api.services.audit import audit_record


class UserService:
    def __init__(self, accounts: AccountStore) -> None:
        self.accounts = accounts
        self.engine = accounts.engine
        self.audit = accounts.audit

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
        async with self.accounts.audit_failure(
            "user.create", principal, client_addr, username[:64]
        ):
            self._may_grant(principal, role)
            name = check_username(username)
            check_password(password, name)
            password_hash = await self.accounts.hash(password)
            async with self.engine.begin() as conn:
                user = await self.accounts.insert_user(
                    conn, name, password_hash, role, principal.subject
                )
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
        async with self.accounts.audit_failure("user.update", principal, client_addr, name[:64]):
            if role is not None:
                self._may_grant(principal, role)
            if password is not None:
                check_password(password, name)
            password_hash = await self.accounts.hash(password) if password is not None else None
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
                # Access tokens too, and the sockets they opened: a demoted or disabled user
                # keeps nothing of the old role.
                pending = await self.accounts.revoke(conn, name, "user-update")
                await self.audit.record(
                    conn, audit_record("user.update", principal, client_addr, name, detail=detail)
                )
                updated = await repo.user_by_id(conn, row.id)
        await self.accounts.published(pending)
        return UserView.of(updated)

    async def delete_user(self, principal: Principal, username: str, client_addr: str) -> None:
        name = normalize_username(username)
        async with (
            self.accounts.audit_failure("user.delete", principal, client_addr, name[:64]),
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
            pending = await self.accounts.revoke(conn, name, "user-delete")
            await self.audit.record(
                conn,
                audit_record(
                    "user.delete", principal, client_addr, name, detail={"role": row.role}
                ),
            )
        await self.accounts.published(pending)

    @staticmethod
    def _keep_an_admin(admins: list[int], leaving_id: int) -> None:
        if not [a for a in admins if a != leaving_id]:
            raise Conflict("the last admin cannot be demoted, disabled or deleted")

    async def create_admin(self, username: str, password: str) -> UserView:
        """For the `station-api create-admin` command (whoever runs it owns the database)."""
        name = check_username(username)
        check_password(password, name)
        password_hash = await self.accounts.hash(password)
        async with self.engine.begin() as conn:
            user = await self.accounts.insert_user(conn, name, password_hash, Role.ADMIN, "cli")
            await repo.clear_setup_tokens(conn)
            await self.audit.record(
                conn,
                audit_record(
                    "user.create", "cli", None, name, detail={"role": "admin", "via": "cli"}
                ),
            )
        return user
