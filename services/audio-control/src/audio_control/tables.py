"""audio-control's tables: relay decisions, the inputs they were made from, generated
messages (metadata apart from the audio), playout, the station log, and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

from servicekit.hashchain import chain_heads_table
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

# ---- playout ---------------------------------------------------------------------------------

playout_outputs = Table(
    "playout_outputs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, comment="wav_folder, null, device, stream"),
    Column("config", Text, nullable=False, comment="the output's settings (JSON), no secret"),
    Column("secret", Text, comment="write-only credential (stream password), never returned"),
    Column("keying", Text, nullable=False, comment="transmitter keying (JSON)"),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

playout_items = Table(
    "playout_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("eas_messages.id", ondelete="CASCADE"), nullable=False),
    Column("decision_id", Id, ForeignKey("relay_decisions.id", ondelete="SET NULL")),
    Column("header", Text, nullable=False),
    Column("event_code", String(3), nullable=False),
    Column("precedence", Integer, nullable=False),
    Column("precedence_class", String(12), nullable=False),
    Column("air_at", UTCDateTime(), nullable=False),
    Column("state", String(12), nullable=False),
    Column("queued_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("reason", Text, nullable=False),
    Column("actor", String(128)),
    Column("requeue_of", Id, comment="the interrupted item this one repeats"),
    Column("resend_of", Id, comment="the aired item an operator resent"),
    Index("ix_playout_items_queue", "state", "precedence", "air_at", "id"),
    Index("ix_playout_items_decision", "decision_id"),
)

# One row per item and output: an item is never aired twice on one output, restarts included.
playout_airings = Table(
    "playout_airings",
    metadata,
    Column("item_id", Id, ForeignKey("playout_items.id", ondelete="CASCADE"), primary_key=True),
    Column("output_id", Id, ForeignKey("playout_outputs.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("result", Text, nullable=False, comment="what the output reported (JSON)"),
)

# One row per scheduled test period ("RWT 2026-W49", "RMT 2026-12"): replicas and restarts
# claim it once, so a test is never originated twice, and a missed one is recorded once.
scheduled_tests = Table(
    "scheduled_tests",
    metadata,
    Column("period", String(32), primary_key=True),
    Column("event_code", String(3), nullable=False),
    Column("slot_at", UTCDateTime(), nullable=False, comment="the minute drawn in the window"),
    Column("state", String(12), nullable=False, comment="sent, missed or failed"),
    Column("message_id", Id),
    Column("item_id", Id),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

# ---- the station log -------------------------------------------------------------------------

# Everything received, decided, originated, tested and aired, hash-chained and signed
# (``servicekit.hashchain``): each entry is written in the transaction of what it records.
station_log = Table(
    "station_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False, comment="chain order"),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(16), nullable=False, comment="received_cap, decision, playout, ..."),
    Column("summary", Text, nullable=False, comment="one plain sentence"),
    Column("originator", String(3)),
    Column("event_code", String(3)),
    Column("locations", Text, nullable=False, comment="JSON list of PSSCCC"),
    Column("header", Text),
    Column("decision_state", String(24)),
    Column("reasons", Text, comment="the decision's reason, or why it happened"),
    Column("output", String(64), comment="the output of a per-output playout result"),
    Column("result", Text, comment="the playout result on that output (JSON)"),
    Column("actor", String(128), comment="who acted (an operator, the schedule)"),
    Column("alert_id", Id),
    Column("decision_id", Id),
    Column("message_id", Id),
    Column("item_id", Id),
    Column("detail", Text, nullable=False, comment="JSON object"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", Text, nullable=False, comment="Ed25519 over the hash (key file)"),
    Index("ix_station_log_at", "at", "seq"),
    Index("ix_station_log_kind", "kind", "seq"),
    Index("ix_station_log_event", "event_code", "seq"),
)
STATION_LOG_FIELDS = tuple(
    c.name for c in station_log.columns if c.name not in ("seq", "prev_hash", "hash", "signature")
)

chain_heads = chain_heads_table(metadata, "audio_control_chain_heads")
