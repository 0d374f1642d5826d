"""Issue 12, throttling: setup refuses before it hashes; parallel guesses are counted."""

from __future__ import annotations

import asyncio

ADMIN = "root-admin"
ADMIN_PASSWORD = "correct horse battery staple"


def _count_hashes(client) -> list[str]:
    calls: list[str] = []
    passwords = client.app.state.sessions.accounts.passwords
    real = passwords.hash

    def counting(password: str) -> str:
        calls.append(password)
        return real(password)

    passwords.hash = counting
    return calls


async def _setup(client, token: str, username: str = "first"):
    return await client.post(
        "/api/auth/setup",
        json={"setup_token": token, "username": username, "password": "first-admin-pw"},
    )


async def _audit_count(client, admin, action: str) -> int:
    answer = await client.get(
        "/api/audit", params={"limit": 500, "action": action}, headers=admin.headers
    )
    assert answer.status_code == 200, answer.text
    return len(answer.json()["items"])


async def test_setup_with_a_wrong_token_never_hashes(client):
    hashes = _count_hashes(client)
    assert (await _setup(client, "guess")).status_code == 403
    assert hashes == []


async def test_setup_after_setup_is_closed_cheap_and_unaudited(client, admin):
    hashes = _count_hashes(client)
    before = await _audit_count(client, admin, "auth.setup")
    for _ in range(3):
        answer = await _setup(client, "guess", "second")
        assert answer.status_code == 403 and "closed" in answer.json()["detail"]
    assert hashes == []
    assert await _audit_count(client, admin, "auth.setup") == before


async def test_setup_is_throttled_per_address(client, settings):
    for _ in range(settings.login_max_failures_addr):
        assert (await _setup(client, "guess")).status_code == 403
    locked = await _setup(client, client.app.state.setup_token)
    assert locked.status_code == 429 and "retry-after" in locked.headers


async def test_parallel_guesses_are_counted_before_the_password_check(client, admin, settings):
    limit = settings.login_max_failures_user
    answers = await asyncio.gather(
        *(
            client.post("/api/auth/token", data={"username": ADMIN, "password": f"wrong-{i}"})
            for i in range(limit * 3)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(401) == limit, codes
    assert codes.count(429) == limit * 2


async def test_parallel_password_change_guesses_are_counted(client, admin, settings):
    limit = settings.login_max_failures_user
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/auth/password",
                json={"current_password": f"wrong-{i}-guess", "new_password": "x" * 12},
                headers=admin.headers,
            )
            for i in range(limit * 3)
        )
    )
    codes = [a.status_code for a in answers]
    assert codes.count(403) == limit, codes
    assert codes.count(429) == limit * 2


