"""Forwarded headers are believed only from configured proxies, hop by hop from the right."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from servicekit.proxy import ProxyHeadersMiddleware, TrustedProxies, parse_networks
from servicekit.settings import ServiceSettings

PROXIES = TrustedProxies(parse_networks(["10.0.0.0/8", "fd00::1"]))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # No trusted peer: the header is whatever the caller wrote.
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        ("127.0.0.1", "1.2.3.4", "127.0.0.1"),
        # One proxy: its appended hop is the client; what the client prepended is ignored.
        ("10.0.0.5", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # Two of our proxies in a row: skip both.
        ("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        # Garbage right after our proxies: the last hop we can vouch for.
        ("10.0.0.5", "198.51.100.7, not-an-ip", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("10.0.0.5", "10.0.0.9", "10.0.0.9"),
    ],
)
def test_client_is_the_last_untrusted_hop(peer, forwarded_for, client):
    assert PROXIES.client(peer, forwarded_for) == client


def test_nothing_is_trusted_by_default():
    default = TrustedProxies(parse_networks(ServiceSettings().trusted_proxies))
    assert default.trusts("127.0.0.1") is False


def test_bad_proxy_entries_are_refused(monkeypatch):
    monkeypatch.setenv("EAS_TRUSTED_PROXIES", "10.0.0.1, nope")
    with pytest.raises(ValueError, match="nope"):
        ServiceSettings()
    monkeypatch.setenv("EAS_TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12")
    assert ServiceSettings().trusted_proxies == ["10.0.0.1", "172.16.0.0/12"]


def _app(trusted: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    async def who(request: Request) -> dict[str, str]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    app.add_middleware(ProxyHeadersMiddleware, trusted=parse_networks(trusted))
    return app


async def _who(app: FastAPI, peer: str, headers: dict[str, str]) -> dict[str, str]:
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://station") as http:
        answer = await http.get("/who", headers=headers)
        result: dict[str, str] = answer.json()
        return result


async def test_scheme_and_client_from_a_trusted_proxy_only():
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.7", "x-forwarded-proto": "https"}
    app = _app(["10.0.0.5"])
    assert await _who(app, "10.0.0.5", headers) == {"client": "198.51.100.7", "scheme": "https"}
    assert await _who(app, "127.0.0.1", headers) == {"client": "127.0.0.1", "scheme": "http"}
    assert await _who(_app([]), "10.0.0.5", headers) == {"client": "10.0.0.5", "scheme": "http"}
