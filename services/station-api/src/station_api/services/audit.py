"""The audit log: every privileged action, who did it, from where, and how it ended.

Entries are written in the same transaction as the change they describe (one commit per
request), so there is never a change without its entry or an entry for a change that rolled
back. Failed attempts (a wrong password) have no change and get a transaction of their own.

The log is hash-chained and each link signed (``servicekit.hashchain``, the key in a file
outside the database): ``verify`` names the first entry edited, deleted, reordered or
re-signed. Writers take the chain's head for the rest of their transaction, so entries from
concurrent requests and replicas line up one after another; callers record the audit entry
last in their transaction, after their other locks.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.system_events import AuditOutcome, AuditRecord
from servicekit.auth.tokens import Principal
from servicekit.hashchain import ChainKey, HashChain, Verification
from station_api import repository as repo
from station_api.tables import AUDIT_FIELDS, audit_log, chain_heads

SERVICE = "station-api"
CHAIN = "audit-log"

CSV_COLUMNS = (
    "id",
    "at",
    "service",
    "actor",
    "actor_role",
    "client_addr",
    "action",
    "target",
    "outcome",
    "detail",
)


def audit_record(
    action: str,
    actor: str | Principal,
    client_addr: str | None,
    target: str | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    detail: dict[str, Any] | None = None,
    actor_role: str | None = None,
) -> AuditRecord:
    if isinstance(actor, Principal):
        actor_role = actor.role.value if actor.role else None
        actor = actor.subject
    return AuditRecord(
        action=action,
        actor=actor,
        actor_role=actor_role,
        client_addr=client_addr,
        target=target,
        outcome=outcome,
        at=datetime.now(UTC),
        service=SERVICE,
        detail=detail or {},
    )


def _row_values(record: AuditRecord, event_id: str | None) -> dict[str, Any]:
    return {
        "at": record.at,
        "service": record.service,
        "actor": record.actor,
        "actor_role": record.actor_role,
        "client_addr": record.client_addr,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome.value,
        "detail": json.dumps(record.detail, sort_keys=True, default=str),
        "event_id": event_id,
    }


class AuditLog:
    def __init__(self, engine: AsyncEngine, key: ChainKey) -> None:
        self.engine = engine
        self.chain = HashChain(CHAIN, audit_log, chain_heads, key, AUDIT_FIELDS)

    async def record(
        self, conn: AsyncConnection, record: AuditRecord, event_id: str | None = None
    ) -> bool:
        """Write inside the caller's transaction; False for an already recorded event id."""
        # The head first: with it held, no other writer can record the same event id
        # between the check and the insert (and no seq is spent on a duplicate).
        await self.chain.lock(conn)
        if event_id is not None and await repo.audit_event_recorded(conn, event_id):
            return False
        await self.chain.append(conn, _row_values(record, event_id))
        return True

    async def seal_unchained(self) -> int:
        """Chain the entries written before the log was chained (in id order), once."""
        async with self.engine.begin() as conn:
            return await self.chain.seal_unchained(conn, audit_log.c.id)

    async def prune(self, before: datetime) -> int:
        """Entries older than ``before`` deleted behind a signed anchor (verify still holds)."""
        async with self.engine.begin() as conn:
            return await self.chain.prune(conn, audit_log.c.at < before)

    async def verify(self) -> Verification:
        return await self.chain.verify(self.engine)

    async def record_alone(self, record: AuditRecord, event_id: str | None = None) -> bool:
        async with self.engine.begin() as conn:
            return await self.record(conn, record, event_id)

    async def query(
        self, filters: repo.AuditFilters, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await repo.query_audit(conn, filters, before_id, limit)
        return [_row_dict(r) for r in rows]

    async def csv_chunks(self, filters: repo.AuditFilters, page: int = 1000) -> AsyncIterator[str]:
        """The whole filtered log as CSV, a page at a time (no session held between pages)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        before: int | None = None
        while True:
            async with self.engine.connect() as conn:
                rows = await repo.query_audit(conn, filters, before, page)
            for r in rows:
                d = _row_dict(r)
                writer.writerow([_csv_safe(d[c]) for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < page:
                return
            before = int(rows[-1].id)


def _row_dict(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "at": r.at,
        "service": r.service,
        "actor": r.actor,
        "actor_role": r.actor_role,
        "client_addr": r.client_addr,
        "action": r.action,
        "target": r.target,
        "outcome": r.outcome,
        "detail": json.loads(r.detail) if r.detail else {},
    }


def _csv_safe(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    text = str(value)
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection); user
    # names and targets come from users, so quote such cells as text.
    if text and text[0] in "=+-@\t\r":
        text = "'" + text
    return text
