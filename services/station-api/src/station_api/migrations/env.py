"""Alembic environment: runs on the connection handed in by `station_api.migrate`."""

from __future__ import annotations

from typing import Any

from alembic import context

from station_api.tables import metadata

# In one-machine mode every service shares one database: station-api keeps its own version
# table (station_api.migrate) and never looks at (or autogenerates drops for) other tables.

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `station-api migrate`, which supplies a connection")


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return name in metadata.tables
    return True


context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    version_table=context.config.attributes["version_table"],
    include_name=_ours,
)
with context.begin_transaction():
    context.run_migrations()
