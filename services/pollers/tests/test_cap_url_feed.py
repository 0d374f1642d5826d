from __future__ import annotations

import random
from pathlib import Path

import pytest

from pollers.feeds.base import FeedConfigError
from pollers.feeds.cap_url import CapUrlFeed
from pollers.http_fetch import RetryPolicy


def _atom(base: str) -> bytes:
    return f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>{base}/feed.atom</id>
  <entry><id>{base}/cap/tor</id><updated>2026-05-01T18:32:00Z</updated>
    <link rel="alternate" type="application/cap+xml" href="{base}/cap/tor"/></entry>
  <entry><id>{base}/cap/npt</id><updated>2026-10-01T18:20:00Z</updated>
    <link rel="alternate" href="{base}/cap/npt"/></entry>
  <entry><id>{base}/cap/heat</id><updated>2026-05-20T07:41:00Z</updated>
    <link rel="alternate" href="{base}/cap/heat"/></entry>
</feed>""".encode()


def _feed(url: str, sleeper) -> CapUrlFeed:
    return CapUrlFeed(
        url,
        sleep=sleeper,
        rng=random.Random(3),
        policy=RetryPolicy(max_attempts=2, base_s=0.1, cap_s=0.2),
        allow_private_hosts=("127.0.0.1",),
    )


def test_atom_links_are_followed_and_failed_entries_retried(
    fake_server, sleeper, cap_fixtures: Path, nws_fixtures: Path
) -> None:
    import json

    heat = json.loads((nws_fixtures / "active.json").read_text())["features"][1]
    docs = {
        "/feed.atom": (200, {"ETag": '"feed-1"'}, _atom(fake_server.url)),
        "/cap/tor": (200, {}, (cap_fixtures / "good" / "nws-tor-cuyahoga.xml").read_bytes()),
        "/cap/heat": (200, {"Content-Type": "application/geo+json"}, json.dumps(heat).encode()),
    }
    broken = {"/cap/npt"}

    def server(seen):
        if seen.path == "/feed.atom" and seen.headers.get("if-none-match") == '"feed-1"':
            return 304, {}, b""
        if seen.path in broken:
            return 500, {}, b""
        return docs.get(seen.path, (404, {}, b""))

    fake_server.responder = server
    feed = _feed(fake_server.url + "/feed.atom", sleeper)
    first = feed.poll()
    assert sorted(p.alert.infos[0].event for p in first.alerts) == [
        "Heat Advisory",
        "Tornado Warning",
    ]
    assert first.errors == [f"{fake_server.url}/cap/npt: HTTP 500"]
    assert first.commit is not None
    first.commit()

    broken.clear()
    docs["/cap/npt"] = (200, {}, (cap_fixtures / "good" / "national-npt.xml").read_bytes())
    fake_server.requests.clear()
    second = feed.poll()
    # The feed is fetched unconditionally (an entry failed) and only the failed entry again.
    assert [r.path for r in fake_server.requests] == ["/feed.atom", "/cap/npt"]
    assert "if-none-match" not in fake_server.requests[0].headers
    assert [p.alert.identifier for p in second.alerts] == ["NPT-2026-10-01-1420"]
    assert second.commit is not None
    second.commit()

    fake_server.requests.clear()
    third = feed.poll()
    assert third.not_modified and [r.path for r in fake_server.requests] == ["/feed.atom"]


def test_single_cap_document_url(fake_server, sleeper, cap_fixtures: Path) -> None:
    body = (cap_fixtures / "good" / "hazmat-circle.xml").read_bytes()
    fake_server.responder = lambda seen: (200, {}, body)
    result = _feed(fake_server.url + "/alert.xml", sleeper).poll()
    assert [p.alert.identifier for p in result.alerts] == ["CUYCO-HMW-2026-0815-01"]
    assert fake_server.requests[0].headers["accept"].startswith("application/atom+xml")


def test_hostile_document_url_is_rejected(fake_server, sleeper, cap_fixtures: Path) -> None:
    body = (cap_fixtures / "bad" / "xxe-etc-passwd.xml").read_bytes()
    fake_server.responder = lambda seen: (200, {}, body)
    result = _feed(fake_server.url + "/x.xml", sleeper).poll()
    assert result.alerts == [] and result.errors == []
    assert result.rejections == [
        f"{fake_server.url}/x.xml: XML external entity 'xxe' is forbidden (file:///etc/passwd)"
    ]


def test_only_http_urls() -> None:
    with pytest.raises(FeedConfigError):
        CapUrlFeed("file:///etc/passwd")
