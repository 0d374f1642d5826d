"""One feed's poll cycle (poll, publish, commit, report) and its loop.

A feed failing, crashing or timing out is contained here: it produces an unhealthy
``poller.status`` and a log line, never an exception into the runner, so the other feeds go on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from eas_schemas.events import PollerStatus
from pollers.feeds.base import Feed, PollResult
from pollers.http_fetch import RetryPolicy
from pollers.publisher import AlertPublisher

log = logging.getLogger(__name__)

MAX_REASONS_IN_STATUS = 50

# Bus outages are retried sooner than the poll interval (alerts are waiting), with backoff.
BUS_RETRY = RetryPolicy(max_attempts=1, base_s=1.0, cap_s=30.0)


@dataclass
class FeedTotals:
    cycles: int = 0
    published: int = 0
    rejected: int = 0
    errors: int = 0
    last: PollerStatus | None = None
    last_ok_at: datetime | None = None
    bus_failures_in_a_row: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class FeedLoop:
    def __init__(
        self,
        feed: Feed,
        publisher: AlertPublisher,
        *,
        rng: random.Random | None = None,
        bus_retry: RetryPolicy = BUS_RETRY,
    ) -> None:
        self.feed = feed
        self.publisher = publisher
        self.rng = rng or random.Random()
        self.bus_retry = bus_retry
        self.totals = FeedTotals()

    def run_cycle(self) -> PollerStatus:
        feed = self.feed
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        try:
            result = feed.poll()
        except Exception as exc:
            log.exception("feed %s: poll crashed", feed.name)
            result = PollResult(errors=[feed.redact(f"poll crashed: {type(exc).__name__}: {exc}")])
        errors = [feed.redact(e) for e in result.errors]
        bus_failed = False
        try:
            result.new = self.publisher.publish_new(feed.name, feed.kind, result.alerts)
            if result.commit is not None:
                result.commit()
        except (redis.RedisError, OSError) as exc:
            bus_failed = True
            errors.append(f"bus unavailable, {len(result.alerts)} alert(s) kept for retry: {exc}")
        for reason in result.rejections:
            log.warning("feed %s: rejected document: %s", feed.name, feed.redact(reason))
        for error in errors:
            log.warning("feed %s: %s", feed.name, error)
        next_poll_s = self._next_poll_s(result, bus_failed)
        rejected = [feed.redact(r) for r in result.rejections]
        if len(rejected) > MAX_REASONS_IN_STATUS:
            extra = len(rejected) - MAX_REASONS_IN_STATUS
            rejected = [*rejected[:MAX_REASONS_IN_STATUS], f"... and {extra} more rejections"]
        status = PollerStatus(
            feed=feed.name,
            feed_kind=feed.kind,
            started_at=started_at,
            duration_s=max(0.0, time.monotonic() - t0),
            fetched=result.documents,
            new=result.new,
            not_modified=result.not_modified,
            errors=len(errors),
            rejected=rejected,
            next_poll_s=next_poll_s,
            ok=not errors,
        )
        self._count(status, len(result.rejections))
        if result.new:
            log.info("feed %s: published %d new alert(s)", feed.name, result.new)
        try:
            self.publisher.publish_status(status)
        except (redis.RedisError, OSError) as exc:
            log.warning("feed %s: poller.status not sent: %s", feed.name, exc)
        return status

    def _next_poll_s(self, result: PollResult, bus_failed: bool) -> float:
        interval = self.feed.interval_s
        if bus_failed:
            self.totals.bus_failures_in_a_row += 1
            attempt = self.totals.bus_failures_in_a_row - 1
            return min(interval, max(0.5, self.bus_retry.backoff_s(attempt, self.rng)))
        self.totals.bus_failures_in_a_row = 0
        if result.retry_after_s is not None:
            return max(interval, result.retry_after_s)
        return interval

    def _count(self, status: PollerStatus, rejected: int) -> None:
        totals = self.totals
        totals.cycles += 1
        totals.published += status.new
        totals.rejected += rejected
        totals.errors += status.errors
        totals.last = status
        if status.ok:
            totals.last_ok_at = status.started_at

    def run_forever(self, stop: threading.Event) -> None:
        log.info("feed %s: polling every %.0f s", self.feed.name, self.feed.interval_s)
        while not stop.is_set():
            try:
                status = self.run_cycle()
                delay = status.next_poll_s
            except Exception:
                # run_cycle contains feed failures; this guards against bugs in it so one
                # feed's thread never dies silently.
                log.exception("feed %s: cycle failed", self.feed.name)
                delay = self.feed.interval_s
            if stop.wait(delay):
                break
        self.feed.close()
