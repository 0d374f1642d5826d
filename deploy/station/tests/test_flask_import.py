"""`eas-station import-flask` against a real Flask-schema PostgreSQL database, imported
twice into a fresh station database through the services' own layers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import redis.asyncio as aioredis
import soundfile as sf
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select

from alerts_api import repository as alerts_repo
from alerts_api.tables import alert_history, alert_outbox, alerts
from audio_control.services.station import StationView
from audio_control.services.station_log import StationLog
from audio_control.tables import station_log
from eas_monitor.tables import monitor_inputs, same_decodes
from eas_station.flask_import import main as import_flask_cli
from eas_station.flask_import.importer import Importer, Report, Target, flask_pepper
from eas_station.flask_import.source import SourceError, read_flask
from servicekit.auth.tokens import TokenSigner
from servicekit.db import make_engine
from servicekit.errors import Unauthorized
from servicekit.hashchain import ChainKey
from station_api import repository as station_repo
from station_api.passwords import Passwords
from station_api.services.accounts import AccountStore
from station_api.services.audit import AuditLog
from station_api.services.sessions import SessionService
from station_api.tables import audit_log, settings_versions
from station_api.throttle import LoginThrottle

SCHEMA = (Path(__file__).parent / "flask_schema.sql").read_text()
FLASK_SECRET = "the-flask-stations-secret-key-0123456789"
NWS = "w-nws.webmaster@noaa.gov"
HEARD = datetime(2026, 12, 1, 18, 45, 12, tzinfo=UTC)  # day 335
HEADER = "ZCZC-WXR-TOR-039137+0030-3351845-KIWX/NWS-"


# ---- the Flask hashes, made as werkzeug and the Flask station make them ---------------------


def werkzeug_pbkdf2(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2:sha256:{iterations}${salt}${digest.hex()}"


def werkzeug_scrypt(password: str, salt: str, n: int = 16384, r: int = 8, p: int = 1) -> str:
    digest = hashlib.scrypt(
        password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p
    )
    return f"scrypt:{n}:{r}:{p}${salt}${digest.hex()}"


def flask_peppered(password: str, secret: str) -> str:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"eas-station-password-pepper-v1"
    ).derive(secret.encode())
    return hashlib.pbkdf2_hmac("sha256", password.encode(), key, 100_000).hex()


# ---- the Flask database ---------------------------------------------------------------------


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
def flask_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"flask_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_plain(postgres_admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = postgres_admin_url.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def feature(identifier: str, sent: datetime, **props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"https://api.weather.gov/alerts/{identifier}",
        "identifier": identifier,
        "sender": NWS,
        "senderName": "NWS Northern Indiana",
        "sent": sent.isoformat(),
        "status": "Actual",
        "messageType": "Alert",
        "category": "Met",
        "urgency": "Immediate",
        "severity": "Extreme",
        "certainty": "Observed",
        "references": [],
    }
    base.update(props)
    return {"type": "Feature", "geometry": None, "properties": base}


async def fill_flask(url: str, tmp: Path) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    tor_sent = now - timedelta(hours=1)
    tor = feature(
        "urn:oid:2.49.0.1.840.0.tor.1",
        tor_sent,
        event="Tornado Warning",
        areaDesc="Putnam, OH",
        expires=(now + timedelta(hours=1)).isoformat(),
        headline="Tornado Warning for Putnam County",
        geocode={"SAME": ["039137"], "UGC": ["OHC137"]},
        eventCode={"SAME": ["TOR"]},
    )
    can_sent = now - timedelta(minutes=30)
    can = feature(
        "urn:oid:2.49.0.1.840.0.tor.2",
        can_sent,
        messageType="Cancel",
        event="Tornado Warning",
        areaDesc="Putnam, OH",
        expires=(now + timedelta(hours=1)).isoformat(),
        geocode={"SAME": ["039137"], "UGC": ["OHC137"]},
        eventCode={"SAME": ["TOR"]},
        references=[
            {
                "@id": tor["properties"]["id"],
                "identifier": tor["properties"]["identifier"],
                "sender": NWS,
                "sent": tor_sent.isoformat(),
            }
        ],
    )
    flood_sent = now - timedelta(days=3)
    flood = feature(
        "urn:oid:2.49.0.1.840.0.flw.1",
        flood_sent,
        event="Flood Warning",
        urgency="Expected",
        severity="Moderate",
        certainty="Likely",
        areaDesc="Allen, OH",
        expires=(now - timedelta(days=2)).isoformat(),
        geocode={"SAME": ["039003"], "UGC": ["OHC003"]},
        eventCode={"SAME": ["FLW"]},
    )
    broken = feature("urn:oid:broken", now - timedelta(days=1), event="Flood Watch")
    del broken["properties"]["sender"]
    wav = tmp / "monitor.wav"
    sf.write(wav, np.zeros(8000, dtype=np.int16), 8000)

    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(SCHEMA)
        await conn.execute(
            "INSERT INTO alembic_version VALUES ('20260821_add_relay_interlock_groups')"
        )
        await conn.execute(
            "INSERT INTO roles (id, name) VALUES (1, 'admin'), (2, 'operator'), (3, 'analyst')"
        )
        users = [
            ("KR8MER", werkzeug_pbkdf2("old-admin-password", "Zq3xK9", 1000), "pbkdf2", 1, True),
            (
                "ops",
                werkzeug_scrypt(flask_peppered("operator-password-1", FLASK_SECRET), "sAlt42"),
                "pbkdf2",
                2,
                True,
            ),
            ("analyst", werkzeug_pbkdf2("analyst-password", "s1", 1000), "pbkdf2", 3, False),
            ("legacy", "ab" * 32, "cd" * 16, None, True),
            ("Bad Name!", werkzeug_pbkdf2("whatever-pass", "s2", 1000), "pbkdf2", None, True),
        ]
        await conn.executemany(
            "INSERT INTO admin_users (username, password_hash, salt, role_id, is_active) "
            "VALUES ($1, $2, $3, $4, $5)",
            users,
        )
        await conn.execute(
            "INSERT INTO location_settings (county_name, state_code, timezone, map_center_lat, "
            "map_center_lng, map_default_zoom) VALUES "
            "('Putnam County', 'OH', 'America/New_York', 41.02, -84.13, 9)"
        )
        await conn.execute(
            "INSERT INTO alert_filter_settings (fips_codes, zone_codes) VALUES "
            """('["039137"]', '["OHZ016", "OHC137"]')"""
        )
        alert_rows = [
            (tor, tor_sent, True, "FIPS match: 039137", "NOAA"),
            (can, can_sent, False, "Cancel messages are not broadcast", "NOAA"),
            (flood, flood_sent, False, "no FIPS match", "NOAA"),
            (broken, now - timedelta(days=1), False, None, "NOAA"),
        ]
        for feat, sent, forwarded, reason, source in alert_rows:
            p = feat["properties"]
            await conn.execute(
                "INSERT INTO cap_alerts (identifier, sent, expires, status, message_type, scope, "
                "event, urgency, severity, certainty, area_desc, headline, raw_json, source, "
                "eas_forwarded, eas_forwarding_reason, created_at) VALUES "
                "($1, $2, $3, 'Actual', $4, 'Public', $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                "$14, $2)",
                p["identifier"],
                sent,
                datetime.fromisoformat(p["expires"]) if p.get("expires") else None,
                p["messageType"],
                p["event"],
                p["urgency"],
                p["severity"],
                p["certainty"],
                p.get("areaDesc"),
                p.get("headline"),
                json.dumps(feat),
                source,
                forwarded,
                reason,
            )
        await conn.execute(
            "INSERT INTO audio_source_configs (name, source_type, config, created_at) VALUES "
            "($1, 'file', $2, now()), ($3, 'sdr', $4, now()), ($5, 'stream', $6, now())",
            "WXJ-64 recording",
            json.dumps({"device_params": {"file_path": str(wav)}, "sample_rate": 8000}),
            "RTL-SDR 162.550",
            json.dumps({"device_params": {"frequency": 162550000}}),
            "WKSU stream",
            json.dumps({"device_params": {"stream_url": "http://stream.example.org/wksu"}}),
        )
        await conn.execute(
            "INSERT INTO received_eas_alerts (received_at, source_name, raw_same_header, "
            "event_code, forwarding_decision, forwarding_reason, decode_confidence) VALUES "
            "($1, 'WXJ-64 recording', $2, 'TOR', 'forwarded', 'FIPS match: 039137', 0.93), "
            "($1, 'RTL-SDR 162.550', 'ZCZC-garbled', NULL, 'error', 'decode failed', 0.2)",
            HEARD,
            HEADER,
        )
        await conn.execute(
            "INSERT INTO eas_messages (same_header, audio_filename, text_filename) VALUES "
            "($1, 'a.wav', 'a.txt')",
            HEADER,
        )
        await conn.execute(
            "INSERT INTO manual_eas_activations (identifier, event_code, event_name, status, "
            "message_type, same_header, same_locations, tone_profile, storage_path, "
            "components_payload, metadata_payload, created_at, created_by) VALUES "
            "('MANUAL-1', 'RWT', 'Required Weekly Test', 'Actual', 'Alert', $1, '[\"039137\"]', "
            "'attention', '/var/eas/manual/1', '{}', '{}', $2, 'kr8mer')",
            "ZCZC-EAS-RWT-039137+0015-3350900-KR8MER  -",
            HEARD - timedelta(hours=8),
        )
        await conn.execute(
            "INSERT INTO rwt_schedule_config (enabled, days_of_week, start_hour, start_minute, "
            "end_hour, end_minute) VALUES (TRUE, '[0, 3]', 9, 30, 15, 0)"
        )
    finally:
        await conn.close()
    return {"tor": tor["properties"]["identifier"], "can": can["properties"]["identifier"]}


# ---- the import -----------------------------------------------------------------------------


@pytest.fixture
async def station(database_url: str, tmp_path: Path) -> AsyncIterator[Target]:
    yield Target(database_url, tmp_path / "keys" / "chain.pem", tmp_path)


async def run_import(flask_url: str, target: Target, dry_run: bool = False) -> Report:
    rows = await read_flask(flask_url)
    return await Importer(target, flask_pepper(FLASK_SECRET), dry_run).run(rows)


async def counts(url: str) -> dict[str, int]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            out = {}
            for name, table in (
                ("alerts", alerts),
                ("alert_history", alert_history),
                ("outbox", alert_outbox),
                ("settings", settings_versions),
                ("audit", audit_log),
                ("inputs", monitor_inputs),
                ("decodes", same_decodes),
                ("station_log", station_log),
            ):
                out[name] = int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
            return out
    finally:
        await engine.dispose()


async def login(
    target: Target, aredis: aioredis.Redis, namespace: str, user: str, password: str
) -> str:
    """Log in through station-api's session service; the stored hash afterwards."""
    engine = make_engine(target.database_url, pool_size=1)
    try:
        audit = AuditLog(engine, ChainKey.load_or_create(target.chain_key_file))
        accounts = AccountStore(engine, Passwords(memory_cost_kib=8192, time_cost=1), audit)
        sessions = SessionService(
            accounts,
            TokenSigner(signing_key()),
            LoginThrottle(aredis, namespace, 60, 50, 50),
        )
        await sessions.login(user, password, "127.0.0.1")
        async with engine.connect() as conn:
            row = await station_repo.user_by_name(conn, user)
        assert row is not None
        return str(row.password_hash)
    finally:
        await engine.dispose()


