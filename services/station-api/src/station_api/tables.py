"""station-api's tables: users, refresh tokens, settings versions, audit log, outbox."""

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
)

from servicekit.hashchain import chain_heads_table
from servicekit.outbox import outbox_table
from servicekit.sqltypes import Id, UTCDateTime, new_metadata

metadata = new_metadata()


users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("password_changed_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime()),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True, comment="SHA-256 hex"),
    Column("family", String(32), nullable=False, comment="one login; rotation keeps it"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    Column("revoked_reason", String(32)),
    Column("client_addr", String(64)),
    Index("ix_refresh_tokens_user", "user_id"),
    Index("ix_refresh_tokens_family", "family"),
)

# Only while no user exists: the hash of the token printed at start (one row at most).
setup_tokens = Table(
    "setup_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

settings_versions = Table(
    "settings_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("sections", Text, nullable=False, comment="JSON list of changed sections"),
    Column("based_on", Integer, comment="for a rollback: the version restored"),
    Column("comment", Text),
    Column("document", Text, nullable=False, comment="StationSettings JSON, secrets included"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("service", String(64), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("actor_role", String(32)),
    Column("client_addr", String(64)),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, comment="JSON object, never a secret"),
    Column("event_id", String(32), unique=True, comment="bus event id, for idempotent intake"),
    # The hash chain (servicekit.hashchain); null only on rows written before it existed,
    # which the service chains at its next start.
    Column("seq", BigInteger, unique=True, comment="place in the hash chain"),
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
    Column("signature", Text, comment="Ed25519 over the hash (key file, not the database)"),
    Index("ix_audit_log_at", "at", "id"),
    Index("ix_audit_log_action", "action", "at"),
    Index("ix_audit_log_actor", "actor", "at"),
)

AUDIT_FIELDS = (
    "at",
    "service",
    "actor",
    "actor_role",
    "client_addr",
    "action",
    "target",
    "outcome",
    "detail",
    "event_id",
)
chain_heads = chain_heads_table(metadata, "station_chain_heads")

# Named apart from alerts-api's outbox: in one-machine mode the services share one database.
outbox = outbox_table(metadata, "station_outbox")
