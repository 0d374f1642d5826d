"""The station's settings: validated as a whole, versioned, audited, announced after commit.

Every write (update, patch, rollback, import) goes through `_save`, one transaction that
writes the new version, its audit entry and its `settings.changed` event (outbox); after the
commit the event is published and the secret-free current document is put in Redis
(`CURRENT_SETTINGS_KEY`) for services that apply settings without calling station-api.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope
from eas_schemas.station_settings import (
    CURRENT_SETTINGS_KEY,
    EXPORT_FORMAT,
    SETTINGS_CHANGED_TYPE,
    SettingsAction,
    SettingsChanged,
    SettingsExport,
    StationSettings,
    carry_secrets,
    changed_secrets,
    changed_sections,
    json_doc,
    redacted,
)
from eas_schemas.streams import SETTINGS_CHANGED
from eas_schemas.system_events import AuditOutcome
from servicekit.auth.tokens import Principal
from servicekit.bus import stream_key
from servicekit.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from servicekit.outbox import Outbox
from station_api import repository as repo
from station_api.services.audit import AuditLog, audit_record

log = logging.getLogger(__name__)

# Two replicas saving back to back must not leave the older document current in Redis.
_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and doc['version'] and tonumber(doc['version']) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (``null`` removes a key, so a removed secret is kept)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass(frozen=True, slots=True)
class SettingsState:
    version: int
    settings: StationSettings
    created_at: datetime | None = None
    actor: str | None = None
    action: str | None = None
    based_on: int | None = None
    comment: str | None = None
    sections: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SaveResult:
    changed: bool
    version: int
    previous_version: int
    sections: list[str]
    secrets_changed: list[str]


def _state(row: Any, with_document: bool = True) -> SettingsState:
    settings = (
        StationSettings.model_validate_json(row.document) if with_document else StationSettings()
    )
    return SettingsState(
        version=int(row.version),
        settings=settings,
        created_at=row.created_at,
        actor=row.actor,
        action=row.action,
        based_on=row.based_on,
        comment=row.comment,
        sections=json.loads(row.sections),
    )


class SettingsService:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        audit: AuditLog,
        source: str,
        redis_client: aioredis.Redis | None = None,
        namespace: str = "",
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.audit = audit
        self.source = source
        self.redis = redis_client
        self.namespace = namespace

    # ---- reads ---------------------------------------------------------------------------

    async def current(self) -> SettingsState:
        async with self.engine.connect() as conn:
            row = await repo.latest_version(conn)
        return _state(row) if row is not None else SettingsState(0, StationSettings())

    async def versions(self, limit: int, before: int | None) -> list[SettingsState]:
        async with self.engine.connect() as conn:
            rows = await repo.list_versions(conn, limit, before)
        return [_state(r, with_document=False) for r in rows]

    async def version(self, version: int) -> SettingsState:
        async with self.engine.connect() as conn:
            row = await repo.settings_version(conn, version)
        if row is None:
            raise NotFound(f"no settings version {version} (old versions are pruned)")
        return _state(row)

    async def export(self) -> dict[str, Any]:
        state = await self.current()
        return {
            "format": EXPORT_FORMAT,
            "format_version": 1,
            "exported_at": utcnow().isoformat(),
            "version": state.version,
            "settings": redacted(state.settings, markers=False),
        }

    # ---- writes --------------------------------------------------------------------------

    async def replace(
        self,
        document: StationSettings,
        actor: Principal,
        client_addr: str,
        base_version: int | None = None,
        comment: str | None = None,
    ) -> SaveResult:
        return await self._save(
            lambda current: carry_secrets(document, current),
            SettingsAction.UPDATE,
            actor,
            client_addr,
            base_version,
            comment,
        )

    async def patch(
        self,
        patch: dict[str, Any],
        actor: Principal,
        client_addr: str,
        base_version: int | None = None,
        comment: str | None = None,
    ) -> SaveResult:
        def apply(current: StationSettings) -> StationSettings:
            merged = merge_patch(json_doc(current), patch)
            try:
                new = StationSettings.model_validate(merged)
            except ValidationError as exc:
                raise Invalid.from_validation(exc, ("body", "patch")) from None
            return carry_secrets(new, current)

        return await self._save(
            apply, SettingsAction.UPDATE, actor, client_addr, base_version, comment
        )

    async def import_document(
        self, document: SettingsExport, actor: Principal, client_addr: str, comment: str | None
    ) -> SaveResult:
        return await self._save(
            lambda current: carry_secrets(document.settings, current),
            SettingsAction.IMPORT,
            actor,
            client_addr,
            None,
            comment,
        )

    async def rollback(
        self,
        actor: Principal,
        client_addr: str,
        to_version: int | None = None,
        base_version: int | None = None,
    ) -> SaveResult:
        """Make an earlier version current again (by default the one before the current)."""
        current = await self.current()
        target = to_version if to_version is not None else current.version - 1
        if target < 1 or target >= current.version:
            raise Conflict(f"no earlier version to roll back to (current is {current.version})")
        restored = (await self.version(target)).settings
        return await self._save(
            lambda _current: restored,
            SettingsAction.ROLLBACK,
            actor,
            client_addr,
            base_version if base_version is not None else current.version,
            f"rollback to version {target}",
            based_on=target,
        )

    async def _save(
        self,
        make_new: Callable[[StationSettings], StationSettings],
        action: SettingsAction,
        actor: Principal,
        client_addr: str,
        base_version: int | None,
        comment: str | None,
        based_on: int | None = None,
    ) -> SaveResult:
        audit_action = f"settings.{action.value}"
        try:
            async with self.engine.begin() as conn:
                row = await repo.latest_version(conn)
                previous = int(row.version) if row is not None else 0
                if base_version is not None and base_version != previous:
                    raise Conflict(
                        f"settings changed since version {base_version} (current is "
                        f"{previous}); reload and apply your change again"
                    )
                current = _state(row).settings if row is not None else StationSettings()
                new = make_new(current)
                sections = changed_sections(current, new)
                secrets = changed_secrets(current, new)
                if not sections:
                    return SaveResult(False, previous, previous, [], [])
                version = previous + 1
                now = utcnow()
                inserted = await repo.insert_version(
                    conn,
                    {
                        "version": version,
                        "created_at": now,
                        "actor": actor.subject,
                        "action": action.value,
                        "sections": json.dumps(sections),
                        "based_on": based_on,
                        "comment": comment,
                        "document": new.storage_json(),
                    },
                )
                if not inserted:
                    raise Conflict("another change was saved at the same time; reload and retry")
                await repo.prune_versions(conn, new.retention.settings_versions)
                await self.audit.record(
                    conn,
                    audit_record(
                        audit_action,
                        actor,
                        client_addr,
                        f"settings v{version}",
                        detail={
                            "version": version,
                            "previous_version": previous,
                            "sections": sections,
                            "secrets_changed": secrets,
                            "comment": comment,
                        },
                    ),
                )
                payload = SettingsChanged(
                    version=version,
                    previous_version=previous,
                    action=action,
                    sections=sections,
                    secrets_changed=secrets,
                    actor=actor.subject,
                    changed_at=now,
                )
                pending = await self.outbox.add(
                    conn,
                    [
                        (
                            SETTINGS_CHANGED,
                            EventEnvelope[SettingsChanged](
                                type=SETTINGS_CHANGED_TYPE,
                                source=self.source,
                                subject=f"settings/{version}",
                                time=now,
                                data=payload,
                            ),
                        )
                    ],
                )
        except ServiceError as exc:
            outcome = AuditOutcome.DENIED if isinstance(exc, Forbidden) else AuditOutcome.FAILURE
            detail: dict[str, Any] = {"reason": exc.detail, "status": exc.status_code}
            if isinstance(exc, Invalid):
                detail["fields"] = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors]
            await self.audit.record_alone(
                audit_record(audit_action, actor, client_addr, "settings", outcome, detail)
            )
            raise
        await self.outbox.publish(pending)
        await self.publish_current(version, new)
        return SaveResult(True, version, previous, sections, secrets)

    async def publish_current(
        self, version: int | None = None, settings: StationSettings | None = None
    ) -> None:
        """Put the secret-free current document where services read it (best effort)."""
        if self.redis is None:
            return
        if version is None or settings is None:
            state = await self.current()
            version, settings = state.version, state.settings
        body = json.dumps({"version": version, "settings": redacted(settings)})
        try:
            await self.redis.eval(
                _SET_IF_NEWER, 1, stream_key(CURRENT_SETTINGS_KEY, self.namespace), body, version
            )
        except Exception as exc:
            log.warning("current settings not written to Redis: %s", exc)
