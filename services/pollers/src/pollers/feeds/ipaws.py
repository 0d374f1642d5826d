"""IPAWS-OPEN feed: ``GET {base}/recent/{YYYY-MM-DDTHH:MM:SSZ}?pin=...``, CAP 1.2 XML.

The answer is a wrapper element holding every alert posted since the timestamp. The window's
start (the cursor) lives in Redis so it survives restarts, and advances only after a poll
whose alerts all reached the bus: to the time the fetch started, minus a small overlap that
absorbs clock skew between the station and FEMA (the overlap's repeats are de-duplicated).

The PIN is a credential: it goes only into the request's query string, and every message
that could carry the URL is passed through `redact` first.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from eas_schemas.events import FeedKind
from pollers.cap_xml import CapRejected, parse_cap_batch
from pollers.feeds.base import Feed, FeedConfigError, FeedContext, FeedSpec, PollResult, spec_key
from pollers.http_fetch import (
    RetryPolicy,
    Sleeper,
    UrlGuard,
    fetch_with_retries,
    make_client,
    real_sleep,
)
from pollers.state_keys import ipaws_cursor_key
from servicekit.outbound import redact as redact_userinfo

log = logging.getLogger(__name__)

IPAWS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_PIN_ORIGINS = ("https://apps.fema.gov", "https://tdl.apps.fema.gov")


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def format_ipaws_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(IPAWS_TIME_FORMAT)


def parse_ipaws_time(text: str) -> datetime:
    return datetime.strptime(text, IPAWS_TIME_FORMAT).replace(tzinfo=UTC)


class IpawsCursor:
    """The window start, in Redis; remembered in memory too for the cycle after an outage."""

    def __init__(self, client: redis.Redis, namespace: str, initial_lookback_s: float) -> None:
        self.client = client
        self.key = ipaws_cursor_key(namespace)
        self.initial_lookback_s = initial_lookback_s
        self._last: datetime | None = None

    def load(self, now: datetime) -> datetime:
        try:
            stored = self.client.get(self.key)
        except redis.RedisError:
            if self._last is None:
                raise
            return self._last
        if stored:
            try:
                self._last = parse_ipaws_time(str(stored))
                return self._last
            except ValueError:
                log.warning("ignoring unreadable IPAWS cursor %r in %s", stored, self.key)
        return self._last or now - timedelta(seconds=self.initial_lookback_s)

    def save(self, when: datetime) -> None:
        self.client.set(self.key, format_ipaws_time(when))
        self._last = when


class IpawsFeed(Feed):
    kind = FeedKind.IPAWS

    @classmethod
    def specs(cls, ctx: FeedContext) -> list[FeedSpec]:
        s = ctx.settings
        if not s.ipaws_url:
            raise FeedConfigError("the IPAWS feed needs POLLERS_IPAWS_URL")
        ipaws: dict[str, Any] = {
            "base_url": s.ipaws_url,
            "namespace": s.bus_namespace,
            "interval_s": s.ipaws_interval_s,
            "overlap_s": s.ipaws_overlap_s,
            "initial_lookback_s": s.ipaws_initial_lookback_s,
            "pin_origins": tuple(s.ipaws_pin_origins),
            **ctx.http,
        }
        pin = s.pin()
        # The key only has to change with the PIN; it need not (and must not) hold it.
        pin_hash = hashlib.sha256(pin.encode()).hexdigest() if pin else None

        def make(sleep: Sleeper) -> Feed:
            return cls(**ipaws, pin=pin, redis_client=ctx.client, sleep=sleep)

        return [
            FeedSpec(cls.kind, "ipaws", spec_key(cls.kind, "ipaws", pin=pin_hash, **ipaws), make)
        ]

    def __init__(
        self,
        *,
        base_url: str,
        redis_client: redis.Redis,
        namespace: str = "",
        pin: str | None = None,
        interval_s: float = 60.0,
        overlap_s: float = 60.0,
        initial_lookback_s: float = 3600.0,
        max_response_bytes: int = 16 * 1_048_576,
        deadline_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        policy: RetryPolicy | None = None,
        sleep: Sleeper = real_sleep,
        rng: random.Random | None = None,
        client: httpx.Client | None = None,
        allow_private_hosts: tuple[str, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str = "ipaws",
        pin_origins: tuple[str, ...] = DEFAULT_PIN_ORIGINS,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise FeedConfigError(f"POLLERS_IPAWS_URL must be an http(s) URL, got {base_url!r}")
        if pin and _origin(base_url) not in {_origin(o) for o in pin_origins}:
            # The PIN rides in the query string: it goes to FEMA's hosts over TLS, nowhere
            # else, whatever URL the station document names.
            raise FeedConfigError(
                f"the IPAWS PIN is sent only to {', '.join(pin_origins)}; "
                f"{_origin(base_url)} is not one (POLLERS_IPAWS_PIN_ORIGINS)"
            )
        self.name = name
        self.interval_s = interval_s
        self.base_url = base_url.rstrip("/")
        self._pin = pin or None
        self.overlap = timedelta(seconds=overlap_s)
        self.cursor = IpawsCursor(redis_client, namespace, initial_lookback_s)
        self.max_response_bytes = max_response_bytes
        self.deadline_s = deadline_s
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = client or make_client(connect_timeout_s, read_timeout_s)
        self.guard = UrlGuard(allow_private_hosts)
        self.clock = clock

    def redact(self, text: str) -> str:
        text = redact_userinfo(text)
        return text.replace(self._pin, "***") if self._pin else text

    def poll(self) -> PollResult:
        result = PollResult()
        started = self.clock()
        try:
            since = self.cursor.load(started)
        except redis.RedisError as exc:
            result.errors.append(f"IPAWS cursor unavailable: {exc}")
            return result
        url = f"{self.base_url}/recent/{format_ipaws_time(since)}"
        outcome = fetch_with_retries(
            self.client,
            url,
            params={"pin": self._pin} if self._pin else None,
            headers={"Accept": "application/xml, text/xml;q=0.9"},
            max_bytes=self.max_response_bytes,
            deadline_s=self.deadline_s,
            policy=self.policy,
            sleep=self.sleep,
            rng=self.rng,
            guard=self.guard,
            redact=self.redact,
        )
        result.retry_after_s = outcome.retry_after_s
        response = outcome.result
        if response is None:
            error = outcome.error or "no answer"
            result.errors.append(self.redact(f"{error} after {outcome.attempts} attempt(s)"))
            return result
        if response.status != 200:
            result.errors.append(
                f"HTTP {response.status} from IPAWS recent/{since:%Y-%m-%dT%H:%M:%SZ}"
            )
            return result
        result.documents = 1
        try:
            batch = parse_cap_batch(response.body, max_bytes=self.max_response_bytes)
        except CapRejected as exc:
            # An unreadable window is not skipped: the cursor stays and it is fetched again.
            result.errors.append(f"IPAWS answer unusable: {exc.reason}")
            return result
        result.alerts = batch.alerts
        result.rejections = batch.rejections
        next_since = max(started - self.overlap, since)

        def commit() -> None:
            self.cursor.save(next_since)

        result.commit = commit
        return result

    def close(self) -> None:
        self.client.close()
