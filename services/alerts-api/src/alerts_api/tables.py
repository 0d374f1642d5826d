"""The alert store's tables (SQLAlchemy Core: the hot paths never hydrate ORM objects)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from servicekit.outbox import outbox_table
from servicekit.sqltypes import Id, UTCDateTime, new_metadata

metadata = new_metadata()


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

alert_outbox = outbox_table(metadata, "alert_outbox")

# The read cache's watermark: bumped by triggers (migration 0002) on every statement that
# writes alerts, alert_references or alert_history; sum(n) changes exactly at such a commit.
alert_changes = Table(
    "alert_changes",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
)
