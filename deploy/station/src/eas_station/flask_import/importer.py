"""Flask rows -> this station, through each service's own layer.

Every kind is written in its own transaction(s) by the service that owns it (alerts-api's
AlertService, station-api's SettingsService and AccountStore, eas-monitor's MonitorService),
so the rules that apply to live data apply to imported data: relevance is decided by this
station's codes, Cancel/Update chains change states, settings get a new audited version.
Each kind is idempotent on its own natural key (alert identity, user name, input name, a
decode event id derived from the Flask row), so an interrupted import is resumed by running
it again, and a second run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts_api import migrate as alerts_migrate
from alerts_api.service import AlertService
from audio_control import migrate as audio_migrate
from audio_control import repository as audio_repo
from audio_control.services.station import StationView
from audio_control.services.station_log import Entry, LogKind, StationLog, entry, header_parts
from eas_monitor import migrate as monitor_migrate
from eas_monitor.inputs import DeviceConfig, FileConfig, InputConfig, StreamConfig
from eas_monitor.payloads import header_event
from eas_monitor.service import MonitorService
from eas_monitor.settings import EasMonitorSettings
from eas_same import SameHeaderError, parse_header
from eas_schemas.cap import CapAlert
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import AlertIngested, FeedKind
from eas_schemas.monitor_events import Hearing
from pollers.cap_xml import CapRejected
from pollers.nws_geojson import alert_from_feature
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import Principal
from servicekit.db import make_engine
from servicekit.errors import ServiceError
from servicekit.hashchain import ChainKey
from servicekit.outbox import Outbox
from station_api import migrate as station_migrate
from station_api import repository as station_repo
from station_api import tables as station_tables
from station_api.passwords import Passwords, flask_hash
from station_api.services.accounts import USERNAME_RE, AccountStore, normalize_username
from station_api.services.audit import AuditLog, audit_record
from station_api.services.settings import SettingsService

from .source import FlaskRows

log = logging.getLogger(__name__)

ACTOR = "flask-import"
FEED = "flask-import"
PEPPER_INFO = b"eas-station-password-pepper-v1"
ROLE_MAP = {"admin": Role.ADMIN, "operator": Role.OPERATOR, "viewer": Role.VIEWER}


@dataclass
class KindReport:
    imported: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Imported, but not quite as it was (a user disabled, a schedule switched off): why.
    notes: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))

    def note(self, what: str, why: str) -> None:
        self.notes.append((what, why))


@dataclass
class Report:
    dry_run: bool
    revision: str | None
    kinds: dict[str, KindReport] = field(default_factory=dict)

    def kind(self, name: str) -> KindReport:
        return self.kinds.setdefault(name, KindReport())

    @property
    def changes(self) -> int:
        return sum(k.imported for k in self.kinds.values())

    def lines(self) -> list[str]:
        verb = "would import" if self.dry_run else "imported"
        out = [f"Flask schema revision: {self.revision or '(none recorded)'}"]
        for name, k in self.kinds.items():
            out.append(
                f"{name}: {verb} {k.imported}, already here {k.unchanged}, skipped {len(k.skipped)}"
            )
            out.extend(f"  skipped {what}: {why}" for what, why in k.skipped)
            out.extend(f"  note {what}: {why}" for what, why in k.notes)
        return out


def flask_pepper(secret_key: str | None) -> bytes | None:
    """The Flask station's password pepper, derived from its SECRET_KEY as it derived it."""
    if not secret_key:
        return None
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PEPPER_INFO).derive(
        secret_key.encode()
    )


# ---- mapping (pure: the dry run uses it too) -------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def feed_kind(source: str | None) -> FeedKind:
    name = (source or "").lower()
    if "ipaws" in name:
        return FeedKind.IPAWS
    if "manual" in name:
        return FeedKind.MANUAL
    return FeedKind.NWS


