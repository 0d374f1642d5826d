"""The audit log is hash-chained: verify is intact for what the service wrote, names the first
edited, deleted or reordered entry, is admin-only, survives retention, and entries written
before the chain existed are chained at the next start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from servicekit.db import make_engine
from station_api.app import create_app
from station_api.migrate import upgrade_url

ADMIN_PASSWORD = "correct horse battery staple"


async def _verify(client, admin) -> dict:
    answer = await client.get("/api/audit/verify", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _act(client, admin, n: int) -> None:
    for i in range(n):
        saved = await client.patch(
            "/api/settings",
            json={"patch": {"identity": {"name": f"Station {i}"}}},
            headers=admin.headers,
        )
        assert saved.status_code == 200, saved.text


async def _sql(client, sql: str, **params) -> None:
    async with client.app.state.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_the_chain_is_intact_and_catches_an_edit(client, admin):
    await _act(client, admin, 3)
    verdict = await _verify(client, admin)
    assert verdict["intact"] is True and verdict["count"] >= 4 and verdict["first_seq"] == 1
    await _sql(client, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
    verdict = await _verify(client, admin)
    assert verdict["intact"] is False
    assert verdict["broken"]["seq"] == 2 and verdict["broken"]["reason"] == "edited"


async def test_a_deleted_entry_is_caught(client, admin):
    await _act(client, admin, 3)
    await _sql(client, "DELETE FROM audit_log WHERE seq = 3")
    verdict = await _verify(client, admin)
    assert verdict["broken"]["seq"] == 3 and verdict["broken"]["reason"] == "deleted"


async def test_reordered_entries_are_caught(client, admin):
    await _act(client, admin, 3)
    await _sql(client, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    await _sql(client, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    await _sql(client, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    verdict = await _verify(client, admin)
    assert verdict["broken"]["seq"] == 2 and verdict["broken"]["reason"] == "reordered"


async def test_verify_is_for_auditors_only(client, operator, viewer):
    for session in (operator, viewer):
        answer = await client.get("/api/audit/verify", headers=session.headers)
        assert answer.status_code == 403


async def test_retention_keeps_the_chain_verifiable(client, admin):
    await _act(client, admin, 2)
    old = datetime.now(UTC) - timedelta(days=400)
    await _sql(client, "UPDATE audit_log SET at = :old WHERE seq <= 2", old=old)
    # Moving times is an edit too...
    assert (await _verify(client, admin))["broken"]["reason"] == "edited"
    # ...so write the old entries through the log itself, then prune them.
    await _sql(client, "DELETE FROM audit_log")
    await _sql(client, "DELETE FROM station_chain_heads")
    audit = client.app.state.audit
    from station_api.services.audit import audit_record

    for i in range(3):
        record = audit_record("test.old", "tester", None, f"thing/{i}")
        await audit.record_alone(record.model_copy(update={"at": old + timedelta(days=i)}))
    await _act(client, admin, 1)
    assert await audit.prune(datetime.now(UTC) - timedelta(days=365)) == 3
    verdict = await _verify(client, admin)
    assert verdict["intact"] is True and verdict["first_seq"] == 4, verdict


async def test_entries_from_before_the_chain_are_chained_at_start(settings, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'station.db'}"
    await upgrade_url(url, "0001")
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        for i in range(3):
            await conn.execute(
                text(
                    "INSERT INTO audit_log (at, service, actor, action, outcome, detail) "
                    "VALUES (:at, 'station-api', 'old-admin', 'user.create', 'success', '{}')"
                ),
                # Recent: housekeeping at start prunes what is past retention.
                {"at": (datetime.now(UTC) - timedelta(hours=3 - i)).replace(tzinfo=None)},
            )
    await engine.dispose()
    await upgrade_url(url)
    app = create_app(settings.model_copy(update={"database_url": url}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
            setup = await http.post(
                "/api/auth/setup",
                json={
                    "setup_token": app.state.setup_token,
                    "username": "root-admin",
                    "password": ADMIN_PASSWORD,
                },
            )
            assert setup.status_code == 201, setup.text
            login = await http.post(
                "/api/auth/token", data={"username": "root-admin", "password": ADMIN_PASSWORD}
            )
            token = login.json()["access_token"]
            verdict = (
                await http.get("/api/audit/verify", headers={"Authorization": f"Bearer {token}"})
            ).json()
    assert verdict["intact"] is True, verdict
    # The three old entries first (in id order), then setup and login.
    assert verdict["first_seq"] == 1 and verdict["count"] >= 5
