"""Async SQLAlchemy engine factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

from typing import Any

from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    ConnectionDoesNotExistError,
    CrashShutdownError,
    PostgresConnectionError,
)
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def normalize_database_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def sync_database_url(url: str) -> str:
    """The same database for sync tools (Alembic offline, benchmarks)."""
    url = normalize_database_url(url)
    return url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")


CONNECT_TIMEOUT_S = 5.0


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    url = normalize_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("postgresql"):
        # Bounded waits: during a database outage a request fails in seconds with a 503
        # (servicekit.errors) instead of hanging on asyncpg's 60 s connect or the pool.
        kwargs.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=CONNECT_TIMEOUT_S * 2,
            connect_args={"timeout": CONNECT_TIMEOUT_S},
        )
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _sqlite_pragmas(engine)
    return engine


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; busy_timeout waits instead of failing.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def database_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (stopped, restarting, a
    network cut), as opposed to a query it refused. Looks through SQLAlchemy's wrapping."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | PoolTimeout | TimeoutError):
            return True
        if isinstance(current, PostgresConnectionError | CannotConnectNowError):
            return True
        # What asyncpg raises itself (unwrapped: a service reading through the driver
        # directly) when the server goes away under an open connection.
        if isinstance(
            current, ConnectionDoesNotExistError | AdminShutdownError | CrashShutdownError
        ):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or None)
    return False
