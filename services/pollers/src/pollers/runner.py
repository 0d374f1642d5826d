"""Builds the enabled feeds from settings and runs them: once, or each in its own thread until
stopped. Feeds share one Redis client and one publisher and nothing else."""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from eas_schemas.events import FeedKind, PollerStatus
from pollers import __version__
from pollers.cycle import FeedLoop
from pollers.feeds.base import Feed, FeedConfigError
from pollers.feeds.cap_folder import CapFolderFeed
from pollers.feeds.cap_url import CapUrlFeed
from pollers.feeds.ipaws import IpawsFeed
from pollers.feeds.nws_api import NwsApiFeed, nws_user_agent
from pollers.file_fingerprints import FileFingerprints
from pollers.health import HealthServer
from pollers.http_fetch import RetryPolicy, Sleeper
from pollers.publisher import AlertPublisher
from pollers.seen_alerts import SeenAlerts
from pollers.settings import PollersSettings
from servicekit.bus import SyncBus
from servicekit.heartbeat import SyncHeartbeat

log = logging.getLogger(__name__)

SERVICE = "pollers"


def connect_redis(settings: PollersSettings) -> redis.Redis:
    # Socket timeouts: a Redis that hangs must fail a cycle, not freeze a feed's thread.
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=10,
    )


def build_feeds(settings: PollersSettings, client: redis.Redis, sleep: Sleeper) -> list[Feed]:
    """Every enabled feed; raises `FeedConfigError` naming what is missing."""
    policy = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_s=settings.retry_base_s,
        cap_s=settings.retry_cap_s,
        max_retry_after_s=settings.retry_after_max_s,
    )
    http: dict[str, Any] = {
        "deadline_s": settings.http_deadline_s,
        "connect_timeout_s": settings.http_connect_timeout_s,
        "read_timeout_s": settings.http_read_timeout_s,
        "policy": policy,
        "sleep": sleep,
        "max_response_bytes": settings.max_response_bytes,
    }
    ns = settings.bus_namespace
    feeds: list[Feed] = []
    enabled = settings.enabled_feeds()
    if not enabled:
        raise FeedConfigError(
            "no feed configured: set POLLERS_NWS_ZONES/POLLERS_NWS_AREAS, POLLERS_IPAWS_URL, "
            "POLLERS_CAP_FOLDER or POLLERS_CAP_URLS"
        )
    for kind in enabled:
        if kind is FeedKind.NWS:
            feeds.append(
                NwsApiFeed(
                    contact=settings.nws_contact,
                    zones=settings.nws_zones,
                    areas=settings.nws_areas,
                    base_url=settings.nws_base_url,
                    interval_s=settings.nws_interval_s,
                    **http,
                )
            )
        elif kind is FeedKind.IPAWS:
            if not settings.ipaws_url:
                raise FeedConfigError("the IPAWS feed needs POLLERS_IPAWS_URL")
            feeds.append(
                IpawsFeed(
                    base_url=settings.ipaws_url,
                    pin=settings.pin(),
                    redis_client=client,
                    namespace=ns,
                    interval_s=settings.ipaws_interval_s,
                    overlap_s=settings.ipaws_overlap_s,
                    initial_lookback_s=settings.ipaws_initial_lookback_s,
                    **http,
                )
            )
        elif kind is FeedKind.CAP_FOLDER:
            if not settings.cap_folder:
                raise FeedConfigError("the CAP folder feed needs POLLERS_CAP_FOLDER")
            for folder in settings.cap_folder:
                feeds.append(
                    CapFolderFeed(
                        folder,
                        FileFingerprints(client, folder, ns, settings.seen_ttl_s),
                        recursive=settings.cap_folder_recursive,
                        interval_s=settings.cap_folder_interval_s,
                        max_document_bytes=settings.max_document_bytes,
                    )
                )
        elif kind is FeedKind.CAP_URL:
            if not settings.cap_urls:
                raise FeedConfigError("the CAP URL feed needs POLLERS_CAP_URLS")
            agent = nws_user_agent(settings.nws_contact or "no contact configured")
            for url in settings.cap_urls:
                feeds.append(
                    CapUrlFeed(
                        url,
                        interval_s=settings.cap_url_interval_s,
                        max_document_bytes=settings.max_document_bytes,
                        max_entries=settings.cap_url_max_entries,
                        user_agent=agent,
                        **http,
                    )
                )
    return feeds