def cap_of(row: dict[str, Any]) -> CapAlert:
    """The CAP alert a Flask row stored: its raw_json (NWS GeoJSON), else its columns."""
    raw = _json(row.get("raw_json"))
    if isinstance(raw, dict) and isinstance(raw.get("properties"), dict):
        return alert_from_feature(raw)
    if isinstance(raw, dict) and "messageType" in raw:
        return alert_from_feature({"properties": raw})
    sent = _aware(row.get("sent"))
    info: dict[str, Any] = {
        "event": row["event"],
        "urgency": row.get("urgency") or "Unknown",
        "severity": row.get("severity") or "Unknown",
        "certainty": row.get("certainty") or "Unknown",
        "expires": _aware(row.get("expires")),
        "headline": row.get("headline"),
        "description": row.get("description"),
        "instruction": row.get("instruction"),
        "areas": [{"area_desc": row.get("area_desc") or "(no areaDesc)"}],
    }
    sender = raw.get("sender") if isinstance(raw, dict) else None
    return CapAlert.model_validate(
        {
            "identifier": row["identifier"],
            "sender": sender or "unknown",
            "sent": sent,
            "status": row["status"],
            "msg_type": row["message_type"],
            "scope": row["scope"],
            "infos": [info],
        }
    )


def forwarding_note(row: dict[str, Any]) -> str:
    verdict = "forwarded" if row.get("eas_forwarded") else "not forwarded"
    reason = row.get("eas_forwarding_reason")
    return f"Flask station decision: {verdict}" + (f" ({reason})" if reason else "")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def location_patch(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "identity": {"timezone": row["timezone"]},
        "location": {
            "same_codes": [str(c) for c in _json(row.get("fips_codes")) or []],
            "ugc_codes": [str(c).upper() for c in _json(row.get("zone_codes")) or []],
        },
    }


