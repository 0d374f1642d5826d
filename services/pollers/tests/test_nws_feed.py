"""The NWS API feed against a fake API on loopback: User-Agent, conditional requests, 429/503."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pollers.feeds.base import FeedConfigError
from pollers.feeds.nws_api import NwsApiFeed
from pollers.http_fetch import RetryPolicy, parse_retry_after

CONTACT = "ops@station.example"


def _feed(base: str, sleeper, **kwargs) -> NwsApiFeed:
    return NwsApiFeed(
        contact=CONTACT,
        zones=kwargs.pop("zones", ["OHZ014", "ohc035"]),
        areas=kwargs.pop("areas", []),
        base_url=base,
        sleep=sleeper,
        rng=random.Random(7),
        policy=kwargs.pop("policy", RetryPolicy(max_attempts=3, base_s=1.0, cap_s=8.0)),
        allow_private_hosts=("127.0.0.1",),
        **kwargs,
    )


@pytest.fixture
def active(nws_fixtures: Path) -> bytes:
    return (nws_fixtures / "active.json").read_bytes()


def test_refuses_to_start_without_contact() -> None:
    with pytest.raises(FeedConfigError, match="POLLERS_NWS_CONTACT"):
        NwsApiFeed(contact="  ", zones=["OHZ014"])
    with pytest.raises(FeedConfigError, match="POLLERS_NWS_ZONES"):
        NwsApiFeed(contact=CONTACT)


def test_request_shape_user_agent_and_alerts(fake_server, sleeper, active) -> None:
    def api(seen):
        if CONTACT not in seen.headers.get("user-agent", ""):
            return 403, {}, b'{"title": "Forbidden: User-Agent required"}'
        return 200, {"Content-Type": "application/geo+json"}, active

    fake_server.responder = api
    result = _feed(fake_server.url, sleeper).poll()
    assert result.errors == [] and result.rejections == []
    assert result.documents == 1 and len(result.alerts) == 3 and not result.not_modified
    (req,) = fake_server.requests
    assert req.path == "/alerts/active" and req.query == {"zone": ["OHZ014,OHC035"]}
    assert req.headers["accept"] == "application/geo+json"
    assert req.headers["user-agent"].startswith("eas-station-pollers/")
    assert sleeper.waits == []


def test_zones_and_areas_are_separate_requests(fake_server, sleeper, active) -> None:
    fake_server.responder = lambda seen: (200, {}, active)
    result = _feed(fake_server.url, sleeper, zones=["OHZ014"], areas=["OH", "le"]).poll()
    assert [r.query for r in fake_server.requests] == [{"zone": ["OHZ014"]}, {"area": ["OH,LE"]}]
    assert result.documents == 2 and len(result.alerts) == 6  # the cycle de-duplicates


def test_conditional_requests_after_commit(fake_server, sleeper, active) -> None:
    etag, modified = '"v1-abc"', "Wed, 20 May 2026 22:20:30 GMT"

    def api(seen):
        if seen.headers.get("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Last-Modified": modified}, active

    fake_server.responder = api
    feed = _feed(fake_server.url, sleeper)
    first = feed.poll()
    # Not committed (as after a failed publish): the next request must not be conditional,
    # or a 304 would hide alerts that never reached the bus.
    again = feed.poll()
    assert "if-none-match" not in fake_server.requests[1].headers
    assert again.documents == 1 and len(again.alerts) == 3
    assert first.commit is not None and again.commit is not None
    again.commit()
    third = feed.poll()
    req = fake_server.requests[2]
    assert req.headers["if-none-match"] == etag and req.headers["if-modified-since"] == modified
    assert third.not_modified and third.documents == 0 and third.alerts == [] and not third.errors


def test_429_retry_after_then_success(fake_server, sleeper, active) -> None:
    fake_server.script = [(429, {"Retry-After": "7"}, b"slow down")]
    fake_server.responder = lambda seen: (200, {}, active)
    result = _feed(fake_server.url, sleeper).poll()
    assert sleeper.waits == [7.0]
    assert result.errors == [] and len(result.alerts) == 3 and result.retry_after_s is None
    assert len(fake_server.requests) == 2


def test_503_backs_off_with_full_jitter_then_gives_up(fake_server, sleeper) -> None:
    fake_server.responder = lambda seen: (503, {}, b"busy")
    policy = RetryPolicy(max_attempts=4, base_s=1.0, cap_s=3.0)
    result = _feed(fake_server.url, sleeper, policy=policy).poll()
    assert len(fake_server.requests) == 4
    assert len(sleeper.waits) == 3
    for attempt, wait in enumerate(sleeper.waits):
        assert 0.0 <= wait <= min(3.0, 1.0 * 2**attempt)
    assert result.errors == ["zone=OHZ014%2COHC035: HTTP 503 after 4 attempt(s)"]
    assert result.alerts == [] and not result.not_modified


def test_503_then_success(fake_server, sleeper, active) -> None:
    fake_server.script = [(503, {}, b""), (503, {}, b"")]
    fake_server.responder = lambda seen: (200, {}, active)
    result = _feed(fake_server.url, sleeper).poll()
    assert len(sleeper.waits) == 2 and result.errors == [] and len(result.alerts) == 3


def test_long_retry_after_is_not_waited_within_a_cycle(fake_server, sleeper) -> None:
    fake_server.responder = lambda seen: (429, {"Retry-After": "900"}, b"")
    result = _feed(fake_server.url, sleeper).poll()
    assert sleeper.waits == [] and len(fake_server.requests) == 1
    assert result.retry_after_s == 900.0 and result.errors


def test_client_error_is_not_retried(fake_server, sleeper) -> None:
    fake_server.responder = lambda seen: (400, {}, b'{"title": "Bad zone"}')
    result = _feed(fake_server.url, sleeper).poll()
    assert len(fake_server.requests) == 1 and result.errors == ["zone=OHZ014%2COHC035: HTTP 400"]


def test_response_size_is_bounded(fake_server, sleeper, active) -> None:
    fake_server.responder = lambda seen: (200, {}, active)
    result = _feed(fake_server.url, sleeper, max_response_bytes=1000).poll()
    assert len(fake_server.requests) == 1  # not retried: it will be too big again
    assert result.errors and "response over 1000 bytes" in result.errors[0]


def test_broken_collection_is_an_error_and_keeps_no_etag(fake_server, sleeper) -> None:
    fake_server.responder = lambda seen: (200, {"ETag": '"x"'}, b"<html>maintenance</html>")
    feed = _feed(fake_server.url, sleeper)
    result = feed.poll()
    assert result.errors and "malformed JSON" in result.errors[0]
    assert result.commit is not None
    result.commit()
    feed.poll()
    assert "if-none-match" not in fake_server.requests[1].headers


def test_connection_refused_is_an_error(sleeper) -> None:
    result = _feed("http://127.0.0.1:1", sleeper).poll()
    assert result.errors and "ConnectError" in result.errors[0] and len(sleeper.waits) == 2


def test_parse_retry_after() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 5, 20, 22, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 20 May 2026 22:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