class Pollers:
    """The pollers process: feeds, their loops, heartbeat and the optional health server."""

    def __init__(
        self,
        settings: PollersSettings,
        *,
        redis_client: redis.Redis | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.redis = redis_client or connect_redis(settings)
        self.bus = SyncBus(self.redis, settings.bus_namespace)
        self.source = f"{SERVICE}/{settings.instance}"
        seen = SeenAlerts(self.redis, settings.bus_namespace, settings.seen_ttl_s)
        self.publisher = AlertPublisher(self.bus, seen, self.source)
        # Retry waits are waits on the stop event, so SIGTERM ends a backoff at once.
        self.feeds = build_feeds(settings, self.redis, sleep=self.stop.wait)
        self.loops = [FeedLoop(feed, self.publisher, rng=random.Random()) for feed in self.feeds]

    def once(self) -> list[PollerStatus]:
        """Poll every feed once (in parallel, so a slow feed delays no other) and close."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.loops))) as pool:
            statuses = list(pool.map(lambda loop: loop.run_cycle(), self.loops))
        self.close()
        return statuses

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()

    def figures(self) -> dict[str, float]:
        totals = [loop.totals for loop in self.loops]
        return {
            "feeds": float(len(totals)),
            "feeds_failing": float(sum(1 for t in totals if t.last and not t.last.ok)),
            "published_total": float(sum(t.published for t in totals)),
            "rejected_total": float(sum(t.rejected for t in totals)),
            "errors_total": float(sum(t.errors for t in totals)),
        }

    def ready(self) -> bool:
        return all(t.last is None or t.last.ok for t in (loop.totals for loop in self.loops))

    def feed_report(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        for loop in self.loops:
            last = loop.totals.last
            report[loop.feed.name] = {
                "kind": loop.feed.kind.value,
                "cycles": loop.totals.cycles,
                "published": loop.totals.published,
                "rejected": loop.totals.rejected,
                "last_ok_at": loop.totals.last_ok_at,
                "last": last.model_dump(mode="json") if last else None,
            }
        return report

    def _healthz(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok", "service": SERVICE, "feeds": self.feed_report()}

    def _readyz(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, str] = {}
        try:
            self.redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {exc}"
        checks["feeds"] = "ok" if self.ready() else "failing"
        ok = all(v == "ok" for v in checks.values())
        return ok, {"ready": ok, "checks": checks}

    def run(self) -> None:
        """Every feed in its own thread until `stop` is set."""
        health: HealthServer | None = None
        if self.settings.health_port:
            health = HealthServer(
                self.settings.health_host, self.settings.health_port, self._healthz, self._readyz
            )
            health.start()
        threads = [
            threading.Thread(
                target=loop.run_forever, args=(self.stop,), name=f"feed-{loop.feed.name}"
            )
            for loop in self.loops
        ]
        for thread in threads:
            thread.start()
        heartbeat = SyncHeartbeat(
            self.bus,
            SERVICE,
            self.settings.instance,
            __version__,
            self.settings.heartbeat_interval_s,
        )
        log.info("pollers running %d feed(s): %s", len(self.feeds), [f.name for f in self.feeds])
        try:
            while True:
                heartbeat.maybe_beat(self.figures(), ready=self.ready())
                if self.stop.wait(min(1.0, self.settings.heartbeat_interval_s)):
                    break
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=self.settings.http_deadline_s + 5)
            if health is not None:
                health.stop()
            log.info("pollers stopped")
