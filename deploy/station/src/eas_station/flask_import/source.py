"""Reading the Flask EAS Station's PostgreSQL database (read-only, plain SQL).

The Flask station's schema is whatever its Alembic head made it; rather than trusting one
revision id, the reader checks that every table and column the import reads is there, and
says which is missing when one is not (an older or newer Flask schema than this knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from servicekit.db import make_engine

# What the import reads, per table. Optional tables may be absent (a kind then has no rows).
REQUIRED: dict[str, tuple[str, ...]] = {
    "cap_alerts": (
        "id",
        "identifier",
        "sent",
        "expires",
        "status",
        "message_type",
        "scope",
        "event",
        "urgency",
        "severity",
        "certainty",
        "area_desc",
        "headline",
        "description",
        "instruction",
        "raw_json",
        "source",
        "eas_forwarded",
        "eas_forwarding_reason",
    ),
    "location_settings": ("id", "county_name", "state_code", "timezone"),
    "admin_users": ("id", "username", "password_hash", "salt", "is_active", "role_id"),
    "roles": ("id", "name"),
    "received_eas_alerts": (
        "id",
        "received_at",
        "source_name",
        "raw_same_header",
        "forwarding_decision",
        "forwarding_reason",
        "decode_confidence",
        "event_code",
        "event_name",
    ),
    "audio_source_configs": ("id", "name", "source_type", "config", "enabled", "description"),
}
# Present at the Flask head (split out of location_settings in 20260506); older databases
# keep these columns in location_settings.
FILTER_COLUMNS = ("fips_codes", "zone_codes")
# Read for the station log when present (history only: nothing is aired again).
LOGGED: dict[str, tuple[str, ...]] = {
    "eas_messages": ("id", "same_header", "created_at", "alert_identifier"),
    "manual_eas_activations": (
        "id",
        "identifier",
        "event_code",
        "event_name",
        "same_header",
        "created_at",
    ),
}
RWT_COLUMNS = ("enabled", "days_of_week", "start_hour", "start_minute", "end_hour", "end_minute")


_LOG_COLUMNS = {
    "sent_at",
    "triggered_at",
    "created_by",
    "triggered_by",
    "headline",
    "status",
    "message_type",
    "tts_provider",
}


class SourceError(Exception):
    """The Flask database cannot be read as one; the message says why."""


@dataclass
class FlaskRows:
    revision: str | None
    alerts: list[dict[str, Any]]
    location: dict[str, Any] | None
    users: list[dict[str, Any]]
    received: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    activations: list[dict[str, Any]]
    rwt: dict[str, Any] | None


async def _columns(conn: AsyncConnection) -> dict[str, set[str]]:
    rows = await conn.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    )
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), set()).add(str(column))
    return out


def check_schema(columns: dict[str, set[str]]) -> str:
    """Where the location filter codes live ('alert_filter_settings' or 'location_settings')."""
    if "alembic_version" not in columns:
        raise SourceError(
            "not a Flask EAS Station database: it has no alembic_version table "
            "(is --from the right database?)"
        )
    missing = [
        f"{table}.{column}" if table in columns else table
        for table, wanted in REQUIRED.items()
        for column in (wanted if table in columns else wanted[:1])
        if table not in columns or column not in columns[table]
    ]
    if missing:
        raise SourceError(
            "this Flask schema version is not one the import knows: missing "
            + ", ".join(dict.fromkeys(missing))
        )
    for table in ("alert_filter_settings", "location_settings"):
        if all(c in columns.get(table, set()) for c in FILTER_COLUMNS):
            return table
    raise SourceError(
        "this Flask schema version is not one the import knows: no table holds the "
        "station's fips_codes and zone_codes"
    )


async def _all(conn: AsyncConnection, sql: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in await conn.execute(text(sql))]


async def read_flask(url: str) -> FlaskRows:
    engine: AsyncEngine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            columns = await _columns(conn)
            filters = check_schema(columns)
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version LIMIT 1"))
            ).scalar_one_or_none()
            # Sent order, so a Cancel or Update is stored after what it references.
            alerts = await _all(conn, "SELECT * FROM cap_alerts ORDER BY sent, id")
            locations = await _all(conn, "SELECT * FROM location_settings ORDER BY id LIMIT 1")
            location = locations[0] if locations else None
            if location is not None and filters == "alert_filter_settings":
                codes = await _all(
                    conn,
                    "SELECT fips_codes, zone_codes FROM alert_filter_settings ORDER BY id LIMIT 1",
                )
                location.update(codes[0] if codes else {"fips_codes": [], "zone_codes": []})
            users = await _all(
                conn,
                "SELECT u.id, u.username, u.password_hash, u.salt, u.is_active, "
                "r.name AS role_name FROM admin_users u LEFT JOIN roles r ON r.id = u.role_id "
                "ORDER BY u.id",
            )
            received = await _all(
                conn,
                "SELECT * FROM received_eas_alerts ORDER BY received_at, id",
            )
            inputs = await _all(conn, "SELECT * FROM audio_source_configs ORDER BY id")
            logged: dict[str, list[dict[str, Any]]] = {}
            for table, wanted in LOGGED.items():
                have = columns.get(table, set())
                if all(c in have for c in wanted):
                    # Not the audio blobs: the log keeps what was sent, not its sound.
                    cols = ", ".join(sorted((have & _LOG_COLUMNS) | set(wanted)))
                    sql = f"SELECT {cols} FROM {table} ORDER BY created_at, id"  # noqa: S608
                    logged[table] = await _all(conn, sql)
            rwt = None
            if all(c in columns.get("rwt_schedule_config", set()) for c in RWT_COLUMNS):
                found = await _all(conn, "SELECT * FROM rwt_schedule_config ORDER BY id LIMIT 1")
                rwt = found[0] if found else None
    except SourceError:
        raise
    except (OSError, OperationalError, DBAPIError) as exc:
        raise SourceError(f"cannot read the Flask database: {_first_line(exc)}") from exc
    finally:
        await engine.dispose()
    return FlaskRows(
        revision=str(revision) if revision is not None else None,
        alerts=alerts,
        location=location,
        users=users,
        received=received,
        inputs=inputs,
        messages=logged.get("eas_messages", []),
        activations=logged.get("manual_eas_activations", []),
        rwt=rwt,
    )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0]
