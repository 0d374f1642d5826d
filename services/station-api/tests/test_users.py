"""User administration: CRUD, no hashes in answers, no escalation, last-admin protection."""

from __future__ import annotations

import time

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"


async def test_crud_and_no_password_hash_in_any_answer(client, admin):
    created = await client.post(
        "/api/users",
        json={"username": "Alice.Ops", "password": "alice-password-1", "role": "operator"},
        headers=admin.headers,
    )
    assert created.status_code == 201
    assert created.json()["username"] == "alice.ops"  # user names are case-insensitive
    assert created.json()["created_by"] == ADMIN
    duplicate = await client.post(
        "/api/users",
        json={"username": "alice.ops", "password": "alice-password-2", "role": "viewer"},
        headers=admin.headers,
    )
    assert duplicate.status_code == 409

    listed = await client.get("/api/users", headers=admin.headers)
    assert {u["username"] for u in listed.json()} == {ADMIN, "alice.ops"}
    one = await client.get("/api/users/alice.ops", headers=admin.headers)
    assert one.json()["role"] == "operator"
    for answer in (created, listed, one):
        assert "argon2" not in answer.text and "password_hash" not in answer.text
        assert "alice-password" not in answer.text

    changed = await client.patch(
        "/api/users/alice.ops", json={"role": "viewer", "disabled": True}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "viewer" and changed.json()["disabled"] is True
    # A disabled user cannot log in.
    refused = await client.post(
        "/api/auth/token", data={"username": "alice.ops", "password": "alice-password-1"}
    )
    assert refused.status_code == 401

    assert (await client.delete("/api/users/alice.ops", headers=admin.headers)).status_code == 204
    assert (await client.get("/api/users/alice.ops", headers=admin.headers)).status_code == 404
    assert (await client.delete("/api/users/alice.ops", headers=admin.headers)).status_code == 404


async def test_bad_user_input_named(client, admin):
    answer = await client.post(
        "/api/users",
        json={"username": "x y", "password": "short", "role": "superuser"},
        headers=admin.headers,
    )
    assert answer.status_code == 422
    assert "role" in answer.json()["fields"]
    weak = await client.post(
        "/api/users",
        json={"username": "bob", "password": "short", "role": "viewer"},
        headers=admin.headers,
    )
    assert weak.status_code == 422 and weak.json()["fields"] == ["password"]


async def test_role_escalation_refused(client, admin, operator, viewer, keypair):
    # Only admins administer users at all...
    for session in (operator, viewer):
        answer = await client.post(
            "/api/users",
            json={"username": "evil", "password": "evil-password-1", "role": "admin"},
            headers=session.headers,
        )
        assert answer.status_code == 403
        promote = await client.patch(
            f"/api/users/{session.username}", json={"role": "admin"}, headers=session.headers
        )
        assert promote.status_code == 403
    # ...and the service layer refuses a grant above the granter's role even if a route
    # were opened to operators (checked directly).
    import pytest

    from servicekit.auth.tokens import TokenVerifier
    from servicekit.errors import Forbidden

    op = TokenVerifier(keypair[1]).verify(operator.access_token)
    with pytest.raises(Forbidden):
        await client.app.state.users.create_user(op, "evil", "evil-password-1", Role.ADMIN, "t")
    with pytest.raises(Forbidden):
        await client.app.state.users.update_user(op, "view-1", "t", role=Role.ADMIN)
    with pytest.raises(Forbidden):
        await client.app.state.users.delete_user(op, ADMIN, "t")


async def test_role_change_ends_the_users_sessions(client, admin, operator):
    changed = await client.patch(
        "/api/users/oper-1", json={"role": "viewer"}, headers=admin.headers
    )
    assert changed.status_code == 200
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": operator.refresh_token})
    assert refresh.status_code == 401
    # Reset password by an admin.
    reset = await client.patch(
        "/api/users/oper-1", json={"password": "reset-password-99"}, headers=admin.headers
    )
    assert reset.status_code == 200
    assert (await client.login("oper-1", "reset-password-99")).role == "viewer"


async def test_last_admin_cannot_be_demoted_disabled_or_deleted(client, admin):
    for change in ({"role": "operator"}, {"disabled": True}):
        answer = await client.patch(f"/api/users/{ADMIN}", json=change, headers=admin.headers)
        assert answer.status_code == 409, change
    assert (await client.delete(f"/api/users/{ADMIN}", headers=admin.headers)).status_code == 409

    # With a second admin, the first may step down; then the second is the last.
    await client.post(
        "/api/users",
        json={"username": "admin-two", "password": "admin-two-password", "role": "admin"},
        headers=admin.headers,
    )
    second = await client.login("admin-two", "admin-two-password")
    down = await client.patch(f"/api/users/{ADMIN}", json={"role": "viewer"}, headers=admin.headers)
    assert down.status_code == 200
    assert (await client.delete("/api/users/admin-two", headers=second.headers)).status_code == 409


async def test_concurrent_demotions_leave_one_admin(client, admin):
    import asyncio

    await client.post(
        "/api/users",
        json={"username": "admin-two", "password": "admin-two-password", "role": "admin"},
        headers=admin.headers,
    )
    results = await asyncio.gather(
        client.patch(f"/api/users/{ADMIN}", json={"role": "viewer"}, headers=admin.headers),
        client.patch("/api/users/admin-two", json={"role": "viewer"}, headers=admin.headers),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    # The demoted one's token is revoked; ask as whoever is still admin.
    sessions = [
        await client.login(ADMIN, ADMIN_PASSWORD),
        await client.login("admin-two", "admin-two-password"),
    ]
    still = next(s for s in sessions if s.role == "admin")
    users = (await client.get("/api/users", headers=still.headers)).json()
    assert sum(1 for u in users if u["role"] == "admin") == 1


async def test_token_of_a_deleted_users_role_still_limited_by_its_claims(client, admin, keypair):
    # A token minted for a viewer never gains admin rights, whatever the user table says.
    viewer_token = TokenSigner(keypair[0]).mint("ghost", Role.VIEWER, ttl_s=60, now=time.time())
    answer = await client.get("/api/users", headers={"Authorization": f"Bearer {viewer_token}"})
    assert answer.status_code == 403
