"""station-api application: resources are made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from fastapi import FastAPI, Request

from eas_schemas.streams import SERVICE_HEARTBEAT, SETTINGS_CHANGED, SYSTEM_ALARMS
from eas_schemas.system_events import AUDIT_RECORDS, STATION_API_GROUP
from servicekit.asyncapi import build_asyncapi
from servicekit.auth.loading import load_verifier as load_public_verifier
from servicekit.auth.tokens import TokenSigner, TokenVerifier
from servicekit.bus import AsyncBus, async_redis
from servicekit.consumer import GroupConsumer
from servicekit.db import make_engine
from servicekit.heartbeat import run_heartbeat
from servicekit.outbox import Outbox
from servicekit.tasks import every
from servicekit.web import ServiceMetrics, check, database_and_redis, install_common
from station_api import __version__, tables
from station_api import repository as repo
from station_api.audit import AuditLog
from station_api.audit_intake import make_handler as make_audit_handler
from station_api.fleet import FleetMonitor
from station_api.identity import IdentityService
from station_api.passwords import Passwords
from station_api.routes import router
from station_api.settings import StationApiSettings
from station_api.settings_service import SettingsService
from station_api.throttle import LoginThrottle

log = logging.getLogger(__name__)

SERVICE = "station-api"


def load_signer(settings: StationApiSettings) -> TokenSigner | None:
    path = settings.signing_key_file
    if path is None:
        return None
    if not path.exists():
        # A configured but missing key is a deployment mistake: fail at start, not at login.
        raise RuntimeError(f"signing key file {path} does not exist")
    return TokenSigner(path.read_text())


def load_verifier(settings: StationApiSettings, signer: TokenSigner | None) -> TokenVerifier | None:
    # With the private key, verify with its own public half: the two can never disagree.
    if signer is not None:
        return TokenVerifier(signer.public_pem())
    return load_public_verifier(settings)


def asyncapi_document() -> dict[str, Any]:
    return build_asyncapi(
        SERVICE,
        __version__,
        sends=[SETTINGS_CHANGED.name, SYSTEM_ALARMS.name, SERVICE_HEARTBEAT.name],
        receives=[SERVICE_HEARTBEAT.name],
        description="station-api announces settings.changed and system.alarm, and reads "
        "every service.heartbeat for the fleet view.",
    )


def create_app(settings: StationApiSettings | None = None) -> FastAPI:
    settings = settings or StationApiSettings()
    metrics = ServiceMetrics(SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signer = load_signer(settings)
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        redis_client = async_redis(settings.redis_url)
        bus = AsyncBus(redis_client, settings.bus_namespace)
        source = f"{SERVICE}/{settings.instance}"
        audit = AuditLog(engine)
        outbox = Outbox(engine, bus, tables.outbox)
        identity = IdentityService(
            engine,
            signer,
            Passwords(settings.password_memory_kib, settings.password_time_cost),
            LoginThrottle(
                redis_client,
                settings.bus_namespace,
                settings.login_window_s,
                settings.login_max_failures_user,
                settings.login_max_failures_addr,
            ),
            audit,
            settings.access_ttl_s,
            settings.refresh_ttl_s,
        )
        settings_service = SettingsService(
            engine, outbox, audit, source, redis_client, settings.bus_namespace
        )
        fleet = FleetMonitor(
            redis_client,
            bus,
            source,
            down_after_intervals=settings.fleet_down_after_intervals,
            check_interval_s=settings.fleet_check_interval_s,
            rebuild_window_s=settings.fleet_rebuild_window_s,
            forget_after_s=settings.fleet_forget_after_s,
        )
        app.state.engine = engine
        app.state.redis = redis_client
        app.state.signer = signer
        app.state.verifier = load_verifier(settings, signer)
        app.state.anonymous_read = settings.anonymous_read
        app.state.cookie_secure = settings.cookie_secure
        app.state.host_disk_paths = settings.host_disk_paths
        app.state.audit = audit
        app.state.identity = identity
        app.state.settings_service = settings_service
        app.state.fleet = fleet
        app.state.outbox = outbox
        if signer is None:
            log.warning("no signing key (STATION_API_SIGNING_KEY_FILE): logins answer 503")
        psutil.cpu_percent(interval=None)  # primes the counter the host view reads

        if settings.setup_token_enabled:
            token = await identity.ensure_setup_token()
            if token is not None:
                app.state.setup_token = token  # for the embedding process and tests
                message = (
                    "no user exists yet: create the first admin with POST /api/auth/setup "
                    f"and this one-time setup token: {token}  "
                    "(or run `station-api create-admin --username NAME`)"
                )
                log.warning(message)
                print(message, file=sys.stderr, flush=True)
        await settings_service.publish_current()

        async def housekeeping() -> None:
            await identity.housekeeping()
            current = await settings_service.current()
            cutoff = datetime.now(UTC) - timedelta(days=current.settings.retention.audit_days)
            async with engine.begin() as conn:
                await repo.prune_audit(conn, cutoff)

        async def figures() -> dict[str, float]:
            snapshot = fleet.snapshot()
            return {
                "fleet_instances": len(snapshot),
                "fleet_down": sum(1 for i in snapshot if i["status"] == "down"),
                "alarms_published": fleet.stats.alarms_published,
                "events_published": outbox.published,
                "publish_failures": outbox.failures,
                "audit_intake_handled": audit_consumer.stats.handled,
                "dead_lettered": audit_consumer.stats.dead_lettered,
                "pending": await audit_consumer.pending_count(),
                "lag": await audit_consumer.lag(),
            }

        audit_consumer = GroupConsumer(
            redis_client,
            AUDIT_RECORDS.name,
            STATION_API_GROUP,
            settings.instance,
            make_audit_handler(audit),
            namespace=settings.bus_namespace,
            source=source,
        )
        app.state.audit_consumer = audit_consumer

        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(fleet.run(stop)),
            asyncio.create_task(every(settings.outbox_interval_s, stop, outbox.flush)),
            asyncio.create_task(every(3600.0, stop, housekeeping)),
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
        ]
        if settings.run_audit_consumer:
            tasks.append(asyncio.create_task(audit_consumer.run(stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await redis_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="EAS Station station-api",
        version=__version__,
        description="The station's control plane: settings, users and roles, login, audit "
        "log, fleet health. Log in with the Authorize button (OAuth2 password flow). "
        "The bus contract is at /asyncapi.json.",
        lifespan=lifespan,
    )
    app.include_router(router)

    async def readiness(request: Request) -> dict[str, str]:
        out = await database_and_redis(request.app.state.engine, request.app.state.redis)

        async def signing_key() -> None:
            if request.app.state.signer is None:
                raise RuntimeError("no signing key configured")

        await check("signing_key", signing_key, out)
        return out

    install_common(app, settings, metrics, readiness, asyncapi=asyncapi_document)
    app.state.started_at = datetime.now(UTC)
    return app
