"""Builds the enabled feeds from settings and runs them: once, or each in its own thread until
stopped. Feeds share one Redis client and one publisher and nothing else.

While running, the station's settings (station-api's document, followed through
``settings.changed``) may change the feed set at any time: the runner's own loop rebuilds it
between cycles. A feed whose settings did not change keeps running (with its state); a feed
removed finishes its current cycle and stops; a feed added starts at once; a feed whose
settings changed is replaced once its old loop has ended (never two loops of one feed).
With no feed configured anywhere, ``run`` idles and waits for settings instead of exiting."""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis

from eas_schemas.events import FeedKind, PollerStatus
from pollers import __version__
from pollers.cycle import FeedLoop
from pollers.feeds.base import Feed, FeedConfigError, FeedContext, FeedSpec
from pollers.feeds.cap_folder import CapFolderFeed
from pollers.feeds.cap_url import CapUrlFeed
from pollers.feeds.ipaws import IpawsFeed
from pollers.feeds.nws_api import NwsApiFeed
from pollers.health import HealthServer
from pollers.http_fetch import RetryPolicy, Sleeper
from pollers.publisher import AlertPublisher
from pollers.seen_alerts import SeenAlerts
from pollers.settings import PollersSettings
from pollers.station import effective_settings
from servicekit.bus import SyncBus
from servicekit.heartbeat import SyncHeartbeat
from servicekit.settings_follower import SettingsVersion, SyncSettingsFollower

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


NO_FEED = (
    "no feed configured: set POLLERS_NWS_ZONES/POLLERS_NWS_AREAS, POLLERS_IPAWS_URL, "
    "POLLERS_CAP_FOLDER or POLLERS_CAP_URLS"
)


# The feed types, each building its feeds from the settings (``Feed.specs``).
FEED_TYPES: dict[FeedKind, type[Feed]] = {
    FeedKind.NWS: NwsApiFeed,
    FeedKind.IPAWS: IpawsFeed,
    FeedKind.CAP_FOLDER: CapFolderFeed,
    FeedKind.CAP_URL: CapUrlFeed,
}


def feed_specs(
    settings: PollersSettings,
    client: redis.Redis,
    kinds: list[FeedKind] | None = None,
) -> list[FeedSpec]:
    """Every feed of ``kinds`` (default: the settings' enabled feeds); raises `FeedConfigError`
    naming what is missing. Nothing is built (no HTTP client opened) until ``make``."""
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
        "max_response_bytes": settings.max_response_bytes,
        "allow_private_hosts": tuple(settings.allow_private_hosts),
    }
    enabled = settings.enabled_feeds() if kinds is None else kinds
    if not enabled:
        raise FeedConfigError(NO_FEED)
    ctx = FeedContext(settings, client, http)
    return [spec for kind in enabled for spec in FEED_TYPES[kind].specs(ctx)]


def build_feeds(settings: PollersSettings, client: redis.Redis, sleep: Sleeper) -> list[Feed]:
    """Every enabled feed; raises `FeedConfigError` naming what is missing."""
    return [spec.make(sleep) for spec in feed_specs(settings, client)]


