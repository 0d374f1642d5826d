"""CachedReads' ``direct`` hook: who may reach it, what it answers, what is kept.

A small app whose read route needs ``alerts:write`` (so a viewer token is a 403 on a GET)
and a direct handler that records every call: the handler runs only for callers the
route's own check accepts; everyone else gets the application's refusal. A 200 it builds is
tagged and cached like a page the application built; its other answers are not kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import Response
from starlette.types import Scope

from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission, Role
from servicekit.auth.tokens import Principal, TokenVerifier
from servicekit.errors import install_error_handlers
from servicekit.read_cache import Answer, CachedReads, ResponseCache

Writer = Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))]


class _Direct:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Scope) -> Answer | None:
        self.calls.append(scope["path"])
        name = scope["path"].rsplit("/", 1)[1]
        if name == "app":  # not mine: the application answers
            return None
        if name == "gone":
            return Answer(404, [(b"content-type", b"application/json")], b'{"detail":"gone"}')
        body = b'{"direct":"' + name.encode() + b'"}'
        return Answer(200, [(b"content-type", b"application/json")], body)


async def _mark() -> object:
    return 1  # nothing ever changes: only the entries' own rules decide


@pytest.fixture
async def setup(
    keypair: tuple[str, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, _Direct, ResponseCache]]:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/things/{name}")
    async def thing(name: str, _: Writer) -> Response:
        return Response(b'{"app":"' + name.encode() + b'"}', media_type="application/json")

    direct = _Direct()
    cache = ResponseCache(_mark)
    app.add_middleware(CachedReads, cache, Permission.ALERTS_WRITE, ["/api/things"], direct=direct)
    app.state.verifier = TokenVerifier(keypair[1])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http, direct, cache


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refused_callers_never_reach_the_handler(
    setup: tuple[httpx.AsyncClient, _Direct, ResponseCache], token: Callable[..., str]
) -> None:
    http, direct, _ = setup
    viewer = await http.get("/api/things/x", headers=_bearer(token(Role.VIEWER)))
    assert viewer.status_code == 403 and "alerts:write" in viewer.json()["detail"]
    missing = await http.get("/api/things/x")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert direct.calls == []


async def test_its_200_is_tagged_and_kept_its_errors_are_not(
    setup: tuple[httpx.AsyncClient, _Direct, ResponseCache], token: Callable[..., str]
) -> None:
    http, direct, cache = setup
    admin = _bearer(token(Role.ADMIN))
    first = await http.get("/api/things/x", headers=admin)
    assert first.json() == {"direct": "x"} and "etag" in first.headers
    again = await http.get("/api/things/x", headers=admin)
    assert again.content == first.content and cache.hits == 1
    assert direct.calls == ["/api/things/x"], "the second one came from memory"
    tagged = await http.get(
        "/api/things/x", headers={**admin, "If-None-Match": first.headers["etag"]}
    )
    assert tagged.status_code == 304
    # A viewer is refused even for a page in memory.
    assert (await http.get("/api/things/x", headers=_bearer(token(Role.VIEWER)))).status_code == 403
    for _ in range(2):
        gone = await http.get("/api/things/gone", headers=admin)
        assert gone.status_code == 404 and "etag" not in gone.headers
    assert direct.calls.count("/api/things/gone") == 2, "a 404 is never kept"
    # Not the handler's: the application's own answer (cached as usual).
    assert (await http.get("/api/things/app", headers=admin)).json() == {"app": "app"}
