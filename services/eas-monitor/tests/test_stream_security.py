"""Stream inputs: credentials never on ffmpeg's command line, in views or in errors; only
public addresses unless allowed; redirects checked; the format forced from Content-Type."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eas_monitor.httpstream import StreamOpenError, open_stream
from eas_monitor.inputs import StreamConfig
from eas_monitor.sources import SourceError, make_source
from eas_same import generate, write_wav
from servicekit.outbound import redact, strip_userinfo

from .conftest import RWT
from .test_sources import decode_all

SECRET = "s3cret-pw"


class _Server:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.seen: list[dict[str, str]] = []
        self.httpd.seen = self.seen  # type: ignore[attr-defined]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def wav_bytes(tmp_path: Path) -> bytes:
    write_wav(tmp_path / "a.wav", generate(RWT, 16000, attention=1.0), 16000)
    return (tmp_path / "a.wav").read_bytes()


@pytest.fixture
def servers(wav_bytes: bytes) -> Iterator[dict[str, Any]]:
    """``auth``: serves the WAV to user:s3cret-pw only; ``hop``: redirects to ``auth``;
    ``html``: a page, not audio."""
    made: dict[str, Any] = {}

    class Auth(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
            want = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
            if self.path == "/page":
                body = b"#EXTM3U\nfile:///etc/passwd\n"
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-mpegurl")
            elif self.headers.get("Authorization") != want:
                body = b"no"
                self.send_response(401)
            else:
                body = wav_bytes
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Hop(Auth):
        def do_GET(self) -> None:
            self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{made['auth'].port}/live")
            self.send_header("Content-Length", "0")
            self.end_headers()

    made["auth"] = _Server(Auth)
    made["hop"] = _Server(Hop)
    yield made
    for server in made.values():
        server.close()


def test_credentials_reach_the_server_but_not_ffmpegs_command_line(servers):
    url = f"http://user:{SECRET}@127.0.0.1:{servers['auth'].port}/live"
    source = make_source(
        StreamConfig(url=url, allow_private=True), ffmpeg="ffmpeg", stream_rate=22050, chunk_s=0.1
    )
    source.open()
    try:
        proc = source._proc  # type: ignore[attr-defined]
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert SECRET not in cmdline and "user" not in cmdline and "127.0.0.1" not in cmdline
        assert "-protocol_whitelist\0pipe" in cmdline and "-f\0wav\0-i\0pipe:0" in cmdline
        assert decode_all(source) == [RWT]
    finally:
        source.close()
    assert SECRET not in source.what  # type: ignore[attr-defined]


def test_private_addresses_are_refused_unless_allowed(servers):
    literal = StreamConfig(url=f"http://127.0.0.1:{servers['auth'].port}/live")
    assert "allow_private" in (literal.literal_address_problem() or "")
    with pytest.raises(SourceError, match="private or local"):
        make_source(literal, ffmpeg="ffmpeg", stream_rate=22050, chunk_s=0.1).open()
    # A name is checked when connecting: localhost is loopback.
    config = StreamConfig(url=f"http://user:{SECRET}@localhost:{servers['auth'].port}/live")
    source = make_source(config, ffmpeg="ffmpeg", stream_rate=22050, chunk_s=0.1)
    with pytest.raises(SourceError, match="private or local") as caught:
        source.open()
    assert SECRET not in str(caught.value)
    assert servers["auth"].seen == []


def test_redirects_do_not_carry_credentials_to_another_origin(servers):
    url = f"http://user:{SECRET}@127.0.0.1:{servers['hop'].port}/x"
    with pytest.raises(StreamOpenError, match="HTTP 401") as caught:
        open_stream(url, allow_private=True)
    assert SECRET not in str(caught.value)
    assert "Authorization" in servers["hop"].seen[0]
    assert "Authorization" not in servers["auth"].seen[0]
    # And a name that resolves to loopback is refused when the input does not allow it.
    with pytest.raises(StreamOpenError, match="private or local"):
        open_stream(f"http://127.0.0.1:{servers['hop'].port}/x".replace("127.0.0.1", "localhost"))


def test_playlists_and_other_content_types_are_refused(servers):
    with pytest.raises(StreamOpenError, match="not a supported audio stream"):
        open_stream(f"http://127.0.0.1:{servers['auth'].port}/page", allow_private=True)


def test_redaction_helpers():
    assert (
        strip_userinfo(f"https://u:{SECRET}@h.example:8000/a?b=1") == "https://h.example:8000/a?b=1"
    )
    assert strip_userinfo("https://h.example/a") == "https://h.example/a"
    text = f"ffmpeg: http://u:{SECRET}@h.example/x: 404; also rtmp://a@b/c"
    assert redact(text) == "ffmpeg: http://h.example/x: 404; also rtmp://b/c"


async def test_views_never_show_stream_credentials(client: httpx.AsyncClient, token):
    from servicekit.auth.permissions import Role

    from .conftest import auth

    url = f"https://user:{SECRET}@radio.example.org:8443/live.mp3"
    created = await client.post(
        "/api/eas-monitor/inputs",
        json={"name": "secret-stream", "config": {"kind": "stream", "url": url}},
    )
    assert created.status_code == 201, created.text
    assert SECRET not in created.text and "user@" not in created.text
    config = created.json()["config"]
    assert config["url"] == "https://radio.example.org:8443/live.mp3"
    assert config["credentials"] is True
    input_id = created.json()["id"]
    listed = await client.get("/api/eas-monitor/inputs", headers=auth(token(Role.VIEWER)))
    assert listed.status_code == 200 and SECRET not in listed.text
    # Sending the shown config back keeps the stored credentials (write-only)...
    patched = await client.patch(
        f"/api/eas-monitor/inputs/{input_id}",
        json={"config": {**config, "allow_private": False}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["credentials"] is True
    svc = client.app.state.monitor_service  # type: ignore[attr-defined]
    stored = (await svc.records())[0].config
    assert SECRET in str(stored.url) and stored.credentials is False
    # ...and another origin does not inherit them.
    # A literal private address is refused when saved (422), unless allowed.
    private = await client.post(
        "/api/eas-monitor/inputs",
        json={"name": "lan", "config": {"kind": "stream", "url": "http://192.168.1.9/a.mp3"}},
    )
    assert private.status_code == 422 and "allow_private" in private.text
    moved = await client.patch(
        f"/api/eas-monitor/inputs/{input_id}",
        json={"config": {"kind": "stream", "url": "https://other.example.org/live.mp3"}},
    )
    assert moved.json()["config"]["credentials"] is False


def test_monitor_status_never_carries_url_credentials():
    from eas_monitor.supervisor import InputRecord, Runtime

    config = StreamConfig(url=f"https://user:{SECRET}@radio.example.org/live")
    rt = Runtime(InputRecord(id=1, name="s", config=config, wanted_running=True))
    # E.g. a worker's stderr tail quoting the URL, as ffmpeg used to.
    rt.last_error = f"worker exited with code 1: https://user:{SECRET}@radio.example.org/live"
    status = rt.status()
    assert status.last_error is not None and SECRET not in status.last_error
    assert "https://radio.example.org/live" in status.last_error
