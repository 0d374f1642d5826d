"""Issue 12: feeds fetch only public hosts (unless listed), check every redirect and ATOM
link, never publish URL credentials, and send the IPAWS PIN only to its allow-listed origin."""

from __future__ import annotations

import random

import pytest

from pollers.feeds.base import FeedConfigError
from pollers.feeds.cap_url import CapUrlFeed
from pollers.feeds.ipaws import IpawsFeed
from pollers.http_fetch import RetryPolicy

POLICY = RetryPolicy(max_attempts=1)


def _cap_feed(url: str, sleeper, allow: tuple[str, ...] = ()) -> CapUrlFeed:
    return CapUrlFeed(
        url, sleep=sleeper, rng=random.Random(1), policy=POLICY, allow_private_hosts=allow
    )


def test_a_private_feed_host_is_refused_unless_listed(fake_server, sleeper) -> None:
    fake_server.responder = lambda seen: (200, {}, b"<alert/>")
    result = _cap_feed(fake_server.url + "/feed", sleeper).poll()
    assert result.errors and "private or local" in result.errors[0]
    assert fake_server.requests == []
    listed = _cap_feed(fake_server.url + "/feed", sleeper, ("127.0.0.1",)).poll()
    assert fake_server.requests and not any("private" in e for e in listed.errors)


def test_a_redirect_to_an_unlisted_private_host_is_not_followed(fake_server, sleeper) -> None:
    port = fake_server.url.rsplit(":", 1)[1]
    # 127.0.0.1 is listed; "localhost" (the same server, another name) is not.
    fake_server.responder = lambda seen: (
        (302, {"Location": f"http://localhost:{port}/inside"}, b"")
        if seen.path == "/feed"
        else (200, {}, b"<alert/>")
    )
    result = _cap_feed(fake_server.url + "/feed", sleeper, ("127.0.0.1",)).poll()
    assert [r.path for r in fake_server.requests] == ["/feed"]
    assert result.errors and "localhost resolves to a private" in result.errors[0]


def test_atom_links_to_unlisted_private_hosts_are_not_fetched(fake_server, sleeper) -> None:
    port = fake_server.url.rsplit(":", 1)[1]
    atom = f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id>
  <entry><id>e1</id><updated>2026-05-01T18:32:00Z</updated>
    <link rel="alternate" href="http://localhost:{port}/cap/1"/></entry>
</feed>""".encode()
    fake_server.responder = lambda seen: (200, {}, atom)
    result = _cap_feed(fake_server.url + "/feed", sleeper, ("127.0.0.1",)).poll()
    assert [r.path for r in fake_server.requests] == ["/feed"]
    assert any("private or local" in e for e in result.errors)


def test_feed_url_credentials_stay_out_of_names_and_errors(fake_server, sleeper) -> None:
    host = fake_server.url.split("://", 1)[1]
    fake_server.responder = lambda seen: (500, {}, b"")
    feed = _cap_feed(f"http://user:hunter2-pw@{host}/feed", sleeper, ("127.0.0.1",))
    result = feed.poll()
    assert fake_server.requests[0].headers["authorization"].startswith("Basic ")
    published = " ".join([feed.name, *result.errors, *(feed.redact(e) for e in result.errors)])
    assert "hunter2-pw" not in published and "user@" not in published
    assert feed.name == f"cap-url:http://{host}/feed"


def test_the_ipaws_pin_goes_only_to_an_allow_listed_origin(sync_redis_client) -> None:
    for url in ("http://apps.fema.gov/rest/eas", "https://evil.example/rest/eas"):
        with pytest.raises(FeedConfigError, match="PIN is sent only to"):
            IpawsFeed(base_url=url, redis_client=sync_redis_client, pin="1234567")
    IpawsFeed(
        base_url="https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest/eas",
        redis_client=sync_redis_client,
        pin="1234567",
    ).close()
    # Without a PIN, any feed URL is fine (a mirror or a test server).
    IpawsFeed(base_url="https://mirror.example/rest/eas", redis_client=sync_redis_client).close()


def test_the_ipaws_pin_does_not_follow_a_redirect(
    fake_server, sleeper, sync_redis_client, bus_namespace
) -> None:
    fake_server.responder = lambda seen: (
        (302, {"Location": "/elsewhere"}, b"")
        if seen.path.startswith("/rest")
        else (200, {}, b"<alerts/>")
    )
    feed = IpawsFeed(
        base_url=fake_server.url + "/rest/eas",
        redis_client=sync_redis_client,
        namespace=bus_namespace,
        pin="7654321",
        policy=POLICY,
        sleep=sleeper,
        allow_private_hosts=("127.0.0.1",),
        pin_origins=(fake_server.url,),
    )
    feed.poll()
    first, second = fake_server.requests
    assert first.query == {"pin": ["7654321"]} and second.path == "/elsewhere"
    assert second.query == {}