async def test_a_success_does_not_reset_the_address_count(client, admin, settings):
    for i in range(settings.login_max_failures_addr - 1):
        bad = await client.post(
            "/api/auth/token", data={"username": f"spray-{i}", "password": "wrong-pw"}
        )
        assert bad.status_code == 401
    await client.login(ADMIN, ADMIN_PASSWORD)
    last = await client.post("/api/auth/token", data={"username": "spray-x", "password": "nope"})
    assert last.status_code == 401
    locked = await client.post(
        "/api/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert locked.status_code == 429


async def _client_behind(settings, proxies: list[str], peer: str):
    import httpx
    from asgi_lifespan import LifespanManager

    from station_api.app import create_app

    app = create_app(settings.model_copy(update={"trusted_proxies": proxies}))
    manager = LifespanManager(app)
    await manager.__aenter__()
    transport = httpx.ASGITransport(app=manager.app, client=(peer, 4000))
    return manager, httpx.AsyncClient(transport=transport, base_url="http://station")


async def test_behind_the_proxy_one_address_does_not_lock_out_another(settings):
    manager, http = await _client_behind(settings, ["10.9.0.2"], "10.9.0.2")
    try:
        for i in range(settings.login_max_failures_addr):
            bad = await http.post(
                "/api/auth/token",
                data={"username": f"spray-{i}", "password": "wrong-pw"},
                headers={"x-forwarded-for": "198.51.100.7"},
            )
            assert bad.status_code == 401
        locked = await http.post(
            "/api/auth/token",
            data={"username": "someone", "password": "wrong-pw"},
            headers={"x-forwarded-for": "198.51.100.7"},
        )
        assert locked.status_code == 429
        # Someone else behind the same proxy is not locked out...
        other = await http.post(
            "/api/auth/token",
            data={"username": "someone", "password": "wrong-pw"},
            headers={"x-forwarded-for": "198.51.100.8"},
        )
        assert other.status_code == 401
        # ...and the locked one cannot escape by prepending an address of its choosing.
        spoof = await http.post(
            "/api/auth/token",
            data={"username": "someone", "password": "wrong-pw"},
            headers={"x-forwarded-for": "1.1.1.1, 198.51.100.7"},
        )
        assert spoof.status_code == 429
    finally:
        await http.aclose()
        await manager.__aexit__(None, None, None)


async def test_a_local_process_cannot_choose_its_address(settings):
    manager, http = await _client_behind(settings, [], "127.0.0.1")
    try:
        for i in range(settings.login_max_failures_addr):
            await http.post(
                "/api/auth/token",
                data={"username": f"spray-{i}", "password": "wrong-pw"},
                headers={"x-forwarded-for": f"198.51.100.{i}"},
            )
        locked = await http.post(
            "/api/auth/token",
            data={"username": "someone", "password": "wrong-pw"},
            headers={"x-forwarded-for": "203.0.113.1"},
        )
        assert locked.status_code == 429
    finally:
        await http.aclose()
        await manager.__aexit__(None, None, None)


async def test_cookies_are_secure_behind_a_tls_proxy(settings, admin):
    manager, http = await _client_behind(settings, ["10.9.0.2"], "10.9.0.2")
    try:
        answer = await http.post(
            "/api/auth/token",
            data={"username": ADMIN, "password": ADMIN_PASSWORD},
            headers={"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https"},
        )
        assert answer.status_code == 200, answer.text
        cookies = answer.headers.get_list("set-cookie")
        assert cookies and all("Secure" in c for c in cookies)
    finally:
        await http.aclose()
        await manager.__aexit__(None, None, None)


async def _refused_soon(client, headers) -> int:
    """Poll /me until the revocation has come round the bus (deadline, not timing)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        answer = await client.get("/api/auth/me", headers=headers)
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer.status_code
        await asyncio.sleep(0.05)


async def test_logout_revokes_the_access_token_itself(client, admin):
    session = await client.login(ADMIN, ADMIN_PASSWORD)
    other = await client.login(ADMIN, ADMIN_PASSWORD)
    assert (await client.get("/api/auth/me", headers=session.headers)).status_code == 200
    out = await client.post(
        "/api/auth/logout", json={"refresh_token": session.refresh_token}, headers=session.headers
    )
    assert out.status_code == 204
    assert await _refused_soon(client, session.headers) == 401
    # The user's other session is untouched.
    assert (await client.get("/api/auth/me", headers=other.headers)).status_code == 200


async def test_demote_disable_and_delete_revoke_access_tokens(client, admin):
    for change in ({"role": "viewer"}, {"disabled": True}, None):
        name = f"oper-{'x' if change is None else next(iter(change))}"
        session = await client.make_user(admin, name, "operator")
        assert (await client.get("/api/auth/me", headers=session.headers)).status_code == 200
        if change is None:
            answer = await client.delete(f"/api/users/{name}", headers=admin.headers)
            assert answer.status_code == 204, answer.text
        else:
            answer = await client.patch(f"/api/users/{name}", json=change, headers=admin.headers)
            assert answer.status_code == 200, answer.text
        assert await _refused_soon(client, session.headers) == 401, change


async def test_password_change_revokes_older_access_tokens_not_the_new_one(client, admin):
    old = await client.login(ADMIN, ADMIN_PASSWORD)
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "a brand new password"},
        headers=old.headers,
    )
    assert changed.status_code == 200
    assert await _refused_soon(client, old.headers) == 401
    new = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert (await client.get("/api/auth/me", headers=new)).status_code == 200


async def test_access_tokens_are_short_by_default():
    from station_api.settings import StationApiSettings

    assert StationApiSettings().access_ttl_s <= 300
