"""Bounded HTTP GETs with retries: exponential backoff with full jitter, Retry-After honoured.

Responses are streamed and cut off at a byte limit (after decompression, so a gzip bomb is
bounded too) and at an overall deadline (a read timeout alone lets a server trickle forever).

Redirects are followed here, not by httpx, so each hop is checked by a ``UrlGuard``: http(s)
only, and a host that resolves to a private or loopback address only when the operator listed
it (``POLLERS_ALLOW_PRIVATE_HOSTS``). Query parameters (the IPAWS PIN) go to the first URL
only, never to where it redirects.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from servicekit.outbound import BlockedAddress, check_public, strip_userinfo
from servicekit.outbound import redact as redact_userinfo

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO; IPAWS carries its PIN in the query string.
logging.getLogger("httpx").setLevel(logging.WARNING)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

Sleeper = Callable[[float], bool]
"""Sleeps up to the given seconds; returns True when the caller should stop instead."""


def real_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


MAX_REDIRECTS = 5


class ResponseTooLarge(Exception):
    pass


class BlockedUrl(Exception):
    """A URL (or a redirect) the poller may not fetch; retrying will not help."""


class UrlGuard:
    def __init__(self, allow_private_hosts: Iterable[str] = ()) -> None:
        self.allow_private_hosts = frozenset(h.strip().lower() for h in allow_private_hosts)

    def check(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise BlockedUrl(f"{strip_userinfo(str(url))}: only http(s) URLs are fetched")
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.host.lower()
        try:
            check_public(host, port, allow_private=host in self.allow_private_hosts)
        except BlockedAddress as exc:
            raise BlockedUrl(f"{exc} (POLLERS_ALLOW_PRIVATE_HOSTS)") from None
        except OSError:
            return  # httpx reports the failed lookup itself, as a retryable ConnectError


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    base_s: float = 1.0
    cap_s: float = 30.0
    # A Retry-After longer than this is not waited out within a cycle; the next cycle is
    # scheduled after it instead.
    max_retry_after_s: float = 120.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt)), attempt counted from 0."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


@dataclass
class FetchOutcome:
    result: HttpResult | None = None
    error: str | None = None
    attempts: int = 0
    waits: list[float] = field(default_factory=list)
    retry_after_s: float | None = None
    stopped: bool = False


def make_client(
    connect_timeout_s: float, read_timeout_s: float, user_agent: str | None = None
) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=connect_timeout_s
    )
    headers = {"User-Agent": user_agent} if user_agent else None
    # Redirects are followed by get_bounded, which checks every hop.
    return httpx.Client(timeout=timeout, headers=headers, follow_redirects=False)


def get_bounded(
    client: httpx.Client,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int,
    deadline_s: float,
    guard: UrlGuard | None = None,
) -> HttpResult:
    started = time.monotonic()
    target = httpx.URL(url, params=params) if params else httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        if guard is not None:
            guard.check(target)
        with client.stream("GET", target, headers=headers) as response:
            location = response.headers.get("location")
            if response.is_redirect and location:
                # Relative to where we are; httpx sends URL user-info to that hop alone.
                target = target.join(location)
                continue
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ResponseTooLarge(f"response over {max_bytes} bytes (Content-Length {length})")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise ResponseTooLarge(f"response over {max_bytes} bytes")
                if time.monotonic() - started > deadline_s:
                    raise httpx.ReadTimeout(f"response not complete within {deadline_s:.0f} s")
                chunks.append(chunk)
            return HttpResult(response.status_code, response.headers, b"".join(chunks), str(url))
    raise BlockedUrl(f"{strip_userinfo(url)}: more than {MAX_REDIRECTS} redirects")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def fetch_with_retries(
    client: httpx.Client,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int,
    deadline_s: float,
    policy: RetryPolicy,
    sleep: Sleeper,
    rng: random.Random,
    redact: Callable[[str], str] = redact_userinfo,
    guard: UrlGuard | None = None,
) -> FetchOutcome:
    """GET until a non-retryable answer, the attempts run out, or ``sleep`` says stop.

    Any 2xx/3xx/4xx answer that is not retryable is returned as a result; the caller decides
    what 304 or 404 mean. ``error`` is set only when no usable answer came back.
    """
    outcome = FetchOutcome()
    for attempt in range(policy.max_attempts):
        outcome.attempts = attempt + 1
        retry_after: float | None = None
        try:
            result = get_bounded(
                client,
                url,
                params=params,
                headers=headers,
                max_bytes=max_bytes,
                deadline_s=deadline_s,
                guard=guard,
            )
        except (ResponseTooLarge, BlockedUrl) as exc:
            outcome.error = redact(str(exc))
            return outcome  # the same document will be too large (or blocked) again
        except httpx.HTTPError as exc:
            outcome.error = redact(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        else:
            if result.status not in RETRYABLE_STATUS:
                outcome.result = result
                outcome.error = None
                outcome.retry_after_s = None
                return outcome
            retry_after = parse_retry_after(result.headers.get("retry-after"))
            outcome.error = f"HTTP {result.status}"
            if retry_after is not None:
                outcome.retry_after_s = retry_after
        if attempt + 1 >= policy.max_attempts:
            break
        if retry_after is not None and retry_after > policy.max_retry_after_s:
            break  # the server asked for longer than a cycle should block; see next_poll
        wait = retry_after if retry_after is not None else policy.backoff_s(attempt, rng)
        outcome.waits.append(wait)
        log.info("retrying %s in %.1f s after %s", redact(url), wait, outcome.error)
        if sleep(wait):
            outcome.stopped = True
            break
    return outcome