_KEY: list[str] = []


def signing_key() -> str:
    if not _KEY:
        from servicekit.auth.tokens import generate_keypair

        _KEY.append(generate_keypair()[0])
    return _KEY[0]


async def test_import_twice_lands_every_row_once_with_its_meaning(
    flask_url: str,
    station: Target,
    tmp_path: Path,
    aredis: aioredis.Redis,
    bus_namespace: str,
) -> None:
    ids = await fill_flask(flask_url, tmp_path)
    dry = await run_import(flask_url, station, dry_run=True)
    assert dry.kinds["alerts"].imported == 3
    assert dry.kinds["users"].imported == 4
    keyless = await Importer(station, None, True).run(await read_flask(flask_url))
    assert keyless.kinds["users"].imported == 0
    assert all("SECRET_KEY" in why for _, why in keyless.kinds["users"].skipped)
    first = await run_import(flask_url, station)
    text = "\n".join(first.lines())
    assert first.kinds["alerts"].imported == 3, text
    assert [w for w, _ in first.kinds["alerts"].skipped] == ["alert 'urn:oid:broken'"]
    # A missing sender is repaired (issue 11: only what cannot be an alert is refused); this
    # row has no area either, and that is what it is refused for.
    assert "no area" in first.kinds["alerts"].skipped[0][1]
    assert first.kinds["settings"].imported == 1
    assert first.kinds["users"].imported == 4, text
    assert first.kinds["audio inputs"].imported == 2, text
    assert first.kinds["received headers"].imported == 1, text
    assert first.kinds["station log"].imported == 4, text
    rwt_notes = [why for what, why in first.kinds["settings"].notes]
    assert any("switched off" in n for n in rwt_notes), rwt_notes
    assert any("monday kept" in n for n in rwt_notes), rwt_notes
    assert dict(first.kinds["users"].skipped) == {"user 'Bad Name!'": "not a valid user name here"}
    user_notes = dict(first.kinds["users"].notes)
    assert "imported disabled: legacy salted SHA-256" in user_notes["user 'legacy'"]
    assert user_notes["user 'analyst'"] == "imported disabled: inactive in Flask"
    assert "SDR" in dict(first.kinds["audio inputs"].skipped)["input 'RTL-SDR 162.550'"]
    before = await counts(station.database_url)
    assert before["outbox"] == 0  # history is not announced: nothing relays it again

    engine = make_engine(station.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            by_ident = {r.identifier: r for r in (await conn.execute(select(alerts))).all()}
            tor, can = by_ident[ids["tor"]], by_ident[ids["can"]]
            flood = by_ident["urn:oid:2.49.0.1.840.0.flw.1"]
            assert tor.state == "cancelled" and can.state == "cancelled"
            assert flood.state == "expired"
            # Relevance by this station's rules and its imported codes.
            assert tor.relevant and "039137" in tor.relevance_reason
            assert not flood.relevant
            refs = await alerts_repo.references_of(conn, can.id)
            assert [r.ref_alert_id for r in refs] == [tor.id]
            history = [h.reason for h in await alerts_repo.history(conn, tor.id)]
            assert "Flask station decision: forwarded (FIPS match: 039137)" in history
            assert any(f"cancelled by {ids['can']}" == h for h in history)

            settings = (await conn.execute(select(settings_versions))).one()
            doc = json.loads(settings.document)
            assert doc["location"]["same_codes"] == ["039137"]
            assert doc["location"]["ugc_codes"] == ["OHZ016", "OHC137"]
            assert doc["identity"]["timezone"] == "America/New_York"
            assert doc["tests"]["weekly"] == {
                "enabled": False,
                "day": "monday",
                "start": "09:30",
                "end": "15:00",
            }
            assert settings.actor == "flask-import"
            actions = [
                (r.action, r.actor)
                for r in (await conn.execute(select(audit_log).order_by(audit_log.c.id))).all()
            ]
            assert ("settings.update", "flask-import") in actions
            assert actions.count(("user.import", "flask-import")) == 4

            users = {u.username: u for u in await station_repo.list_users(conn)}
            assert users["kr8mer"].role == "admin" and not users["kr8mer"].disabled
            assert users["ops"].role == "operator"
            assert users["analyst"].role == "viewer" and users["analyst"].disabled
            assert users["legacy"].disabled

            decode = (await conn.execute(select(same_decodes))).one()
            assert decode.text == HEADER
            assert decode.event_code == "TOR"
            assert decode.confidence == pytest.approx(0.93)
            assert decode.heard_at == HEARD
            inputs = {r.name: r for r in (await conn.execute(select(monitor_inputs))).all()}
            assert set(inputs) == {"WXJ-64 recording", "WKSU stream"}
            assert not any(r.wanted_running for r in inputs.values())
            assert (
                json.loads(inputs["WKSU stream"].config)["url"] == "http://stream.example.org/wksu"
            )
    finally:
        await engine.dispose()

    second = await run_import(flask_url, station)
    assert second.changes == 0, "\n".join(second.lines())
    assert second.kinds["alerts"].unchanged == 3
    assert second.kinds["users"].unchanged == 4
    assert await counts(station.database_url) == before
    check = make_engine(station.database_url, pool_size=1)
    try:
        log = StationLog(check, ChainKey.load_or_create(station.chain_key_file), StationView())
        assert (await log.verify()).intact
    finally:
        await check.dispose()

    # The old passwords log in; the werkzeug hash gives way to Argon2 at that first login.
    new_hash = await login(station, aredis, bus_namespace, "kr8mer", "old-admin-password")
    assert new_hash.startswith("$argon2")
    assert (await login(station, aredis, bus_namespace, "kr8mer", "old-admin-password")) == new_hash
    assert (await login(station, aredis, bus_namespace, "ops", "operator-password-1")).startswith(
        "$argon2"
    )
    with pytest.raises(Unauthorized):
        await login(station, aredis, bus_namespace, "legacy", "anything-at-all")


async def test_a_database_that_is_not_a_flask_station_is_refused(
    flask_url: str, station: Target
) -> None:
    conn = await asyncpg.connect(_plain(flask_url))
    try:
        await conn.execute(SCHEMA)
        await conn.execute("ALTER TABLE received_eas_alerts DROP COLUMN forwarding_decision")
    finally:
        await conn.close()
    with pytest.raises(SourceError, match=r"missing received_eas_alerts\.forwarding_decision"):
        await read_flask(flask_url)


def test_cli_unreachable_or_unknown_database_writes_nothing(
    flask_url: str, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = import_flask_cli(
        "postgresql://postgres@127.0.0.1:1/nothing", database_url, tmp_path, None, False
    )
    assert code == 2
    assert "cannot read the Flask database" in capsys.readouterr().err
    code = import_flask_cli(flask_url, database_url, tmp_path, None, False)  # empty database
    assert code == 2
    assert "no alembic_version" in capsys.readouterr().err

    async def tables() -> int:
        conn = await asyncpg.connect(_plain(database_url))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(tables()) == 0

    # A real Flask database, dry run: the plan is printed and still nothing is written.
    asyncio.run(fill_flask(flask_url, tmp_path))
    secret = tmp_path / "flask-secret"
    secret.write_text(FLASK_SECRET + "\n")
    assert import_flask_cli(flask_url, database_url, tmp_path, secret, True) == 0
    out = capsys.readouterr().out
    assert "alerts: would import 3, already here 0, skipped 1" in out
    assert "users: would import 4" in out
    assert "settings: would import 1" in out
    assert asyncio.run(tables()) == 0
