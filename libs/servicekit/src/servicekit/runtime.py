"""What every HTTP service's lifespan does, once: resources, background tasks, the heartbeat.

A service describes only what is its own::

    async def setup(app: FastAPI, rt: ServiceRuntime) -> AsyncIterator[None]:
        service = AlertService(rt.engine, rt.bus, rt.source, ...)
        app.state.alert_service = service
        rt.every(settings.expiry_interval_s, service.expire_due)
        rt.heartbeat(figures)
        yield

    app = service_app(ServiceInfo(...), settings, [router], setup)

The runtime makes the engine (when the settings name a database), the Redis client and bus,
and the token verifier in the lifespan — never at import — and on the way out stops the tasks
(setting ``stop`` first, so loops end cleanly, then cancelling what is left), closes Redis and
disposes of the engine, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware

from servicekit.auth.loading import load_verifier
from servicekit.auth.revocation import RevocationList, follow_revocations
from servicekit.auth.tokens import TokenVerifier
from servicekit.bus import AsyncBus, async_redis
from servicekit.db import CONNECT_TIMEOUT_S, make_engine
from servicekit.docs import install_docs
from servicekit.heartbeat import Figures, run_heartbeat
from servicekit.settings import ServiceSettings, StoreSettings
from servicekit.tasks import every
from servicekit.web import ServiceMetrics, check, database_and_redis, install_common

log = logging.getLogger(__name__)

# Stopped tasks get this long to finish their current step before they are cancelled. Short,
# because a consumer blocked in XREADGROUP only looks at ``stop`` once its read times out, and
# cancelling is safe everywhere: an unacknowledged entry is delivered again, an unpublished
# outbox row is flushed later.
STOP_GRACE_S = 0.3


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    version: str
    title: str
    description: str
    asyncapi: Callable[[], dict[str, Any]] | None = None


class ServiceRuntime:
    """The resources of one running service instance."""

    def __init__(
        self,
        info: ServiceInfo,
        settings: ServiceSettings,
        *,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.info = info
        self.settings = settings
        self.source = f"{info.name}/{settings.instance}"
        self.redis: aioredis.Redis = async_redis(settings.redis_url)
        self.bus = AsyncBus(self.redis, settings.bus_namespace)
        self._engine: AsyncEngine | None = (
            make_engine(settings.database_url, pool_size=settings.db_pool_size)
            if isinstance(settings, StoreSettings)
            else None
        )
        self.verifier = verifier if verifier is not None else load_verifier(settings)
        self.revocations = RevocationList()
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    def follow_revocations(self) -> None:
        """Honour revoked access tokens in this service's verifier (whichever it ends up with)."""
        if self.verifier is not None:
            self.verifier.revocations = self.revocations
        self.spawn(
            follow_revocations(
                self.redis, self.settings.bus_namespace, self.revocations, self.stop
            ),
            name="revocations",
        )

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError(f"{self.info.name} has no database (its settings name none)")
        return self._engine

    @property
    def has_database(self) -> bool:
        return self._engine is not None

    def spawn(self, work: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run ``work`` until the service stops; it should return once ``stop`` is set."""
        task = asyncio.create_task(work, name=name)
        self.tasks.append(task)
        return task

    def every(self, interval_s: float, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` now and every ``interval_s`` seconds; a failure is logged, not fatal."""
        self.spawn(every(interval_s, self.stop, work), name=getattr(work, "__qualname__", None))

    def heartbeat(
        self,
        figures: Figures | None = None,
        ready: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Beat on the bus; each beat carries the dependency checks /readyz makes."""
        self.spawn(
            run_heartbeat(
                self.bus,
                self.info.name,
                self.settings.instance,
                self.info.version,
                self.settings.heartbeat_interval_s,
                self.stop,
                figures,
                ready,
                self.dependency_checks,
            ),
            name="heartbeat",
        )

    async def dependency_checks(self) -> dict[str, str]:
        """The database (when the service has one) and Redis, as /readyz checks them; each
        bounded (as long as a database connect may take: a busy machine is not an outage),
        so an unreachable host delays a beat by seconds at most."""
        bound = max(CONNECT_TIMEOUT_S + 1.0, self.settings.heartbeat_interval_s)
        out: dict[str, str] = {}
        if self._engine is not None:
            engine = self._engine

            async def database() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            await check("database", lambda: asyncio.wait_for(database(), bound), out)
        await check("redis", lambda: asyncio.wait_for(self.redis.ping(), bound), out)
        return out

    async def stop_tasks(self) -> None:
        """Stop the background tasks (a setup that must close something after them calls it)."""
        self.stop.set()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=STOP_GRACE_S)
            for task in pending:
                log.debug("%s: cancelling %s, still busy at shutdown", self.source, task.get_name())
                task.cancel()
            results = await asyncio.gather(*self.tasks, return_exceptions=True)
            for task, result in zip(self.tasks, results, strict=True):
                if isinstance(result, Exception):
                    log.error("%s: task %s ended with %r", self.source, task.get_name(), result)
            self.tasks.clear()

    async def aclose(self) -> None:
        await self.stop_tasks()
        await self.redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()


Setup = Callable[[FastAPI, ServiceRuntime], contextlib.AbstractAsyncContextManager[None]]
ReadinessCheck = Callable[[Request, dict[str, str]], Awaitable[None]]


def service_app(
    info: ServiceInfo,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    setup: Setup,
    *,
    metrics: ServiceMetrics | None = None,
    verifier: Callable[[], TokenVerifier | None] | None = None,
    readiness: Sequence[ReadinessCheck] = (),
    inner_middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """A service's FastAPI app: its routers, the common routes and limits, and a lifespan that
    makes a ``ServiceRuntime`` (``app.state.runtime``) and runs ``setup`` inside it.

    ``verifier`` replaces the public-key verifier (station-api verifies with its private key's
    public half); ``readiness`` adds checks to the database and Redis ones.
    ``inner_middleware`` runs inside the common layers (proxy headers, limits, security
    headers, CORS, metrics), outermost first: a response it answers by itself still gets them.
    """
    metrics = metrics or ServiceMetrics(info.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(info, settings, verifier=verifier() if verifier else None)
        app.state.runtime = runtime
        app.state.redis = runtime.redis
        app.state.verifier = runtime.verifier
        app.state.anonymous_read = settings.anonymous_read
        if runtime.verifier is None and not settings.anonymous_read:
            log.warning("no auth public key configured: every protected route will answer 401")
        try:
            async with setup(app, runtime):
                # After setup: station-api puts its own verifier in place there.
                app.state.verifier = runtime.verifier
                runtime.follow_revocations()
                yield
        finally:
            await runtime.aclose()

    app = FastAPI(
        title=info.title,
        version=info.version,
        description=info.description,
        lifespan=lifespan,
        # Served from the station (servicekit.docs), not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app, info.title)
    for router in routers:
        app.include_router(router)

    async def ready(request: Request) -> dict[str, str]:
        runtime: ServiceRuntime = request.app.state.runtime
        if runtime.has_database:
            out = await database_and_redis(runtime.engine, runtime.redis)
        else:
            out = {}
            await check("redis", runtime.redis.ping, out)
        for extra in readiness:
            await extra(request, out)
        return out

    # Added before install_common: add_middleware puts each new layer outside the earlier ones.
    for layer in reversed(inner_middleware):
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    install_common(app, settings, metrics, ready, asyncapi=info.asyncapi)
    app.state.metrics = metrics
    return app
