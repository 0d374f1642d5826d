"""audio-control's tables: relay decisions, the inputs they were made from, generated
messages (metadata apart from the audio), and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from servicekit.outbox import outbox_table
from servicekit.sqltypes import Id, UTCDateTime, new_metadata

metadata = new_metadata()

relay_decisions = Table(
    "relay_decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(8), nullable=False, comment="cap or air"),
    Column("state", String(24), nullable=False),
    Column("action", String(8), nullable=False, comment="what the rules said"),
    Column("revision", Integer, nullable=False),
    Column("alert_id", Id, comment="alerts-api id (CAP)"),
    Column("alert_sender", String(255)),
    Column("alert_identifier", String(255)),
    Column("alert_sent", UTCDateTime()),
    Column("heard_event_id", String(32), comment="same.header envelope id (air)"),
    Column("event_code", String(3)),
    Column("originator", String(3)),
    Column("header", Text, comment="the ZCZC header that airs, with the station's callsign"),
    Column("issued", UTCDateTime(), nullable=False),
    Column("purge_at", UTCDateTime()),
    Column("precedence", Integer, nullable=False),
    Column("relay_at", UTCDateTime()),
    Column("confirm_by", UTCDateTime()),
    Column("message_id", Id),
    Column(
        "message_status",
        String(12),
        nullable=False,
        comment="none, pending (to be composed), composing, ready, failed",
    ),
    Column("composing_since", UTCDateTime(), comment="when a composer took it"),
    Column("decided_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("event", Text, nullable=False, comment="the latest relay.decision payload (JSON)"),
    Column("compose", Text, comment="what the message is made from (JSON), when it airs"),
    Index("ix_relay_decisions_state_id", "state", "id"),
    Index("ix_relay_decisions_alert", "alert_id"),
    Index("ix_relay_decisions_cap_identity", "alert_sender", "alert_identifier", "alert_sent"),
    Index("ix_relay_decisions_event_issued", "event_code", "issued"),
    Index("ix_relay_decisions_confirm_by", "state", "confirm_by"),
    Index("ix_relay_decisions_message_status", "message_status", "id"),
    Index("ix_relay_decisions_created", "created_at", "id"),
)

# Every bus event a decision was made from or changed by, once: what makes the consumers
# idempotent (the same envelope delivered again finds its row and changes nothing).
decision_inputs = Table(
    "relay_decision_inputs",
    metadata,
    Column("envelope_id", String(32), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("decision_id", Id),
    Column("handled_at", UTCDateTime(), nullable=False),
    Column("outcome", Text, nullable=False),
)

messages = Table(
    "eas_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False, comment="relay or origination"),
    Column("decision_id", Id, ForeignKey("relay_decisions.id", ondelete="SET NULL")),
    Column("header", Text, nullable=False),
    Column("originator", String(3), nullable=False),
    Column("event_code", String(3), nullable=False),
    Column("locations", Text, nullable=False, comment="JSON list of PSSCCC"),
    Column("duration", String(4), nullable=False, comment="TTTT"),
    Column("issued", UTCDateTime(), nullable=False),
    Column("narration_source", String(12), nullable=False),
    Column("text", Text, comment="the alert text spoken or shown (ECIG 3.6)"),
    Column("tone", String(12), comment="attention signal: broadcast or nwr; null when none"),
    Column("attention_s", Float),
    Column("rate", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("sha256", String(64), nullable=False, comment="of the WAV"),
    Column("components", Text, nullable=False, comment="composer's map and narration (JSON)"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Index("ix_eas_messages_created", "created_at", "id"),
    Index("ix_eas_messages_decision", "decision_id"),
)

message_audio = Table(
    "eas_message_audio",
    metadata,
    Column("message_id", Id, ForeignKey("eas_messages.id", ondelete="CASCADE"), primary_key=True),
    Column("wav", LargeBinary, nullable=False),
)

outbox = outbox_table(metadata, "audio_control_outbox")