def weekly_test_patch(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Flask RWT schedule as this station's weekly test window, and what changed on the
    way: it comes across switched off (nothing goes on air before the operator says so), and
    this station tests on one day a week where Flask allowed several."""
    days = [int(d) for d in _json(row.get("days_of_week")) or [] if 0 <= int(d) <= 6]
    notes = []
    if row.get("enabled"):
        notes.append(
            "the weekly test window comes across switched off: turn it on in the "
            "settings once the outputs are checked"
        )
    if len(days) > 1:
        notes.append(
            f"Flask tested on {', '.join(WEEKDAYS[d] for d in days)}; this station "
            f"tests once a week: {WEEKDAYS[days[0]]} kept"
        )
    window: dict[str, Any] = {
        "enabled": False,
        "start": f"{int(row['start_hour']):02d}:{int(row['start_minute']):02d}",
        "end": f"{int(row['end_hour']):02d}:{int(row['end_minute']):02d}",
    }
    if days:
        window["day"] = WEEKDAYS[days[0]]
    return {"tests": {"weekly": window}}, notes


def role_of(name: str | None) -> Role:
    # The Flask RBAC roles that are neither admin nor operator only read.
    return ROLE_MAP.get((name or "").strip().lower(), Role.VIEWER)


def stored_hash(row: dict[str, Any], pepper: bytes | None) -> tuple[str, str | None]:
    """(hash to store, why the user must be disabled or None)."""
    value = str(row.get("password_hash") or "")
    salt = row.get("salt")
    if salt and salt != "pbkdf2":
        # Salted SHA-256 from before werkzeug; the Flask station upgraded these on login.
        return (
            "!",
            "legacy salted SHA-256 hash, from before the Flask station used werkzeug: "
            "reset its password",
        )
    if not value.startswith(("pbkdf2:", "scrypt:")) or value.count("$") != 2:
        return "!", "password hash in a format werkzeug did not write: reset its password"
    return flask_hash(value, pepper), None


def input_config(row: dict[str, Any]) -> InputConfig:
    kind = str(row.get("source_type") or "").lower()
    cfg = _json(row.get("config")) or {}
    if not isinstance(cfg, dict):
        raise ValueError("its config is not a JSON object")
    nested = cfg.get("device_params")
    params: dict[str, Any] = nested if isinstance(nested, dict) else cfg
    if kind == "file":
        path = params.get("file_path") or params.get("path")
        if not path:
            raise ValueError("a file source without a file_path")
        return FileConfig(path=str(path), loop=bool(params.get("loop", False)))
    if kind in ("stream", "http", "icecast"):
        url = params.get("stream_url") or params.get("url")
        if not url:
            raise ValueError("a stream source without a stream_url")
        return StreamConfig.model_validate({"url": url})
    if kind == "alsa":
        return DeviceConfig(
            device=str(params.get("device_name") or params.get("device") or "default"),
            rate=int(cfg.get("sample_rate") or 22050),
        )
    if kind == "sdr":
        raise ValueError("an SDR receiver: radio hardware is configured outside the station")
    raise ValueError(f"source type {kind!r} has no counterpart here")


def decode_event_id(row: dict[str, Any]) -> str:
    """A ULID-shaped id fixed by the Flask row, so a second import is a redelivery."""
    at = _aware(row["received_at"]) or datetime.now(UTC)
    ms = int(at.timestamp() * 1000)
    digest = hashlib.sha256(f"flask-received:{row['id']}:{row['raw_same_header']}".encode())
    value = (ms << 80) | int.from_bytes(digest.digest()[:10], "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    chars = []
    for _ in range(26):
        chars.append(alphabet[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


# ---- writing -------------------------------------------------------------------------------


@dataclass
class Target:
    database_url: str
    chain_key_file: Path
    data_dir: Path


class Importer:
    def __init__(self, target: Target, pepper: bytes | None, dry_run: bool) -> None:
        self.target = target
        self.pepper = pepper
        self.dry_run = dry_run
        self.principal = Principal(ACTOR, Role.ADMIN, frozenset())

    async def run(self, rows: FlaskRows) -> Report:
        report = Report(self.dry_run, rows.revision)
        if not self.dry_run:
            url = self.target.database_url
            await alerts_migrate.upgrade_url(url)
            await station_migrate.upgrade_url(url)
            await monitor_migrate.upgrade_url(url)
            await audio_migrate.upgrade_url(url)
        engine = make_engine(self.target.database_url, pool_size=2)
        try:
            same, ugc = await self.settings(engine, rows, report.kind("settings"))
            await self.users(engine, rows, report.kind("users"))
            inputs = await self.inputs(engine, rows, report.kind("audio inputs"))
            await self.alerts(engine, rows, same, ugc, report.kind("alerts"))
            await self.received(engine, rows, inputs, report.kind("received headers"))
            await self.station_log(engine, rows, report.kind("station log"))
        finally:
            await engine.dispose()
        return report

    def _audit(self, engine: AsyncEngine) -> AuditLog:
        return AuditLog(engine, ChainKey.load_or_create(self.target.chain_key_file))

    async def settings(
        self, engine: AsyncEngine, rows: FlaskRows, rep: KindReport
    ) -> tuple[list[str], list[str]]:
        patch: dict[str, Any] = {}
        if rows.location is None:
            rep.skip("location", "the Flask station has no location_settings row")
        else:
            patch = location_patch(rows.location)
        if rows.rwt is not None:
            try:
                tests, notes = weekly_test_patch(rows.rwt)
            except (ValueError, TypeError, KeyError) as exc:
                rep.skip("weekly test schedule", _why(exc))
            else:
                patch.update(tests)
                for note in notes:
                    rep.note("weekly test schedule", note)
        if self.dry_run:
            rep.imported += 1 if patch else 0
            location = patch.get("location", {})
            return location.get("same_codes", []), location.get("ugc_codes", [])
        service = SettingsService(
            engine, Outbox(engine, None, station_tables.outbox), self._audit(engine), ACTOR
        )
        if not patch:
            current = (await service.current()).settings.location
            return list(current.same_codes), list(current.ugc_codes)
        try:
            result = await service.patch(
                patch, self.principal, "cli", comment="imported from the Flask EAS Station"
            )
        except ServiceError as exc:
            rep.skip("location", f"refused by the settings rules: {exc.detail}")
            current = (await service.current()).settings.location
            return list(current.same_codes), list(current.ugc_codes)
        if result.changed:
            rep.imported += 1
        else:
            rep.unchanged += 1
        current = (await service.current()).settings.location
        return list(current.same_codes), list(current.ugc_codes)

    async def users(self, engine: AsyncEngine, rows: FlaskRows, rep: KindReport) -> None:
        audit = self._audit(engine) if not self.dry_run else None
        # Imported hashes are stored as they are: the Argon2 cost is only paid at first login.
        accounts = AccountStore(engine, Passwords(), audit) if audit is not None else None
        if self.pepper is None:
            # Every hash the Flask station wrote since it peppered passwords needs its key, and
            # a user imported with a hash nobody can verify could not be fixed by a re-run.
            for row in rows.users:
                rep.skip(
                    f"user {row['username']!r}",
                    "no Flask SECRET_KEY given (--flask-secret-key-file or FLASK_SECRET_KEY): "
                    "its password could not be verified; run the import again with it",
                )
            return
        for row in rows.users:
            name = normalize_username(str(row["username"]))
            if not USERNAME_RE.match(name):
                rep.skip(f"user {row['username']!r}", "not a valid user name here")
                continue
            password_hash, disabled_why = stored_hash(row, self.pepper)
            inactive = not row.get("is_active", True)
            if accounts is None or audit is None:  # the dry run
                rep.imported += 1
                if disabled_why:
                    rep.note(f"user {name!r}", f"would be disabled: {disabled_why}")
                continue
            async with engine.connect() as conn:
                if await station_repo.user_by_name(conn, name) is not None:
                    rep.unchanged += 1
                    continue
            if disabled_why:
                rep.note(f"user {name!r}", f"imported disabled: {disabled_why}")
            elif inactive:
                rep.note(f"user {name!r}", "imported disabled: inactive in Flask")
            role = role_of(row.get("role_name"))
            async with engine.begin() as conn:
                user = await accounts.insert_user(conn, name, password_hash, role, ACTOR)
                if disabled_why or inactive:
                    found = await station_repo.user_by_name(conn, user.username)
                    assert found is not None
                    await station_repo.update_user(conn, found.id, {"disabled": True})
                await audit.record(
                    conn,
                    audit_record(
                        "user.import",
                        self.principal,
                        "cli",
                        name,
                        detail={
                            "role": role.value,
                            "flask_role": row.get("role_name"),
                            "disabled": bool(disabled_why or inactive),
                            "reason": disabled_why or ("inactive in Flask" if inactive else None),
                        },
                    ),
                )
            rep.imported += 1

    def _monitor(self, engine: AsyncEngine) -> MonitorService:
        settings = EasMonitorSettings(
            database_url=self.target.database_url, data_dir=self.target.data_dir / "eas-monitor"
        )
        return MonitorService(engine, settings, None)

    async def inputs(self, engine: AsyncEngine, rows: FlaskRows, rep: KindReport) -> dict[str, int]:
        monitor = self._monitor(engine)
        have = {} if self.dry_run else {v.name: v.id for v in await monitor.list_inputs()}
        for row in rows.inputs:
            name = str(row["name"])
            if name in have:
                rep.unchanged += 1
                continue
            try:
                if len(name) > 64:
                    raise ValueError("its name is longer than 64 characters")
                config = input_config(row)
            except (ValueError, ValidationError) as exc:
                rep.skip(f"input {name!r}", _why(exc))
                continue
            if self.dry_run:
                rep.imported += 1
                continue
            try:
                # Created stopped: the operator starts it once the machine is wired up.
                view = await monitor.create_input(name, config)
            except ServiceError as exc:
                rep.skip(f"input {name!r}", f"this station refused it: {exc.detail}")
                continue
            have[name] = view.id
            rep.imported += 1
        return have

    async def alerts(
        self,
        engine: AsyncEngine,
        rows: FlaskRows,
        same: list[str],
        ugc: list[str],
        rep: KindReport,
    ) -> None:
        service = AlertService(engine, None, ACTOR, same, ugc)
        batch: list[tuple[dict[str, Any], AlertIngested]] = []
        for row in rows.alerts:
            try:
                cap = cap_of(row)
            except (CapRejected, ValueError, KeyError, TypeError) as exc:
                rep.skip(f"alert {row.get('identifier')!r}", _why(exc))
                continue
            received = _aware(row.get("created_at")) or cap.sent
            batch.append(
                (
                    row,
                    AlertIngested(
                        feed=FEED,
                        feed_kind=feed_kind(row.get("source")),
                        received_at=received,
                        alert=cap,
                    ),
                )
            )
        if self.dry_run:
            rep.imported += len(batch)
            return
        for start in range(0, len(batch), 100):
            chunk = batch[start : start + 100]
            results = await service.ingest_batch(
                [ing for _, ing in chunk],
                announce=False,
                notes=[forwarding_note(row) for row, _ in chunk],
            )
            new = sum(1 for r in results if not r.duplicate)
            rep.imported += new
            rep.unchanged += len(chunk) - new

    async def received(
        self, engine: AsyncEngine, rows: FlaskRows, inputs: dict[str, int], rep: KindReport
    ) -> None:
        monitor = self._monitor(engine)
        for row in rows.received:
            raw = str(row.get("raw_same_header") or "").strip()
            heard = _aware(row.get("received_at"))
            try:
                if heard is None:
                    raise ValueError("no received_at")
                header = parse_header(raw, lenient=True, lenient_duration=True)
            except (SameHeaderError, ValueError) as exc:
                rep.skip(f"received header #{row['id']}", _why(exc))
                continue
            confidence = min(max(float(row.get("decode_confidence") or 1.0), 0.0), 1.0)
            source = str(row.get("source_name") or "flask")
            hearing = Hearing(
                # 0: an input this station does not have (the Flask one was not imported).
                input_id=inputs.get(source, 0),
                input_name=source[:64],
                heard_at=heard,
                confidence=confidence,
                bursts=3,
                agreed=3,
                start_s=0.0,
                end_s=0.0,
                started_at=heard,
                ended_at=heard,
            )
            if self.dry_run:
                rep.imported += 1
                continue
            doc = json.loads(header_event(header, [hearing], ACTOR).model_dump_json())
            doc.update(id=decode_event_id(row), time=heard.isoformat())
            stored = await monitor.store_event(EventEnvelope[dict[str, Any]].model_validate(doc))
            if stored:
                rep.imported += 1
            else:
                rep.unchanged += 1

    async def station_log(self, engine: AsyncEngine, rows: FlaskRows, rep: KindReport) -> None:
        entries = log_entries(rows)
        if self.dry_run:
            rep.imported += len(entries)
            return
        log = StationLog(engine, ChainKey.load_or_create(self.target.chain_key_file), StationView())
        async with engine.begin() as conn:
            # The chain head first: a second importer at the same time waits here, then
            # sees what this one logged.
            await log.chain.lock(conn)
            done = {
                json.loads(d).get("import_ref")
                for d in await audio_repo.log_details_by_actor(conn, ACTOR)
            }
            new = [e for ref, e in entries if ref not in done]
            await log.write(conn, new)
        rep.imported += len(new)
        rep.unchanged += len(entries) - len(new)


def _log_entry(
    table: str, row: dict[str, Any], kind: LogKind, summary: str, at: datetime | None, **kw: Any
) -> tuple[str, Entry]:
    ref = f"flask:{table}:{row['id']}"
    header = str(row.get("same_header") or row.get("raw_same_header") or "") or None
    originator, event, locations = header_parts(header)
    detail = {"import_ref": ref, **kw.pop("detail", {})}
    return ref, entry(
        kind,
        summary,
        at=at or datetime.now(UTC),
        originator=(originator or "")[:3] or None,
        event_code=(event or str(row.get("event_code") or ""))[:3] or None,
        locations=locations,
        header=header,
        actor=ACTOR,
        detail=detail,
        **kw,
    )


def log_entries(rows: FlaskRows) -> list[tuple[str, Entry]]:
    """The Flask station's received headers, generated messages and manual activations as
    station log entries, each marked with the Flask row it came from."""
    out: list[tuple[str, Entry]] = []
    for row in rows.received:
        what = row.get("event_name") or row.get("event_code") or "an undecoded header"
        decision = str(row.get("forwarding_decision") or "unknown")
        reason = row.get("forwarding_reason")
        out.append(
            _log_entry(
                "received_eas_alerts",
                row,
                LogKind.RECEIVED_AIR,
                f"Received on air by the Flask station on {row.get('source_name')}: {what}; "
                f"its decision: {decision}",
                _aware(row.get("received_at")),
                reasons=f"{decision}: {reason}" if reason else decision,
                detail={
                    "flask_forwarding_decision": decision,
                    "flask_forwarding_reason": reason,
                    "confidence": row.get("decode_confidence"),
                },
            )
        )
    for row in rows.messages:
        out.append(
            _log_entry(
                "eas_messages",
                row,
                LogKind.ORIGINATED,
                f"EAS message generated by the Flask station: {row.get('same_header')}",
                _aware(row.get("created_at")),
                detail={"alert_identifier": row.get("alert_identifier")},
            )
        )
    for row in rows.activations:
        by = row.get("triggered_by") or row.get("created_by") or "an operator"
        out.append(
            _log_entry(
                "manual_eas_activations",
                row,
                LogKind.ORIGINATED,
                f"Manual activation on the Flask station by {by}: {row.get('event_name')} "
                f"({row.get('event_code')})",
                _aware(row.get("sent_at")) or _aware(row.get("created_at")),
                detail={"identifier": row.get("identifier"), "flask_operator": by},
            )
        )
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc) or type(exc).__name__


__all__ = ["Importer", "Report", "Target", "flask_pepper"]
