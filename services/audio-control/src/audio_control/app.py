"""audio-control application: resources are made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, Metric

from audio_control import __version__, tables
from audio_control.api import router
from audio_control.consumer import alert_handler, heard_handler, playout_handler
from audio_control.playout.supervisor import WorkerSupervisor
from audio_control.services.decisions import SERVICE, RelayService
from audio_control.services.messages import MessageService
from audio_control.services.outputs import OutputService
from audio_control.services.playout import PlayoutService
from audio_control.services.scheduled_tests import RequiredTestScheduler
from audio_control.services.station import StationView
from audio_control.services.station_log import StationLog
from audio_control.settings import AudioControlSettings
from eas_schemas.streams import (
    ALERT_EVENTS,
    AUDIO_CONTROL_GROUP,
    AUDIT_RECORDS,
    DEAD_LETTER,
    PLAYOUT_COMMANDS,
    PLAYOUT_EVENTS,
    RELAY_DECISIONS,
    SAME_EVENTS,
    SERVICE_HEARTBEAT,
    SETTINGS_CHANGED,
)
from servicekit.asyncapi import build_asyncapi
from servicekit.consumer import GroupConsumer
from servicekit.hashchain import ChainKey
from servicekit.outbox import Outbox
from servicekit.runtime import ServiceInfo, ServiceRuntime, service_app
from servicekit.settings_follower import SettingsFollower, SettingsVersion

log = logging.getLogger(__name__)


def asyncapi_document() -> dict[str, Any]:
    return build_asyncapi(
        SERVICE,
        __version__,
        sends=[
            RELAY_DECISIONS.name,
            PLAYOUT_EVENTS.name,
            PLAYOUT_COMMANDS.name,
            AUDIT_RECORDS.name,
            SERVICE_HEARTBEAT.name,
            DEAD_LETTER.name,
        ],
        receives=[ALERT_EVENTS.name, SAME_EVENTS.name, PLAYOUT_EVENTS.name, SETTINGS_CHANGED.name],
        description="audio-control decides once per alert.* (CAP) and same.header (on air) "
        "whether the station relays it (consumer group audio-control), announces each "
        "decision as relay.decision, and composes the EAS message of what may air.",
    )


INFO = ServiceInfo(
    name=SERVICE,
    version=__version__,
    title="EAS Station audio-control",
    description="Relay decisions by the station's rules, EAS message generation (CAP-to-EAS by "
    "the ECIG guide, text-to-speech) and origination, /api/audio. The bus contract is at "
    "/asyncapi.json.",
    asyncapi=asyncapi_document,
)


class _RelayCollector:
    """Prometheus view of the service's own counters, read at scrape time."""

    def __init__(
        self, relay: RelayService, messages: MessageService, consumers: list[GroupConsumer]
    ) -> None:
        self.relay, self.messages, self.consumers = relay, messages, consumers

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "audio_control_decisions", "relay decisions by state reached", labels=["state"]
        )
        for state, n in sorted(self.relay.counts.items()):
            decisions.add_metric([state], n)
        yield decisions
        composed = CounterMetricFamily(
            "audio_control_messages", "messages composed for decisions", labels=["outcome"]
        )
        composed.add_metric(["composed"], self.messages.composed)
        composed.add_metric(["failed"], self.messages.failed)
        yield composed
        entries = CounterMetricFamily(
            "audio_control_entries",
            "bus entries by stream and outcome",
            labels=["stream", "outcome"],
        )
        for consumer in self.consumers:
            stats = consumer.stats
            for outcome in ("handled", "failed", "dead_lettered", "reclaimed"):
                entries.add_metric([consumer.stream_name, outcome], getattr(stats, outcome))
        yield entries


