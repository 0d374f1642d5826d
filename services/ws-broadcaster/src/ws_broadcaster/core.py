"""The broadcaster's resources and background tasks, shared by both transports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eas_schemas.system_events import TokenRevoked
from eas_schemas.ws_protocol import CloseCode
from servicekit.auth.loading import load_verifier
from servicekit.auth.revocation import RevocationList, follow_revocations
from servicekit.bus import AsyncBus, async_redis
from servicekit.heartbeat import run_heartbeat
from servicekit.web import ServiceMetrics
from ws_broadcaster import __version__
from ws_broadcaster.hub import Hub
from ws_broadcaster.session import Session
from ws_broadcaster.settings import WsBroadcasterSettings

log = logging.getLogger(__name__)

SERVICE = "ws-broadcaster"


class HubCollector(Collector):
    """Reads the hub's plain counters at scrape time, so the hot path never touches
    prometheus objects (a labelled counter increment per delivered message would cost more
    than the delivery)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        s = self.hub.stats
        clients = GaugeMetricFamily(
            "ws_clients", "Connected WebSocket clients", labels=["transport"]
        )
        for transport, n in sorted(self.hub.clients_by_transport().items()):
            clients.add_metric([transport], n)
        yield clients
        counters = {
            "ws_connections": (s.connections_total, "WebSocket connections accepted"),
            "ws_messages_out": (s.messages_out, "Messages handed to client sockets"),
            "ws_events_in": (s.events_in, "Stream entries read and fanned out"),
            "ws_bad_entries": (s.bad_entries, "Stream entries skipped (not an envelope)"),
            "ws_coalesced_dropped": (
                s.coalesced_dropped,
                "Latest-value events replaced by a newer one before a slow client got them",
            ),
            "ws_slow_disconnects": (s.slow_disconnects, "Clients closed with 4008 (too slow)"),
            "ws_pong_timeouts": (s.pong_timeouts, "Clients closed with 4408 (no pong)"),
            "ws_auth_failures": (s.auth_failures, "Connections refused with 4401/4403"),
            "ws_protocol_errors": (s.protocol_errors, "error messages sent to clients"),
            "ws_replayed": (s.replayed, "Events replayed from history on resume"),
            "ws_resyncs": (s.resyncs, "resync_required messages sent"),
            "ws_stream_read_errors": (s.read_errors, "Failed XREAD calls"),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)
        lag_ms = GaugeMetricFamily(
            "ws_stream_lag_ms", "Age of the oldest unread entry per stream", labels=["stream"]
        )
        lag_entries = GaugeMetricFamily(
            "ws_stream_lag_entries", "Entries not yet read per stream", labels=["stream"]
        )
        for name in sorted(s.lag_ms):
            lag_ms.add_metric([name], s.lag_ms[name])
            lag_entries.add_metric([name], s.lag_entries.get(name, 0))
        yield lag_ms
        yield lag_entries


class Broadcaster:
    """Owns Redis, the hub and its tasks. ``async with Broadcaster(settings) as b`` starts
    them; leaving closes every client with 1001 (going away) and stops the tasks."""

    def __init__(self, settings: WsBroadcasterSettings, transport: str = "websockets") -> None:
        self.settings = settings
        self.transport = transport
        self.redis: aioredis.Redis = async_redis(settings.redis_url)
        self.hub = Hub(self.redis, settings, settings.instance)
        self.metrics = ServiceMetrics(SERVICE)
        self.metrics.registry.register(HubCollector(self.hub))
        verifier = load_verifier(settings)
        self.revocations = RevocationList()
        self.revocations.listeners.append(self._close_revoked)
        if verifier is not None:
            verifier.revocations = self.revocations
        if verifier is None and not settings.anonymous_read:
            log.warning("no auth public key configured: every connection will be refused (4401)")
        self.session = Session(
            self.hub, verifier, settings.anonymous_read, f"{SERVICE}/{settings.instance}"
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Broadcaster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        # Retry until Redis answers: starting before Redis (compose, one-machine mode) is normal.
        delay = 0.2
        while True:
            try:
                await self.hub.pin_positions()
                break
            except Exception as exc:
                log.warning("redis not reachable yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        hub = self.hub
        self._tasks = [
            asyncio.create_task(hub.run_reader(), name="ws-reader"),
            asyncio.create_task(hub.run_pings(), name="ws-pings"),
            asyncio.create_task(hub.run_coalesce_flush(), name="ws-coalesce"),
            asyncio.create_task(hub.run_lag(), name="ws-lag"),
            asyncio.create_task(
                follow_revocations(
                    self.redis, self.settings.bus_namespace, self.revocations, self._stop
                ),
                name="ws-revocations",
            ),
            asyncio.create_task(
                run_heartbeat(
                    AsyncBus(self.redis, self.settings.bus_namespace),
                    SERVICE,
                    self.settings.instance,
                    __version__,
                    self.settings.heartbeat_interval_s,
                    self._stop,
                    self.figures,
                    self.is_ready,
                ),
                name="ws-heartbeat",
            ),
        ]

    def _close_revoked(self, revoked: TokenRevoked) -> None:
        """An open socket outlives no revocation of the token it authenticated with."""
        for client in list(self.hub.clients):
            principal = client.principal
            if (
                principal is not None
                and not client.closed
                and self.revocations.covers(revoked, principal)
            ):
                client.close(CloseCode.UNAUTHORIZED, "token revoked")

    async def stop(self) -> None:
        self._stop.set()
        self.hub.stopping = True
        self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def figures(self) -> dict[str, float]:
        s = self.hub.stats
        return {
            "clients": float(len(self.hub.clients)),
            "messages_out": float(s.messages_out),
            "events_in": float(s.events_in),
            "slow_disconnects": float(s.slow_disconnects),
            "max_lag_ms": max(s.lag_ms.values(), default=0.0),
        }

    async def is_ready(self) -> bool:
        return self.hub.ready and time.monotonic() - self.hub.last_read_ok < 5.0

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            await self.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            # Unauthenticated endpoint: which dependency, not the driver's message.
            log.warning("readiness: redis failed: %s: %s", type(exc).__name__, exc)
            checks["redis"] = "error: unavailable"
        checks["reader"] = "ok" if await self.is_ready() else "error: not reading the streams"
        return all(v == "ok" for v in checks.values()), checks

    def metrics_text(self) -> tuple[bytes, str]:
        return generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST
