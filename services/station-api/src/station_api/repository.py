"""All SQL of station-api. Functions take a connection inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from station_api.tables import (
    audit_log,
    refresh_tokens,
    settings_versions,
    setup_tokens,
    users,
)


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _for_update(conn: AsyncConnection, stmt: Any) -> Any:
    # SQLite serializes writers per database; PostgreSQL needs the row lock.
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


# ---- users ---------------------------------------------------------------------------------


async def user_by_name(conn: AsyncConnection, username: str, lock: bool = False) -> Row[Any] | None:
    stmt = select(users).where(users.c.username == username)
    if lock:
        stmt = _for_update(conn, stmt)
    return (await conn.execute(stmt)).first()


async def user_by_id(conn: AsyncConnection, user_id: int) -> Row[Any] | None:
    return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def list_users(conn: AsyncConnection) -> Sequence[Row[Any]]:
    return (await conn.execute(select(users).order_by(users.c.username))).all()


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def insert_user(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """The new id, or None when the user name is taken."""
    stmt = (
        _insert(conn, users)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["username"])
        .returning(users.c.id)
    )
    new_id: int | None = (await conn.execute(stmt)).scalar_one_or_none()
    return new_id


async def update_user(conn: AsyncConnection, user_id: int, values: dict[str, Any]) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.user_id == user_id))
    await conn.execute(delete(users).where(users.c.id == user_id))


async def lock_active_admins(conn: AsyncConnection) -> list[int]:
    """Ids of enabled admins, locked so two demotions cannot both leave zero admins.

    Callers take this lock before locking the user they change, always in id order, so two
    concurrent changes wait for each other instead of deadlocking.
    """
    stmt = (
        select(users.c.id)
        .where(users.c.role == "admin", users.c.disabled.is_(False))
        .order_by(users.c.id)
    )
    return [int(r) for r in (await conn.execute(_for_update(conn, stmt))).scalars()]


# ---- refresh tokens ------------------------------------------------------------------------


async def insert_refresh(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(refresh_tokens.insert().values(**values))


async def refresh_by_hash(conn: AsyncConnection, token_hash: str) -> Row[Any] | None:
    stmt = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
    return (await conn.execute(_for_update(conn, stmt))).first()


async def revoke_refresh(conn: AsyncConnection, token_id: int, reason: str, now: datetime) -> bool:
    """Revoke one token if it is still live; False when another request got there first."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.id == token_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return bool(result.rowcount)


async def revoke_family(conn: AsyncConnection, family: str, reason: str, now: datetime) -> int:
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family == family, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount)


async def revoke_user_tokens(
    conn: AsyncConnection, user_id: int, reason: str, now: datetime
) -> int:
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount)


async def delete_stale_refresh(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < before))
    return int(result.rowcount)


# ---- setup token ---------------------------------------------------------------------------


async def add_setup_token(
    conn: AsyncConnection, token_hash: str, now: datetime, keep_since: datetime
) -> None:
    """A new setup token; tokens made before ``keep_since`` are dropped."""
    await conn.execute(delete(setup_tokens).where(setup_tokens.c.created_at < keep_since))
    await conn.execute(setup_tokens.insert().values(token_hash=token_hash, created_at=now))


async def has_setup_token(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(setup_tokens.c.id).limit(1))).first() is not None


async def setup_token_matches(conn: AsyncConnection, token_hash: str) -> bool:
    stmt = select(setup_tokens.c.id).where(setup_tokens.c.token_hash == token_hash)
    return (await conn.execute(stmt)).first() is not None


async def consume_setup_token(conn: AsyncConnection, token_hash: str) -> bool:
    """Delete the matching token; only one concurrent caller sees True."""
    result = await conn.execute(delete(setup_tokens).where(setup_tokens.c.token_hash == token_hash))
    return bool(result.rowcount)


async def clear_setup_tokens(conn: AsyncConnection) -> None:
    await conn.execute(delete(setup_tokens))


# ---- settings versions ---------------------------------------------------------------------


async def latest_version(conn: AsyncConnection) -> Row[Any] | None:
    stmt = select(settings_versions).order_by(settings_versions.c.version.desc()).limit(1)
    return (await conn.execute(stmt)).first()


async def settings_version(conn: AsyncConnection, version: int) -> Row[Any] | None:
    stmt = select(settings_versions).where(settings_versions.c.version == version)
    return (await conn.execute(stmt)).first()


async def list_versions(
    conn: AsyncConnection, limit: int, before: int | None
) -> Sequence[Row[Any]]:
    cols = [c for c in settings_versions.c if c.name != "document"]
    stmt = select(*cols).order_by(settings_versions.c.version.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(settings_versions.c.version < before)
    return (await conn.execute(stmt)).all()


async def insert_version(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """False when that version number was taken by a concurrent writer."""
    stmt = (
        _insert(conn, settings_versions)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version"])
        .returning(settings_versions.c.version)
    )
    return (await conn.execute(stmt)).scalar_one_or_none() is not None


async def prune_versions(conn: AsyncConnection, keep: int) -> None:
    newest = (await conn.execute(select(func.max(settings_versions.c.version)))).scalar()
    if newest is not None and newest > keep:
        await conn.execute(
            delete(settings_versions).where(settings_versions.c.version <= newest - keep)
        )


# ---- audit ---------------------------------------------------------------------------------


async def audit_event_recorded(conn: AsyncConnection, event_id: str) -> bool:
    """True when an entry with this bus event id is already in the log (a redelivery)."""
    stmt = select(audit_log.c.id).where(audit_log.c.event_id == event_id)
    return (await conn.execute(stmt)).first() is not None


@dataclass(frozen=True, slots=True)
class AuditFilters:
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    outcome: str | None = None
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def query_audit(
    conn: AsyncConnection, filters: AuditFilters, before_id: int | None, limit: int
) -> Sequence[Row[Any]]:
    """Newest first; ``before_id`` pages backwards through the log."""
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if filters.action:
        # "settings" matches settings.update, settings.rollback ...; a dotted name is exact.
        if "." in filters.action:
            stmt = stmt.where(audit_log.c.action == filters.action)
        else:
            stmt = stmt.where(audit_log.c.action.like(f"{filters.action}.%"))
    if filters.actor:
        stmt = stmt.where(audit_log.c.actor == filters.actor)
    if filters.target:
        stmt = stmt.where(audit_log.c.target == filters.target)
    if filters.outcome:
        stmt = stmt.where(audit_log.c.outcome == filters.outcome)
    if filters.service:
        stmt = stmt.where(audit_log.c.service == filters.service)
    if filters.since:
        stmt = stmt.where(audit_log.c.at >= filters.since)
    if filters.until:
        stmt = stmt.where(audit_log.c.at < filters.until)
    if before_id is not None:
        stmt = stmt.where(audit_log.c.id < before_id)
    return (await conn.execute(stmt)).all()
