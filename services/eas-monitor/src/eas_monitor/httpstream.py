"""Opening an HTTP(S) audio stream ourselves, so ffmpeg never sees the URL.

Why not ``ffmpeg -i URL``: the URL (with its ``user:password@``) would be on ffmpeg's command
line, readable by every local user in ``ps``; ffmpeg 5.1 takes HTTP credentials only in the
URL or in ``-headers``, which is on the command line too. And ffmpeg left to itself follows
redirects and playlist entries to any host and any protocol it knows. So the worker connects
(to an address it checked: public unless the input allows private ones, pinned for the
connection so a second DNS answer cannot differ), sends Basic credentials only to the
configured origin, follows at most a few http(s) redirects (each target checked again), and
hands ffmpeg the body on a pipe with the format forced from the Content-Type and
``-protocol_whitelist pipe``: ffmpeg can open nothing else.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

from servicekit.outbound import BlockedAddress, check_public, redact, strip_userinfo

MAX_REDIRECTS = 5

# Content-Type -> ffmpeg demuxer. What a station's stream is in practice; anything else is
# refused with the list, instead of letting ffmpeg probe (and maybe parse a playlist).
STREAM_FORMATS: dict[str, str] = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/aac": "aac",
    "audio/aacp": "aac",
    "audio/x-aac": "aac",
    "application/ogg": "ogg",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
}


class StreamOpenError(Exception):
    """The stream could not be opened; the message never holds credentials."""


@dataclass
class OpenStream:
    response: http.client.HTTPResponse
    connection: http.client.HTTPConnection
    demuxer: str

    def close(self) -> None:
        self.connection.close()


class _Pinned(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the name, though the socket went to the address.
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def open_stream(url: str, *, allow_private: bool = False, timeout_s: float = 15.0) -> OpenStream:
    """GET ``url`` and return the open response and its ffmpeg demuxer."""
    first = _origin(url)
    parts = urlsplit(url)
    authorization: str | None = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port = _origin(current)
        shown = strip_userinfo(current)
        if scheme not in ("http", "https") or not host:
            raise StreamOpenError(f"{shown}: only http and https streams are allowed")
        try:
            address = str(check_public(host, port, allow_private)[0])
        except BlockedAddress as exc:
            raise StreamOpenError(str(exc)) from None
        except OSError as exc:
            raise StreamOpenError(f"{shown}: cannot resolve {host}: {exc}") from None
        conn_type = _PinnedTLS if scheme == "https" else _Pinned
        conn = conn_type(host, port, address, timeout_s)
        target = urlsplit(current)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        headers = {"User-Agent": "eas-station/eas-monitor", "Icy-MetaData": "0"}
        if authorization is not None and (scheme, host, port) == first:
            headers["Authorization"] = authorization
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise StreamOpenError(f"{shown}: {redact(str(exc)) or type(exc).__name__}") from None
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location")
            conn.close()
            if not location:
                raise StreamOpenError(f"{shown}: redirect without a Location")
            current = urljoin(current, location)
            continue
        if response.status != 200:
            conn.close()
            raise StreamOpenError(f"{shown}: HTTP {response.status} {response.reason}")
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        demuxer = STREAM_FORMATS.get(kind)
        if demuxer is None:
            conn.close()
            raise StreamOpenError(
                f"{shown}: Content-Type {kind or '(none)'!r} is not a supported audio stream "
                f"({', '.join(sorted(set(STREAM_FORMATS)))})"
            )
        return OpenStream(response, conn, demuxer)
    raise StreamOpenError(f"{strip_userinfo(url)}: more than {MAX_REDIRECTS} redirects")


def ffmpeg_pipe_args(ffmpeg: str, demuxer: str, rate: int) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-protocol_whitelist", "pipe", "-f", demuxer, "-i", "pipe:0",
        "-vn", "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1",
    ]  # fmt: skip
