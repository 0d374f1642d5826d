"""eas-monitor application: resources (engine, Redis, supervisor, consumer) are made in the
lifespan, never at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from eas_monitor import __version__
from eas_monitor.api import router
from eas_monitor.service import MonitorService
from eas_monitor.settings import EasMonitorSettings
from eas_monitor.supervisor import CommandFactory, Supervisor
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import EAS_MONITOR_GROUP, InputState
from eas_schemas.streams import (
    AUDIO_METRICS,
    DEAD_LETTER,
    MONITOR_STATUS,
    SAME_EVENTS,
    SERVICE_HEARTBEAT,
)
from servicekit.asyncapi import build_asyncapi
from servicekit.auth.loading import load_verifier
from servicekit.bus import AsyncBus, async_redis
from servicekit.consumer import GroupConsumer
from servicekit.db import make_engine
from servicekit.heartbeat import run_heartbeat
from servicekit.tasks import every
from servicekit.web import ServiceMetrics, database_and_redis, install_common

log = logging.getLogger(__name__)

SERVICE = "eas-monitor"


def asyncapi_document() -> dict[str, Any]:
    return build_asyncapi(
        SERVICE,
        __version__,
        sends=[
            SAME_EVENTS.name,
            MONITOR_STATUS.name,
            AUDIO_METRICS.name,
            SERVICE_HEARTBEAT.name,
            DEAD_LETTER.name,
        ],
        receives=[SAME_EVENTS.name],
        description="eas-monitor's workers publish what they hear (same.*) and input levels; "
        "the service publishes monitor.status and keeps the decode history from same.events "
        "(consumer group eas-monitor).",
    )


def create_app(
    settings: EasMonitorSettings | None = None, *, worker_command: CommandFactory | None = None
) -> FastAPI:
    settings = settings or EasMonitorSettings()
    metrics = ServiceMetrics(SERVICE)
    stored_total = metrics.counter("eas_monitor_decodes_stored_total", "same.* events stored")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.clips_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        redis_client = async_redis(settings.redis_url)
        bus = AsyncBus(redis_client, settings.bus_namespace)
        supervisor = (
            Supervisor(settings, bus, command=worker_command) if settings.run_supervisor else None
        )
        service = MonitorService(engine, settings, supervisor)
        app.state.monitor_service = service
        app.state.redis = redis_client
        app.state.verifier = load_verifier(settings)
        app.state.anonymous_read = settings.anonymous_read
        if app.state.verifier is None and not settings.anonymous_read:
            log.warning("no auth public key configured: every protected route will answer 401")
        stop = asyncio.Event()

        async def store(_entry_id: str, envelope: EventEnvelope[dict[str, Any]]) -> None:
            if await service.store_event(envelope):
                stored_total.inc()

        consumer = GroupConsumer(
            redis_client,
            SAME_EVENTS.name,
            EAS_MONITOR_GROUP,
            settings.instance,
            store,
            namespace=settings.bus_namespace,
            source=f"{SERVICE}/{settings.instance}",
            min_idle_ms=settings.consumer_min_idle_ms,
            concurrency=4,
        )

        async def figures() -> dict[str, float]:
            runtimes = supervisor.runtimes.values() if supervisor else []
            return {
                "inputs": float(len(runtimes)),
                "inputs_running": float(
                    sum(1 for rt in runtimes if rt.state == InputState.RUNNING)
                ),
                "worker_restarts": float(sum(rt.restarts for rt in runtimes)),
                "decodes_stored": float(service.stored),
                "pending": float(await consumer.pending_count()),
            }

        if supervisor is not None:
            await supervisor.start(await service.records())
        tasks = [
            asyncio.create_task(
                run_heartbeat(
                    bus,
                    SERVICE,
                    settings.instance,
                    __version__,
                    settings.heartbeat_interval_s,
                    stop,
                    figures,
                )
            ),
            asyncio.create_task(every(settings.retention_interval_s, stop, service.prune_clips)),
        ]
        if supervisor is not None:

            async def reconcile() -> None:
                async with supervisor.lock:
                    await supervisor.sync(await service.records())

            tasks.append(asyncio.create_task(every(settings.reconcile_interval_s, stop, reconcile)))
        if settings.run_consumer:
            tasks.append(asyncio.create_task(consumer.run(stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if supervisor is not None:
                await supervisor.close()
            await redis_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="EAS Station eas-monitor",
        version=__version__,
        description="Monitored audio inputs: capture, levels, live SAME decoding, clips. "
        "The bus contract is at /asyncapi.json.",
        lifespan=lifespan,
    )
    app.include_router(router)

    async def readiness(request: Request) -> dict[str, str]:
        state = request.app.state
        return await database_and_redis(state.monitor_service.engine, state.redis)

    install_common(app, settings, metrics, readiness, asyncapi=asyncapi_document)
    return app
