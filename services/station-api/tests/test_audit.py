"""Every privileged action lands in the audit log; filters, paging and CSV export."""

from __future__ import annotations

import csv
import io

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"


async def _entries(client, admin, **params) -> list[dict]:
    answer = await client.get("/api/audit", params={"limit": 500, **params}, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_each_action_is_audited(client, admin):
    await client.post("/api/auth/token", data={"username": ADMIN, "password": "wrong-password"})
    session = await client.login(ADMIN, ADMIN_PASSWORD)
    await client.put(
        "/api/settings",
        json={"settings": {"identity": {"name": "One", "callsign": "WXYZ"}}},
        headers=admin.headers,
    )
    await client.patch(
        "/api/settings", json={"patch": {"identity": {"name": "Two"}}}, headers=admin.headers
    )
    await client.put(
        "/api/settings",
        json={"settings": {"identity": {"callsign": "BAD-ONE"}}},
        headers=admin.headers,
    )
    await client.post("/api/settings/rollback", headers=admin.headers)
    export = (await client.get("/api/settings/export", headers=admin.headers)).json()
    export["settings"]["identity"]["name"] = "Three"
    await client.post("/api/settings/import", json=export, headers=admin.headers)
    await client.post(
        "/api/users",
        json={"username": "carol", "password": "carol-password-1", "role": "operator"},
        headers=admin.headers,
    )
    await client.post(
        "/api/users",
        json={"username": "carol", "password": "carol-password-1", "role": "operator"},
        headers=admin.headers,
    )
    await client.patch("/api/users/carol", json={"role": "viewer"}, headers=admin.headers)
    await client.patch(f"/api/users/{ADMIN}", json={"role": "viewer"}, headers=admin.headers)
    carol = await client.login("carol", "carol-password-1")
    await client.post(
        "/api/auth/password",
        json={"current_password": "carol-password-1", "new_password": "carol-password-2"},
        headers=carol.headers,
    )
    await client.delete("/api/users/carol", headers=admin.headers)
    client.cookies.clear()  # the password change answered with session cookies
    out = await client.post("/api/auth/logout", json={"refresh_token": session.refresh_token})
    assert out.status_code == 204, out.text

    got = [(e["action"], e["outcome"], e["actor"]) for e in reversed(await _entries(client, admin))]
    expected = [
        ("user.create", "success", ADMIN),  # the setup token
        ("auth.login", "success", ADMIN),
        ("auth.login", "failure", ADMIN),
        ("auth.login", "success", ADMIN),
        ("settings.update", "success", ADMIN),
        ("settings.update", "success", ADMIN),
        ("settings.rollback", "success", ADMIN),
        ("settings.import", "success", ADMIN),
        ("user.create", "success", ADMIN),
        ("user.create", "failure", ADMIN),
        ("user.update", "success", ADMIN),
        ("user.update", "failure", ADMIN),
        ("auth.login", "success", "carol"),
        ("auth.password_change", "success", "carol"),
        ("user.delete", "success", ADMIN),
        ("auth.logout", "success", ADMIN),
    ]
    assert got == expected
    every = await _entries(client, admin)
    assert all(e["client_addr"] == "127.0.0.1" and e["service"] == "station-api" for e in every)
    assert all(e["at"].endswith("Z") for e in every)
    demote = next(e for e in every if e["action"] == "user.update" and e["outcome"] == "failure")
    assert demote["target"] == ADMIN and demote["detail"]["status"] == 409
    change = next(e for e in every if e["action"] == "user.update" and e["outcome"] == "success")
    assert change["detail"]["role"] == {"from": "operator", "to": "viewer"}
    # Nothing secret or password-like in the log.
    text = str(every)
    assert "carol-password" not in text and "argon2" not in text


async def test_validation_failure_of_a_body_is_not_audited_as_a_change(client, admin):
    # Malformed bodies never reach the service; well-formed but invalid documents do.
    before = len(await _entries(client, admin))
    await client.put("/api/settings", json={"nonsense": 1}, headers=admin.headers)
    assert len(await _entries(client, admin)) == before


async def test_filters_and_paging(client, admin):
    for i in range(5):
        await client.post("/api/auth/token", data={"username": f"ghost{i}", "password": "x" * 10})
    failures = await _entries(client, admin, action="auth.login", outcome="failure")
    assert len(failures) == 5
    assert {e["actor"] for e in failures} == {f"ghost{i}" for i in range(5)}
    family = await _entries(client, admin, action="auth")
    assert len(family) == 6  # five failures and the admin's login
    by_actor = await _entries(client, admin, actor="ghost3")
    assert [e["target"] for e in by_actor] == ["ghost3"]

    first = await client.get("/api/audit", params={"limit": 3}, headers=admin.headers)
    page1 = first.json()
    assert len(page1["items"]) == 3 and page1["next_before"] is not None
    second = await client.get(
        "/api/audit", params={"limit": 3, "before": page1["next_before"]}, headers=admin.headers
    )
    page2 = second.json()
    ids = [e["id"] for e in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    third = await client.get(
        "/api/audit", params={"limit": 3, "before": page2["next_before"]}, headers=admin.headers
    )
    assert third.json()["next_before"] is None  # 7 entries in all

    future = await _entries(client, admin, since="2999-01-01T00:00:00Z")
    assert future == []
    bad = await client.get("/api/audit", params={"outcome": "maybe"}, headers=admin.headers)
    assert bad.status_code == 422


async def test_csv_export(client, admin):
    await client.post(
        "/api/users",
        json={"username": "=cmd", "password": "formula-password", "role": "viewer"},
        headers=admin.headers,
    )  # refused (bad name) and audited with a formula-looking target
    answer = await client.get("/api/audit/export.csv", headers=admin.headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["action"] for r in rows] == ["user.create", "auth.login", "user.create"]
    assert rows[0]["outcome"] == "failure" and rows[0]["target"] == "'=cmd"
    assert set(rows[0]) == {
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
    }
    filtered = await client.get(
        "/api/audit/export.csv", params={"action": "auth.login"}, headers=admin.headers
    )
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 1


async def test_audit_is_admin_only(client, operator, viewer):
    for session in (operator, viewer):
        assert (await client.get("/api/audit", headers=session.headers)).status_code == 403
        csv_answer = await client.get("/api/audit/export.csv", headers=session.headers)
        assert csv_answer.status_code == 403


async def test_other_services_record_through_the_bus_once(client, admin, aredis, bus_namespace):
    import asyncio

    from eas_schemas.system_events import AUDIT_RECORDS
    from servicekit.auth.audit import audit_envelope, publish_audit
    from servicekit.auth.permissions import Role
    from servicekit.auth.tokens import Principal
    from servicekit.bus import AsyncBus, stream_key
    from servicekit.tail import read_all

    bus = AsyncBus(aredis, bus_namespace)
    operator = Principal("oper-9", Role.OPERATOR, frozenset())
    await publish_audit(
        bus,
        "alerts-api",
        "alert.manual",
        operator,
        target="alert/42",
        client_addr="10.0.0.7",
        detail={"event": "TOR"},
    )
    # The same envelope delivered twice (a retried publish) is one entry.
    twice = audit_envelope("audio-control", "relay.confirm", "oper-9", target="relay/7")
    await bus.publish(AUDIT_RECORDS, twice)
    await bus.publish(AUDIT_RECORDS, twice)
    key = stream_key(AUDIT_RECORDS, bus_namespace)
    last = await aredis.xadd(key, {"type": "x", "id": "1", "envelope": "{}"})

    async def all_handled() -> bool:
        # Every entry read and acknowledged (or dead-lettered) by every group: only then is
        # "recorded once" a fact rather than "not yet twice".
        groups = await aredis.xinfo_groups(key)
        return bool(groups) and all(
            g["pending"] == 0 and g["last-delivered-id"] == last for g in groups
        )

    for _ in range(100):
        entries = await _entries(client, admin, service="alerts-api")
        relays = await _entries(client, admin, action="relay.confirm")
        if entries and relays:
            break
        await asyncio.sleep(0.05)
    assert [(e["action"], e["actor"], e["actor_role"], e["target"]) for e in entries] == [
        ("alert.manual", "oper-9", "operator", "alert/42")
    ]
    assert entries[0]["client_addr"] == "10.0.0.7" and entries[0]["detail"] == {"event": "TOR"}
    for _ in range(200):
        if await all_handled():
            break
        await asyncio.sleep(0.05)
    assert await all_handled()
    assert len(await _entries(client, admin, action="relay.confirm")) == 1
    dead = await read_all(aredis, stream_key("bus.deadletter", bus_namespace))
    assert len(dead) == 1
