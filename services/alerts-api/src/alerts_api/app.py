"""alerts-api application: resources are made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, Metric
from starlette.middleware import Middleware

from alerts_api import __version__
from alerts_api.api import router
from alerts_api.consumer import make_batch_handler, make_handler
from alerts_api.fast_reads import FastReads, asyncpg_dsn
from alerts_api.service import AlertService
from alerts_api.settings import AlertsApiSettings
from eas_schemas.streams import (
    ALERT_EVENTS,
    ALERTS_API_GROUP,
    ALERTS_INGESTED,
    DEAD_LETTER,
    SERVICE_HEARTBEAT,
    SETTINGS_CHANGED,
)
from servicekit.asyncapi import build_asyncapi
from servicekit.auth.permissions import Permission
from servicekit.bus import stream_key
from servicekit.consumer import GroupConsumer
from servicekit.read_cache import CachedReads, ResponseCache
from servicekit.runtime import ServiceInfo, ServiceRuntime, service_app
from servicekit.settings_follower import SettingsFollower, SettingsVersion, configured
from servicekit.tail import StreamTail

log = logging.getLogger(__name__)

SERVICE = "alerts-api"


class _IngestCollector:
    """Prometheus view of the consumer's and the store's own counters, read at scrape time."""

    def __init__(self, service: AlertService, consumer: GroupConsumer) -> None:
        self.service, self.consumer = service, consumer

    def collect(self) -> Iterator[Metric]:
        stats = self.consumer.stats
        entries = CounterMetricFamily(
            "alerts_ingest_entries", "alerts.ingested entries by outcome", labels=["outcome"]
        )
        entries.add_metric(["handled"], stats.handled)
        entries.add_metric(["failed"], stats.failed)
        entries.add_metric(["dead_lettered"], stats.dead_lettered)
        entries.add_metric(["reclaimed"], stats.reclaimed)
        yield entries
        stored = CounterMetricFamily(
            "alerts_stored", "alerts stored (new) and duplicates", labels=["kind"]
        )
        stored.add_metric(["new"], self.service.stored)
        stored.add_metric(["duplicate"], self.service.duplicates)
        yield stored
        published = CounterMetricFamily("alerts_events_published", "lifecycle events published")
        published.add_metric([], self.service.outbox.published)
        yield published


def _settings_applier(
    service: AlertService, settings: AlertsApiSettings
) -> Callable[[SettingsVersion], Awaitable[None]]:
    """What a new station settings version means here: the station's SAME/UGC codes.

    The document's location wins once it was set there; until then the environment's codes
    stay (see docs/settings-propagation.md). Raising makes the follower retry this version.
    """
    stale = False

    async def apply(doc: SettingsVersion) -> None:
        nonlocal stale
        location = doc.settings.location
        if configured(location):
            same, ugc = [str(c) for c in location.same_codes], [str(c) for c in location.ugc_codes]
        else:
            same, ugc = settings.station_same_codes, settings.station_ugc_codes
        # A recompute that failed half way (database away) must run again on the retry even
        # though the codes in memory are already the new ones.
        stale = service.set_station_codes(same, ugc) or stale
        if stale:
            await service.recompute_relevance()
            stale = False

    return apply


def asyncapi_document() -> dict[str, Any]:
    return build_asyncapi(
        SERVICE,
        __version__,
        sends=[ALERT_EVENTS.name, SERVICE_HEARTBEAT.name, DEAD_LETTER.name],
        receives=[ALERTS_INGESTED.name, SETTINGS_CHANGED.name],
        description="alerts-api stores alerts.ingested once and announces alert.* events.",
    )


INFO = ServiceInfo(
    name=SERVICE,
    version=__version__,
    title="EAS Station alerts-api",
    description="CAP alert store: ingest from the bus, lifecycle events, /api/alerts. "
    "The bus contract is at /asyncapi.json.",
    asyncapi=asyncapi_document,
)


async def _follow_alert_events(
    redis: Any, namespace: str, cache: ResponseCache, stop: asyncio.Event
) -> None:
    """Every alert.* event seen on this replica drops the cached pages at once.

    The watermark check is what bounds staleness (an event can be missed); this makes the
    usual case a bus hop, whatever the check interval.
    """
    tail = StreamTail(redis, {stream_key(ALERT_EVENTS, namespace): "$"})
    while not stop.is_set():
        try:
            if await tail.read(count=1000, block_ms=500):
                cache.invalidate()
        except Exception as exc:
            log.warning("read cache: alert.events tail failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def create_app(settings: AlertsApiSettings | None = None) -> FastAPI:
    settings = settings or AlertsApiSettings()
    # Plain memory, no resource: made here so the middleware can hold it; fed in the lifespan.
    cache = ResponseCache(
        max_entries=settings.read_cache_entries, max_lag_s=settings.read_cache_max_lag_s
    )
    fast_reads = FastReads(settings.fast_reads_pool_size)

    @contextlib.asynccontextmanager
    async def setup(app: FastAPI, rt: ServiceRuntime) -> AsyncIterator[None]:
        service = AlertService(
            rt.engine,
            rt.bus,
            rt.source,
            settings.station_same_codes,
            settings.station_ugc_codes,
            missing_expires=timedelta(hours=settings.missing_expires_h),
        )
        app.state.alert_service = service
        consumer = GroupConsumer(
            rt.redis,
            ALERTS_INGESTED.name,
            ALERTS_API_GROUP,
            settings.instance,
            make_handler(service),
            namespace=settings.bus_namespace,
            source=rt.source,
            batch_size=settings.consumer_batch,
            concurrency=settings.consumer_concurrency,
            min_idle_ms=settings.consumer_min_idle_ms,
            max_deliveries=settings.consumer_max_deliveries,
            batch_handler=make_batch_handler(service),
        )
        app.state.consumer = consumer
        app.state.metrics.registry.register(_IngestCollector(service, consumer))
        follower = SettingsFollower(
            rt.redis, settings.bus_namespace, _settings_applier(service, settings), name=SERVICE
        )
        app.state.settings_follower = follower

        async def figures() -> dict[str, float]:
            return {
                "ingest_handled": consumer.stats.handled,
                "ingest_failed": consumer.stats.failed,
                "dead_lettered": consumer.stats.dead_lettered,
                "pending": await consumer.pending_count(),
                "lag": await consumer.lag(),
                "events_published": service.outbox.published,
                "publish_failures": service.outbox.failures,
                "settings_version": follower.applied_version,
                "relevance_changes": service.relevance_changes,
            }

        rt.every(settings.expiry_interval_s, service.expire_due)
        rt.every(settings.expiry_interval_s, service.resolve_dangling)
        rt.every(settings.outbox_interval_s, service.outbox.flush)
        rt.heartbeat(figures)
        if settings.follow_station_settings:
            # The station's codes before the first ingest where Redis answers quickly; if it
            # does not, the follower's task applies them as soon as it can.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(follower.sync(), timeout=settings.settings_sync_timeout_s)
            rt.spawn(follower.run(rt.stop), name="settings-follower")
        if settings.run_consumer:
            rt.spawn(consumer.run(rt.stop), name="ingest-consumer")
        app.state.read_cache = cache
        if settings.read_cache:
            cache.watermark = service.watermark
            rt.spawn(
                _follow_alert_events(rt.redis, settings.bus_namespace, cache, rt.stop),
                name="read-cache-events",
            )
        app.state.fast_reads = fast_reads
        if settings.fast_reads and rt.engine.dialect.name == "postgresql":
            await fast_reads.start(asyncpg_dsn(rt.engine.url))
        try:
            yield
        finally:
            await fast_reads.close()

    app = service_app(
        INFO,
        settings,
        [router],
        setup,
        inner_middleware=[
            Middleware(
                CachedReads, cache, Permission.ALERTS_READ, ["/api/alerts"], direct=fast_reads
            )
        ],
    )
    # The routes FastAPI puts in the scope when it answers (the router's own APIRoutes).
    gets = {
        getattr(route, "path", None): route
        for route in router.routes
        if "GET" in getattr(route, "methods", ())
    }
    fast_reads.detail_route = gets["/api/alerts/{alert_id}"]
    fast_reads.list_route = gets["/api/alerts"]
    return app
