"""Playout outputs as station configuration: list (with what the worker last reported),
create, change, delete, each change audited. The worker re-reads the enabled outputs every
cycle, so a change takes effect on the next message; an output on air cannot be deleted.

An output's secret (a stream's source password) is write-only: stored, reported as
``has_secret``, never returned, logged or put in an audit record.

Its live status comes from two places, each the one that knows: Redis for what is live (the
lease says which worker holds it; the worker keeps its last measured level in a key, so the
list is one MGET instead of a scan of the trimmed metrics stream) and the database for what
happened (the last airing, committed by the worker before it announced it).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audio_control import repository as repo
from audio_control.playout.outputs import StreamConfig
from audio_control.schemas import (
    OutputAiring,
    OutputIn,
    OutputOut,
    OutputStatus,
    OutputUpdate,
)
from eas_schemas.clock import utcnow
from eas_schemas.playout_events import PLAYOUT_LEASE_KEY, PLAYOUT_LEVEL_KEY, OutputLevel
from eas_schemas.streams import AUDIT_RECORDS
from servicekit.auth.audit import audit_envelope
from servicekit.auth.tokens import Principal
from servicekit.bus import AsyncBus
from servicekit.errors import Conflict, Invalid, NotFound
from servicekit.outbox import Outbox

SERVICE = "audio-control"


class OutputService:
    def __init__(self, engine: AsyncEngine, outbox: Outbox, bus: AsyncBus) -> None:
        self.engine = engine
        self.outbox = outbox
        self.bus = bus

    # ---- reads -------------------------------------------------------------------------

    async def all(self) -> list[OutputOut]:
        async with self.engine.connect() as conn:
            rows = await repo.list_outputs(conn)
            airings = await repo.last_airings(conn)
        return await self._out(rows, airings)

    async def get(self, name: str) -> OutputOut:
        async with self.engine.connect() as conn:
            row = await self._named(conn, name)
            airings = await repo.last_airings(conn)
        (out,) = await self._out([row], airings)
        return out

    async def _out(self, rows: Any, airings: dict[int, Any]) -> list[OutputOut]:
        if not rows:
            return []
        client = self.bus.client
        keys = [self.bus.key(f"{PLAYOUT_LEASE_KEY}:{r.id}") for r in rows]
        keys += [self.bus.key(f"{PLAYOUT_LEVEL_KEY}:{r.id}") for r in rows]
        values = await client.mget(keys)
        holders, levels = values[: len(rows)], values[len(rows) :]
        result = []
        for row, holder, level in zip(rows, holders, levels, strict=True):
            last = airings.get(int(row.id))
            result.append(
                OutputOut(
                    id=row.id,
                    name=row.name,
                    kind=row.kind,
                    config=json.loads(row.config),
                    keying=json.loads(row.keying),
                    enabled=row.enabled,
                    has_secret=row.secret is not None,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    status=OutputStatus(
                        held_by=_text(holder),
                        playing=last is not None and last.state == "playing",
                        level=OutputLevel.model_validate_json(level) if level else None,
                        last=_airing(last) if last is not None else None,
                    ),
                )
            )
        return result

    # ---- changes -----------------------------------------------------------------------

    async def create(self, body: OutputIn, actor: Principal, client_addr: str | None) -> OutputOut:
        secret = _secret(body.secret)
        _check_secret(body, secret)
        now = utcnow()
        async with self.engine.begin() as conn:
            if await repo.output_named(conn, body.name) is not None:
                raise Conflict(f"an output is already named {body.name!r}")
            try:
                row = await repo.insert_output(
                    conn,
                    {
                        **_columns(body),
                        "name": body.name,
                        "secret": secret,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            except IntegrityError as exc:  # a concurrent create of the same name
                raise Conflict(f"an output is already named {body.name!r}") from exc
            pending = await self._audit(conn, actor, client_addr, "audio.output.create", row)
        await self.outbox.publish(pending)
        return await self.get(body.name)

    async def update(
        self, name: str, body: OutputUpdate, actor: Principal, client_addr: str | None
    ) -> OutputOut:
        new_name = body.name or name
        async with self.engine.begin() as conn:
            row = await self._named(conn, name, lock=True)
            if new_name != name and await repo.output_named(conn, new_name) is not None:
                raise Conflict(f"an output is already named {new_name!r}")
            # Left out: the stored secret stays (a client never has it to send back).
            secret = _secret(body.secret) if "secret" in body.model_fields_set else row.secret
            _check_secret(body, secret)
            try:
                row = await repo.update_output(
                    conn,
                    int(row.id),
                    {**_columns(body), "name": new_name, "secret": secret, "updated_at": utcnow()},
                )
            except IntegrityError as exc:
                raise Conflict(f"an output is already named {new_name!r}") from exc
            pending = await self._audit(
                conn, actor, client_addr, "audio.output.update", row, was=name
            )
        await self.outbox.publish(pending)
        return await self.get(new_name)

    async def delete(self, name: str, actor: Principal, client_addr: str | None) -> None:
        async with self.engine.begin() as conn:
            row = await self._named(conn, name, lock=True)
            playing = await repo.output_playing(conn, int(row.id))
            if playing is not None:
                raise Conflict(
                    f"output {name!r} is on air (item {playing}); stop it or wait until it "
                    "ends, then delete it (or disable it now with PUT enabled=false)"
                )
            await repo.delete_output(conn, int(row.id))
            pending = await self._audit(conn, actor, client_addr, "audio.output.delete", row)
        await self.outbox.publish(pending)

    # ---- inside ------------------------------------------------------------------------

    async def _named(self, conn: AsyncConnection, name: str, *, lock: bool = False) -> Any:
        row = await repo.output_named(conn, name, lock=lock)
        if row is None:
            raise NotFound(f"no output is named {name!r} (GET /api/audio/outputs lists them)")
        return row

    async def _audit(
        self,
        conn: AsyncConnection,
        actor: Principal,
        client_addr: str | None,
        action: str,
        row: Any,
        *,
        was: str | None = None,
    ) -> Any:
        detail: dict[str, Any] = {
            "name": row.name,
            "kind": row.kind,
            "enabled": bool(row.enabled),
            "config": row.config,
            "keying": row.keying,
            "has_secret": row.secret is not None,
        }
        if was is not None and was != row.name:
            detail["renamed_from"] = was
        envelope = audit_envelope(
            SERVICE,
            action,
            actor,
            target=f"output/{row.name}",
            client_addr=client_addr,
            detail=detail,
        )
        return await self.outbox.add(conn, [(AUDIT_RECORDS, envelope)])


def _columns(body: OutputIn | OutputUpdate) -> dict[str, Any]:
    return {
        "kind": body.config.kind,
        "config": json.dumps(body.config.model_dump(mode="json")),
        "keying": json.dumps(body.keying.model_dump(mode="json")),
        "enabled": body.enabled,
    }


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _check_secret(body: OutputIn | OutputUpdate, secret: str | None) -> None:
    if secret is not None and not isinstance(body.config, StreamConfig):
        raise Invalid(
            f"a {body.config.kind} output has no secret (only a stream's source password is one)",
            loc=("body", "secret"),
        )
    if secret is not None and (not secret or any(ord(c) < 32 for c in secret)):
        raise Invalid("the secret must be printable and not empty", loc=("body", "secret"))
    if (
        isinstance(body.config, StreamConfig)
        and body.config.url.startswith("icecast:")
        and secret is None
    ):
        raise Invalid(
            "an Icecast stream needs its source password: send it as 'secret'",
            loc=("body", "secret"),
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _airing(row: Any) -> OutputAiring:
    try:
        result = json.loads(row.result)
    except ValueError:
        result = {}
    error = result.get("error") if isinstance(result, dict) else None
    return OutputAiring(
        item_id=row.item_id,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=str(error) if error else None,
    )
