"""Login, tokens, refresh rotation, revocation, logout, throttling, password change, setup."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from eas_schemas.clock import utcnow
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenVerifier
from station_api import repository as repo
from station_api.passwords import Passwords
from station_api.services.accounts import token_hash
from station_api.services.sessions import SETUP_TOKEN_OVERLAP

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"


async def test_login_issues_a_verifiable_short_lived_token_and_cookies(client, admin, keypair):
    answer = await client.post(
        "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["role"] == "admin"
    assert body["expires_in"] == 300
    # Any service verifies it locally with the public key alone.
    principal = TokenVerifier(keypair[1]).verify(body["access_token"])
    assert principal.subject == ADMIN and principal.role == Role.ADMIN
    assert principal.expires_at is not None and principal.expires_at - time.time() <= 300
    cookies = answer.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("eas_access="))
    csrf = next(c for c in cookies if c.startswith("eas_csrf="))
    refresh = next(c for c in cookies if c.startswith("eas_refresh="))
    assert "HttpOnly" in access and "SameSite=strict" in access and "Path=/" in access
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    assert "HttpOnly" in refresh and "Path=/api/auth" in refresh
    assert body["csrf_token"] in csrf


async def test_wrong_password_and_unknown_user_look_the_same(client, admin):
    wrong = await client.post("/api/auth/token", data={"username": ADMIN, "password": "nope-nope"})
    unknown = await client.post(
        "/api/auth/token", data={"username": "nobody", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(client, admin):
    first = await client.login(ADMIN, ADMIN_PASSWORD)
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first.refresh_token
    assert rotated.json()["access_token"] != first.access_token

    # The spent token is refused, and its reuse ends the whole session (the newer token too).
    reused = await client.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})
    assert reused.status_code == 401
    after = await client.post("/api/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401
    # Other sessions of the same user are untouched.
    other = await client.login(ADMIN, ADMIN_PASSWORD)
    ok = await client.post("/api/auth/refresh", json={"refresh_token": other.refresh_token})
    assert ok.status_code == 200


async def test_garbage_and_missing_refresh_tokens(client, admin):
    client.cookies.clear()
    assert (await client.post("/api/auth/refresh", json={"refresh_token": "x"})).status_code == 401
    assert (await client.post("/api/auth/refresh")).status_code == 401


async def test_logout_revokes_the_refresh_token(client, admin):
    session = await client.login(ADMIN, ADMIN_PASSWORD)
    out = await client.post(
        "/api/auth/logout", json={"refresh_token": session.refresh_token}, headers=session.headers
    )
    assert out.status_code == 204
    cleared = out.headers.get_list("set-cookie")
    assert any(c.startswith('eas_access=""') or "Max-Age=0" in c for c in cleared)
    again = await client.post("/api/auth/refresh", json={"refresh_token": session.refresh_token})
    assert again.status_code == 401
    # Logging out twice is harmless.
    twice = await client.post("/api/auth/logout", json={"refresh_token": session.refresh_token})
    assert twice.status_code == 204


async def test_browser_session_refresh_and_logout_by_cookie(client, admin):
    await client.login(ADMIN, ADMIN_PASSWORD, keep_cookies=True)
    csrf = client.cookies["eas_csrf"]
    # Cookie-authenticated read: no CSRF token needed.
    me = await client.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == ADMIN
    # Refresh by cookie needs the CSRF header.
    assert (await client.post("/api/auth/refresh")).status_code == 403
    refreshed = await client.post("/api/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert refreshed.status_code == 200
    new_csrf = client.cookies["eas_csrf"]
    assert new_csrf != csrf
    out = await client.post("/api/auth/logout", headers={"X-CSRF-Token": new_csrf})
    assert out.status_code == 204
    assert "eas_access" not in client.cookies
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_throttle_per_user(client, admin, settings):
    for _ in range(settings.login_max_failures_user):
        bad = await client.post("/api/auth/token", data={"username": ADMIN, "password": "wrong-pw"})
        assert bad.status_code == 401
    locked = await client.post(
        "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert locked.status_code == 429
    retry = int(locked.headers["retry-after"])
    assert 0 < retry <= settings.login_window_s
    # Another user from the same address is not locked out by this user's failures.
    await client.post(
        "/api/users",
        json={"username": "other-user", "password": "other-password-1", "role": "viewer"},
        headers=admin.headers,
    )
    assert (await client.login("other-user", "other-password-1")).role == "viewer"


async def test_throttle_per_address(client, admin, settings):
    for i in range(settings.login_max_failures_addr):
        bad = await client.post(
            "/api/auth/token", data={"username": f"spray-{i}", "password": "wrong-pw"}
        )
        assert bad.status_code == 401
    locked = await client.post(
        "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert locked.status_code == 429 and "retry-after" in locked.headers


async def test_password_change_needs_current_and_ends_sessions(client, admin):
    old = await client.login(ADMIN, ADMIN_PASSWORD)
    wrong = await client.post(
        "/api/auth/password",
        json={"current_password": "not-it-at-all", "new_password": "a brand new password"},
        headers=old.headers,
    )
    assert wrong.status_code == 403
    weak = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "short"},
        headers=old.headers,
    )
    assert weak.status_code == 422 and weak.json()["fields"] == ["new_password"]
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "a brand new password"},
        headers=old.headers,
    )
    assert changed.status_code == 200
    # Every refresh token issued before the change is revoked; the new one works.
    for session in (old, admin):
        refused = await client.post(
            "/api/auth/refresh", json={"refresh_token": session.refresh_token}
        )
        assert refused.status_code == 401
    fresh = changed.json()["refresh_token"]
    assert (
        await client.post("/api/auth/refresh", json={"refresh_token": fresh})
    ).status_code == 200
    bad_old = await client.post(
        "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert bad_old.status_code == 401
    assert (await client.login(ADMIN, "a brand new password")).role == "admin"


async def test_setup_token_works_once_and_only_while_no_user_exists(client):
    token = client.app.state.setup_token
    bad = await client.post(
        "/api/auth/setup",
        json={"setup_token": "guess", "username": "first", "password": "first-admin-pw"},
    )
    assert bad.status_code == 403
    ok = await client.post(
        "/api/auth/setup",
        json={"setup_token": token, "username": "first", "password": "first-admin-pw"},
    )
    assert ok.status_code == 201 and ok.json()["role"] == "admin"
    again = await client.post(
        "/api/auth/setup",
        json={"setup_token": token, "username": "second", "password": "second-admin-pw"},
    )
    assert again.status_code == 403
    # And no new token is made once a user exists.
    assert await client.app.state.sessions.ensure_setup_token() is None


async def test_replicas_starting_together_each_get_a_setup_token_that_works(client):
    sessions = client.app.state.sessions
    # Two more replicas start at once beside the fixture's (the fault run saw the second of
    # two fail its start on the one token row, and each replica's token replace the others').
    made = await asyncio.gather(*(sessions.ensure_setup_token() for _ in range(2)))
    tokens = [client.app.state.setup_token, *made]
    async with sessions.accounts.engine.connect() as conn:
        for token in tokens:
            assert await repo.setup_token_matches(conn, token_hash(token))
    # Any one of them opens setup; then setup is closed for the others.
    ok = await client.post(
        "/api/auth/setup",
        json={"setup_token": tokens[1], "username": "first", "password": "first-admin-pw"},
    )
    assert ok.status_code == 201
    late = await client.post(
        "/api/auth/setup",
        json={"setup_token": tokens[2], "username": "second", "password": "second-admin-pw"},
    )
    assert late.status_code == 403


async def test_a_restart_retires_setup_tokens_older_than_the_overlap(client):
    sessions = client.app.state.sessions
    first = client.app.state.setup_token
    later = utcnow() + SETUP_TOKEN_OVERLAP + timedelta(seconds=1)
    fresh = await sessions.ensure_setup_token(now=later)
    async with sessions.accounts.engine.connect() as conn:
        assert not await repo.setup_token_matches(conn, token_hash(first))
        assert await repo.setup_token_matches(conn, token_hash(fresh))
    stale = await client.post(
        "/api/auth/setup",
        json={"setup_token": first, "username": "first", "password": "first-admin-pw"},
    )
    assert stale.status_code == 403


async def test_no_open_endpoint_creates_users(client):
    answer = await client.post(
        "/api/users", json={"username": "intruder", "password": "intruder-pw-1", "role": "admin"}
    )
    assert answer.status_code == 401


async def test_login_without_signing_key_is_503(settings, database_url):
    import httpx
    from asgi_lifespan import LifespanManager

    from station_api.app import create_app

    app = create_app(settings.model_copy(update={"signing_key_file": None}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
            answer = await http.post("/api/auth/token", data={"username": "a", "password": "b"})
            assert answer.status_code == 503
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and "signing_key" in ready.json()["checks"]


def test_passwords_are_argon2id_with_production_parameters():
    passwords = Passwords()
    stored = passwords.hash("some password 123")
    assert stored.startswith("$argon2id$") and "m=65536" in stored
    assert passwords.verify("some password 123", stored) == (True, None)
    assert passwords.verify("other", stored)[0] is False
    assert passwords.verify("x", None)[0] is False
    assert passwords.verify("x", "not-a-hash")[0] is False


async def test_login_fails_closed_when_redis_is_away(client, admin):
    from redis.exceptions import ConnectionError as RedisConnectionError

    throttle = client.app.state.sessions.throttle

    async def down(*args, **kwargs):
        raise RedisConnectionError("gone")

    real, throttle.attempt = throttle.attempt, down
    try:
        answer = await client.post(
            "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
        )
    finally:
        throttle.attempt = real
    assert answer.status_code == 503 and "access_token" not in answer.text
