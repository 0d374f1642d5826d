"""eas-monitor application: resources (engine, Redis, supervisor, consumer) are made in the
lifespan, never at import."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from eas_monitor import __version__
from eas_monitor.api import router
from eas_monitor.consumer import make_handler
from eas_monitor.service import MonitorService
from eas_monitor.settings import EasMonitorSettings
from eas_monitor.supervisor import CommandFactory, Supervisor
from eas_schemas.monitor_events import EAS_MONITOR_GROUP, InputState
from eas_schemas.streams import (
    AUDIO_METRICS,
    DEAD_LETTER,
    MONITOR_STATUS,
    SAME_EVENTS,
    SERVICE_HEARTBEAT,
)
from servicekit.asyncapi import build_asyncapi
from servicekit.consumer import GroupConsumer
from servicekit.runtime import ServiceInfo, ServiceRuntime, service_app
from servicekit.web import ServiceMetrics

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


INFO = ServiceInfo(
    name=SERVICE,
    version=__version__,
    title="EAS Station eas-monitor",
    description="Monitored audio inputs: capture, levels, live SAME decoding, clips. "
    "The bus contract is at /asyncapi.json.",
    asyncapi=asyncapi_document,
)


def create_app(
    settings: EasMonitorSettings | None = None, *, worker_command: CommandFactory | None = None
) -> FastAPI:
    settings = settings or EasMonitorSettings()
    metrics = ServiceMetrics(SERVICE)
    stored_total = metrics.counter("eas_monitor_decodes_stored_total", "same.* events stored")

    @contextlib.asynccontextmanager
    async def setup(app: FastAPI, rt: ServiceRuntime) -> AsyncIterator[None]:
        settings.clips_dir.mkdir(parents=True, exist_ok=True)
        supervisor = (
            Supervisor(settings, rt.bus, command=worker_command)
            if settings.run_supervisor
            else None
        )
        service = MonitorService(rt.engine, settings, supervisor)
        app.state.monitor_service = service
        consumer = GroupConsumer(
            rt.redis,
            SAME_EVENTS.name,
            EAS_MONITOR_GROUP,
            settings.instance,
            make_handler(service, stored_total),
            namespace=settings.bus_namespace,
            source=rt.source,
            min_idle_ms=settings.consumer_min_idle_ms,
            concurrency=4,
        )

        async def figures() -> dict[str, float]:
            runtimes = supervisor.runtimes.values() if supervisor else []
            return {
                "inputs": float(len(runtimes)),
                "inputs_running": float(
                    sum(1 for state in runtimes if state.state == InputState.RUNNING)
                ),
                "worker_restarts": float(sum(state.restarts for state in runtimes)),
                "decodes_stored": float(service.stored),
                "pending": float(await consumer.pending_count()),
            }

        rt.heartbeat(figures)
        rt.every(settings.retention_interval_s, service.prune_clips)
        if supervisor is not None:
            await supervisor.start(await service.records())

            async def reconcile() -> None:
                async with supervisor.lock:
                    await supervisor.sync(await service.records())

            rt.every(settings.reconcile_interval_s, reconcile)
        if settings.run_consumer:
            rt.spawn(consumer.run(rt.stop), name="decode-history-consumer")
        try:
            yield
        finally:
            await rt.stop_tasks()
            if supervisor is not None:
                await supervisor.close()

    return service_app(INFO, settings, [router], setup, metrics=metrics)
