"""Outbound URLs an operator configures (stream inputs, CAP feeds): credentials kept out of
every view, message and log, and private addresses refused unless allowed per URL.

``strip_userinfo`` is for URLs shown to anyone; ``redact`` for free text that may quote one
(an exception's message, ffmpeg's stderr). ``check_public`` resolves a host and refuses
loopback, private, link-local and other non-global addresses: a URL given to the station must
not become a way to reach the station's own services or its LAN, unless the operator says
so for that URL.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]*@")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(ValueError):
    """The host resolves to an address the URL may not reach."""


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port is not None else host


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        return urlunsplit(parts._replace(netloc=_netloc(parts)))
    except ValueError:
        return redact(url)


def has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None


def redact(text: str) -> str:
    """``text`` with the user-info of every URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_public(host: str, port: int, allow_private: bool = False) -> list[Address]:
    """The addresses ``host`` resolves to; raises BlockedAddress when any is not public
    (unless ``allow_private``) or OSError when it does not resolve. Connect to one of the
    returned addresses, not to the name again: a second lookup could answer differently."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not allow_private:
        blocked = [str(a) for a in addresses if not is_public(a)]
        if blocked:
            raise BlockedAddress(
                f"{host} resolves to a private or local address ({', '.join(blocked)}); "
                "allow private addresses for this URL to use it"
            )
    return addresses
