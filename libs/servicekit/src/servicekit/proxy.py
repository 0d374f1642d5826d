"""Forwarded headers, trusted only from the configured proxies.

A request's client address feeds login throttling and the audit log, and its scheme decides
whether cookies are ``Secure``. Both come from the socket, unless the socket's peer is one of
``trusted_proxies``: then ``X-Forwarded-For`` is read from the right, skipping every trusted
hop, and the first untrusted address is the client (the leftmost entries are whatever the
client wrote; only the hops our own proxies appended are believed). ``X-Forwarded-Proto`` is
taken from a trusted peer alone. Uvicorn's own handling is off (``proxy_headers=False``): it
trusts loopback by default, and on the one-machine station every local process is loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR networks; raises ValueError naming the bad entry."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return out


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[v6]:port"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "v4:port"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = list(networks)

    def trusts(self, host: str | None) -> bool:
        if not self.networks or host is None:
            return False
        address = _address(host)
        return address is not None and any(address in n for n in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client address: the last untrusted hop of the chain ending at ``peer``."""
        if not self.trusts(peer) or not forwarded_for:
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                # A garbage entry is where the believable chain ends: the hop after it (a
                # trusted proxy) is the last address we know.
                address = _address(hop)
                return str(address) if address is not None else peer
            peer = hop
        return peer  # every hop is ours (a health check from the proxy's own side)


class ProxyHeadersMiddleware:
    """Rewrites ``scope["client"]`` and ``scope["scheme"]`` from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.proxies.networks:
            client = scope.get("client")
            peer = client[0] if client else None
            if peer is not None and self.proxies.trusts(peer):
                forwarded_for: list[str] = []
                proto: str | None = None
                for name, value in scope.get("headers", []):
                    if name == b"x-forwarded-for":
                        forwarded_for.append(value.decode("latin-1"))
                    elif name == b"x-forwarded-proto":
                        proto = value.decode("latin-1")
                scope = dict(scope)
                scope["client"] = (self.proxies.client(peer, ",".join(forwarded_for)), 0)
                if proto is not None:
                    # The nearest proxy's word (the last entry) is the one it vouches for.
                    last = proto.split(",")[-1].strip().lower()
                    if last in ("http", "https"):
                        secure = last == "https"
                        if scope["type"] == "websocket":
                            scope["scheme"] = "wss" if secure else "ws"
                        else:
                            scope["scheme"] = last
        await self.app(scope, receive, send)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _hostname(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [v6]:port
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


class HostPolicy:
    """Which ``Host`` names a station answers to, and which page origins may open ``/ws``.

    Without a Host allow-list, a page the operator visits can rebind its own name to
    127.0.0.1 and read a loopback station (anonymous read on) as same-origin. Without an
    Origin check, any page can open the WebSocket, and a same-site one with the operator's
    cookie. Entries are names or addresses; ``.example.org`` also allows its subdomains;
    ``*`` allows any (behind a proxy that checks the Host itself).
    """

    def __init__(self, allowed: Sequence[str]) -> None:
        self.any = "*" in allowed
        names = [a.strip().lower() for a in allowed if a.strip() and a.strip() != "*"]
        self.exact = {_hostname(a) for a in names if not a.startswith(".")}
        self.suffixes = tuple(a for a in names if a.startswith("."))

    def host_allowed(self, host: str | None) -> bool:
        if self.any:
            return True
        if not host:
            return False
        name = _hostname(host)
        return name in self.exact or any(name.endswith(s) or name == s[1:] for s in self.suffixes)

    def origin_allowed(self, origin: str | None) -> bool:
        """A missing Origin is a non-browser client (it carries no victim's cookie)."""
        if origin is None:
            return True
        scheme, _, rest = origin.strip().partition("://")
        if scheme.lower() not in ("http", "https") or not rest:
            return False  # "null" (sandboxed frames, file:) included
        return self.host_allowed(rest.split("/", 1)[0])