@dataclass
class _Slot:
    """One feed with its loop, its own stop event (a removed feed stops alone) and thread."""

    spec: FeedSpec
    loop: FeedLoop
    stop: threading.Event
    thread: threading.Thread | None = None

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Pollers:
    """The pollers process: feeds, their loops, heartbeat and the optional health server."""

    def __init__(
        self,
        settings: PollersSettings,
        *,
        redis_client: redis.Redis | None = None,
        stop: threading.Event | None = None,
        idle_ok: bool = False,
    ) -> None:
        """Build the feeds of the environment and the station document (if any).

        Raises `FeedConfigError` for a feed that cannot run as configured, and, unless
        ``idle_ok`` (``pollers run``), when no feed is configured at all. Once running, a
        change that leaves no feed makes the runner idle, never exit.
        """
        self.settings = settings
        self.stop = stop or threading.Event()
        self.redis = redis_client or connect_redis(settings)
        self.bus = SyncBus(self.redis, settings.bus_namespace)
        self.source = f"{SERVICE}/{settings.instance}"
        seen = SeenAlerts(self.redis, settings.bus_namespace, settings.seen_ttl_s)
        self.publisher = AlertPublisher(self.bus, seen, self.source)
        self.idle_ok = idle_ok
        self.station: SettingsVersion | None = None
        self.settings_version = 0  # the station settings version the running feeds reflect
        self.config_error: str | None = None
        self._slots: dict[tuple[Any, ...], _Slot] = {}
        self._retiring: list[_Slot] = []
        self._waiting: list[_Slot] = []
        self._running = False
        self._lock = threading.Lock()
        self._pending: SettingsVersion | None = None
        self._wake = threading.Event()
        self.follower: SyncSettingsFollower | None = None
        if settings.follow_station_settings:
            self.follower = SyncSettingsFollower(
                self.redis,
                settings.bus_namespace,
                self._on_settings,
                name=SERVICE,
                block_ms=min(1000, int(settings.redis_timeout_s * 500)),
            )
            self.follower.sync()  # the current document, if Redis answers; never raises
        self._reconcile(initial=True)

    # ---- feed set ----------------------------------------------------------------------

    @property
    def loops(self) -> list[FeedLoop]:
        return [slot.loop for slot in list(self._slots.values())]

    @property
    def feeds(self) -> list[Feed]:
        return [loop.feed for loop in self.loops]

    @property
    def idle(self) -> bool:
        return not self._slots

    def _on_settings(self, doc: SettingsVersion) -> None:
        # Runs in the follower's thread: hand over, the runner's loop rebuilds the feeds.
        with self._lock:
            self._pending = doc
        self._wake.set()

    def _slot(self, spec: FeedSpec) -> _Slot:
        feed_stop = threading.Event()
        # Retry waits are waits on the feed's own stop event, so SIGTERM or the feed's removal
        # ends a backoff at once.
        feed = spec.make(feed_stop.wait)
        return _Slot(spec, FeedLoop(feed, self.publisher, rng=random.Random()), feed_stop)

    def _reconcile(self, initial: bool = False) -> None:
        with self._lock:
            doc, self._pending = self._pending, None
        if doc is not None:
            self.station = doc
        station = self.station.settings if self.station else None
        effective, kinds = effective_settings(self.settings, station)
        try:
            specs = feed_specs(effective, self.redis, kinds) if kinds else []
            if not specs and initial and not self.idle_ok:
                raise FeedConfigError(NO_FEED)
            wanted = {spec.key: spec for spec in specs}
            built = {
                key: self._slot(spec) for key, spec in wanted.items() if key not in self._slots
            }
        except FeedConfigError as exc:
            if initial:
                raise
            # The document is validated by station-api, so this is an environment problem
            # uncovered by a change; keep the running feeds rather than stop polling.
            self.config_error = str(exc)
            log.error("station settings v%d not applied: %s", self.station_version(), exc)
            return
        self.config_error = None
        slots: dict[tuple[Any, ...], _Slot] = {}
        for key, slot in self._slots.items():
            if key in wanted:
                slots[key] = slot
            else:
                slot.stop.set()  # finishes its current cycle, then its thread ends
                self._retiring.append(slot)
        slots.update(built)
        self._slots = slots
        self._waiting.extend(built.values())
        if self._running:
            self._start_waiting()
        self.settings_version = self.station_version()
        if not initial or self.station is not None:
            log.info(
                "feeds for station settings v%d: %s",
                self.settings_version,
                [slot.spec.name for slot in slots.values()] or "none",
            )
        if not slots:
            log.warning("%s; idle, waiting for station settings", NO_FEED)

    def station_version(self) -> int:
        return self.station.version if self.station else 0

    def _start_waiting(self) -> None:
        self._retiring = [slot for slot in self._retiring if slot.alive()]
        busy = {slot.spec.name for slot in self._retiring}
        still: list[_Slot] = []
        for slot in self._waiting:
            if slot.spec.name in busy:
                still.append(slot)  # replaced feed: its old loop has not ended yet
                continue
            slot.thread = threading.Thread(
                target=slot.loop.run_forever,
                args=(slot.stop,),
                name=f"feed-{slot.spec.name}",
                daemon=True,
            )
            slot.thread.start()
        self._waiting = still

    # ---- once / run ----------------------------------------------------------------------

    def once(self) -> list[PollerStatus]:
        """Poll every feed once (in parallel, so a slow feed delays no other) and close."""
        loops = self.loops
        with ThreadPoolExecutor(max_workers=max(1, len(loops))) as pool:
            statuses = list(pool.map(lambda loop: loop.run_cycle(), loops))
        self.close()
        return statuses

    def close(self) -> None:
        for feed in self.feeds:
            feed.close()

    def shutdown(self) -> None:
        """Stop ``run`` now (signal handlers call this)."""
        self.stop.set()
        self._wake.set()

    def figures(self) -> dict[str, float]:
        totals = [loop.totals for loop in self.loops]
        return {
            "feeds": float(len(totals)),
            "feeds_failing": float(sum(1 for t in totals if t.last and not t.last.ok)),
            "published_total": float(sum(t.published for t in totals)),
            "rejected_total": float(sum(t.rejected for t in totals)),
            "errors_total": float(sum(t.errors for t in totals)),
            "idle": 1.0 if self.idle else 0.0,
            "settings_version": float(self.settings_version),
            "settings_config_error": 1.0 if self.config_error else 0.0,
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
        body: dict[str, Any] = {
            "status": "ok",
            "service": SERVICE,
            "feeds": self.feed_report(),
            "settings_version": self.settings_version,
        }
        if self.idle:
            body["idle"] = f"{NO_FEED}; waiting for station settings"
        if self.config_error:
            body["settings_error"] = self.config_error
        return True, body

    def _readyz(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, str] = {}
        try:
            self.redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            # Unauthenticated endpoint: which dependency, not the driver's message.
            log.warning("readiness: redis failed: %s", exc)
            checks["redis"] = "error: unavailable"
        checks["feeds"] = "ok" if self.ready() else "failing"
        ok = all(v == "ok" for v in checks.values())
        return ok, {"ready": ok, "checks": checks}

    def run(self) -> None:
        """Every feed in its own thread until `stop` is set, following the station settings."""
        health: HealthServer | None = None
        if self.settings.health_port:
            health = HealthServer(
                self.settings.health_host, self.settings.health_port, self._healthz, self._readyz
            )
            health.start()
        self._running = True
        self._start_waiting()
        if self.follower is not None:
            self.follower.start(self.stop)
        heartbeat = SyncHeartbeat(
            self.bus,
            SERVICE,
            self.settings.instance,
            __version__,
            self.settings.heartbeat_interval_s,
        )
        log.info("pollers running %d feed(s): %s", len(self._slots), [f.name for f in self.feeds])
        tick = min(0.25, self.settings.heartbeat_interval_s)
        try:
            while not self.stop.is_set():
                if self._pending is not None:
                    self._reconcile()
                if self._waiting or self._retiring:
                    self._start_waiting()
                heartbeat.maybe_beat(self.figures(), ready=self.ready())
                # Woken at once by a settings change or shutdown(); the tick notices a stop
                # set directly on the event and replaced feeds whose old loop has ended.
                self._wake.wait(tick)
                self._wake.clear()
        finally:
            self.stop.set()
            slots = [*self._slots.values(), *self._retiring]
            for slot in slots:
                slot.stop.set()
            for slot in slots:
                if slot.thread is not None:
                    slot.thread.join(timeout=self.settings.http_deadline_s + 5)
            for slot in self._waiting:
                if slot.thread is None:
                    slot.loop.feed.close()
            if self.follower is not None and self.follower.thread is not None:
                self.follower.thread.join(timeout=5)
            if health is not None:
                health.stop()
            log.info("pollers stopped")
