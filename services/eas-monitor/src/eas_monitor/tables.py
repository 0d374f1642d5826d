"""eas-monitor's tables: monitored inputs, decode history, clips (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from servicekit.sqltypes import Id, UTCDateTime, new_metadata

metadata = new_metadata()

monitor_inputs = Table(
    "monitor_inputs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False, comment="type-specific settings as JSON"),
    Column("wanted_running", Boolean, nullable=False, comment="the supervisor keeps it running"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

same_decodes = Table(
    "same_decodes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False, unique=True, comment="envelope id (ULID)"),
    Column("type", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("event_code", String(3)),
    Column("confidence", Float, nullable=False),
    Column("heard_at", UTCDateTime(), nullable=False),
    Column("clip_id", String(40)),
    Column("envelope", Text, nullable=False, comment="the published envelope as JSON"),
    Column("stored_at", UTCDateTime(), nullable=False),
    Index("ix_same_decodes_heard", "heard_at", "id"),
    Index("ix_same_decodes_code", "event_code", "heard_at"),
)

same_decode_inputs = Table(
    "same_decode_inputs",
    metadata,
    Column("decode_id", Id, ForeignKey("same_decodes.id", ondelete="CASCADE"), primary_key=True),
    # no foreign key: the history outlives a deleted input
    Column("input_id", Id, primary_key=True),
    Index("ix_same_decode_inputs_input", "input_id", "decode_id"),
)

monitor_clips = Table(
    "monitor_clips",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("input_id", Id, nullable=False),
    Column("decode_id", Id, ForeignKey("same_decodes.id", ondelete="SET NULL")),
    Column("file_name", String(80), nullable=False, comment="under <data_dir>/clips"),
    Column("rate", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_monitor_clips_created", "created_at"),
)
