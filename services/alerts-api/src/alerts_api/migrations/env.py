"""Alembic environment: runs on the connection handed in by `alerts_api.migrate`."""

from __future__ import annotations

from alembic import context

from alerts_api.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `alerts-api migrate`, which supplies a connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