def create_app(settings: AudioControlSettings | None = None) -> FastAPI:
    settings = settings or AudioControlSettings()

    @contextlib.asynccontextmanager
    async def setup(app: FastAPI, rt: ServiceRuntime) -> AsyncIterator[None]:
        station = StationView()
        outbox = Outbox(rt.engine, rt.bus, tables.outbox)
        station_log = StationLog(
            rt.engine, ChainKey.load_or_create(settings.chain_key_file), station
        )
        playout = PlayoutService(
            rt.engine,
            outbox,
            rt.bus,
            rt.source,
            command_timeout_s=settings.command_timeout_s,
            log=station_log,
        )
        relay = RelayService(
            rt.engine, outbox, rt.source, station, playout=playout, log=station_log
        )
        http = httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": f"eas-station/{__version__}"}
        )
        messages = MessageService(
            rt.engine,
            outbox,
            relay,
            station,
            http,
            tts_timeout_s=settings.tts_timeout_s,
            upload_max_bytes=settings.origination_max_bytes,
        )
        relay.wake_composer = messages.wake.set
        app.state.relay_service = relay
        app.state.playout_service = playout
        app.state.output_service = OutputService(rt.engine, outbox, rt.bus)
        app.state.message_service = messages
        app.state.station = station
        app.state.station_log = station_log

        async def apply(doc: SettingsVersion) -> None:
            station.apply(doc.version, doc.settings)
            log.info(
                "station settings v%d applied (relay %s)",
                doc.version,
                "on" if doc.settings.relay.enabled else "off",
            )

        follower = SettingsFollower(rt.redis, settings.bus_namespace, apply, name=SERVICE)
        app.state.settings_follower = follower
        consumers = [
            GroupConsumer(
                rt.redis,
                stream.name,
                AUDIO_CONTROL_GROUP,
                settings.instance,
                handler,
                namespace=settings.bus_namespace,
                source=rt.source,
                # One at a time per replica: an Update's alert.created is decided before the
                # alert.updated of what it replaces, as alerts-api announced them.
                concurrency=1,
                min_idle_ms=settings.consumer_min_idle_ms,
                max_deliveries=settings.consumer_max_deliveries,
            )
            for stream, handler in (
                (ALERT_EVENTS, alert_handler(relay)),
                (SAME_EVENTS, heard_handler(relay)),
                (PLAYOUT_EVENTS, playout_handler(relay)),
            )
        ]
        app.state.consumers = consumers
        app.state.metrics.registry.register(_RelayCollector(relay, messages, consumers))

        async def figures() -> dict[str, float]:
            pending = [await c.pending_count() for c in consumers]
            lag = [await c.lag() for c in consumers]
            return {
                "decisions": float(sum(relay.counts.values())),
                "messages_composed": float(messages.composed),
                "messages_failed": float(messages.failed),
                "pending": float(sum(pending)),
                "lag": float(sum(lag)),
                "dead_lettered": float(sum(c.stats.dead_lettered for c in consumers)),
                "events_published": float(outbox.published),
                "publish_failures": float(outbox.failures),
                "settings_version": float(station.version),
            }

        rt.every(settings.outbox_interval_s, outbox.flush)
        rt.every(settings.sweep_interval_s, relay.sweep_confirmations)
        rt.every(settings.log_prune_interval_s, station_log.prune)
        rt.heartbeat(figures)
        if settings.follow_station_settings:
            # The station's rules before the first decision where Redis answers quickly;
            # until a document arrives, relay stays off (nothing airs).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(follower.sync(), timeout=settings.settings_sync_timeout_s)
            rt.spawn(follower.run(rt.stop), name="settings-follower")
        if settings.run_composer:
            rt.spawn(messages.run(rt.stop, settings.composer_interval_s), name="composer")
        await playout.ensure_an_output(settings.aired_dir)
        scheduler = RequiredTestScheduler(rt.engine, station, messages, playout, station_log)
        app.state.test_scheduler = scheduler
        rt.every(settings.test_schedule_interval_s, scheduler.tick)
        supervisor = WorkerSupervisor(settings) if settings.run_playout else None
        app.state.playout_supervisor = supervisor
        if supervisor is not None:
            rt.spawn(supervisor.run(rt.stop), name="playout-supervisor")
        if settings.run_consumers:
            for consumer in consumers:
                rt.spawn(consumer.run(rt.stop), name=f"consumer {consumer.stream_name}")
        try:
            yield
        finally:
            await rt.stop_tasks()
            if supervisor is not None:
                await supervisor.close()
            await http.aclose()

    return service_app(INFO, settings, [router], setup)
