"""The alert store's tables (SQLAlchemy Core: the hot paths never hydrate ORM objects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite has no 64-bit autoincrement type name; INTEGER PRIMARY KEY is its rowid alias.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stored in UTC; always returned timezone-aware (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store times in UTC with an offset")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sender", String(255), nullable=False),
    Column("identifier", String(255), nullable=False),
    Column("sent", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("msg_type", String(16), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("feed", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("event", String(255), nullable=False),
    Column("same_event", String(3)),
    Column("severity", String(16), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("certainty", String(16), nullable=False),
    Column("headline", Text),
    Column("area_desc", Text, nullable=False),
    Column("onset", UTCDateTime()),
    Column("effective", UTCDateTime()),
    Column("expires", UTCDateTime()),
    Column("relevant", Boolean, nullable=False),
    Column("relevance_reason", Text, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("cap", Text, nullable=False, comment="the CAP alert as JSON (eas_schemas.cap.CapAlert)"),
    Column("item_json", Text, nullable=False, comment="list item, rendered once per change"),
    Column("geometry_json", Text, comment="GeoJSON geometry of the areas, rendered once"),
    UniqueConstraint("sender", "identifier", "sent", name="uq_alerts_identity"),
    Index("ix_alerts_sent_id", "sent", "id"),
    Index("ix_alerts_state_sent", "state", "sent"),
    Index("ix_alerts_state_expires", "state", "expires"),
    Index("ix_alerts_event", "event"),
    Index("ix_alerts_received", "received_at"),
)

alert_codes = Table(
    "alert_codes",
    metadata,
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("code", String(16), primary_key=True),
    Index("ix_alert_codes_kind_code", "kind", "code", "alert_id"),
)

alert_references = Table(
    "alert_references",
    metadata,
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("ref_sender", String(255), primary_key=True),
    Column("ref_identifier", String(255), primary_key=True),
    Column("ref_sent", UTCDateTime(), primary_key=True),
    Column("ref_alert_id", Id, ForeignKey("alerts.id", ondelete="SET NULL")),
    Index("ix_alert_references_target", "ref_sender", "ref_identifier", "ref_sent"),
    Index("ix_alert_references_ref_alert", "ref_alert_id"),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("by_alert_id", Id, ForeignKey("alerts.id", ondelete="SET NULL")),
    Index("ix_alert_history_alert", "alert_id", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("stream", String(128), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
