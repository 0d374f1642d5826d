"""station-api application: resources are made in the lifespan, never at import."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psutil
from fastapi import FastAPI, Request

from eas_schemas.clock import utcnow
from eas_schemas.streams import (
    AUTH_REVOCATIONS,
    SERVICE_HEARTBEAT,
    SETTINGS_CHANGED,
    SYSTEM_ALARMS,
)
from eas_schemas.system_events import AUDIT_RECORDS, STATION_API_GROUP
from servicekit.asyncapi import build_asyncapi
from servicekit.auth.tokens import TokenSigner, TokenVerifier
from servicekit.consumer import GroupConsumer
from servicekit.hashchain import ChainKey
from servicekit.outbox import Outbox
from servicekit.runtime import ServiceInfo, ServiceRuntime, service_app
from servicekit.web import check
from station_api import __version__, tables
from station_api.consumer import make_handler as make_audit_handler
from station_api.passwords import Passwords
from station_api.routes import router
from station_api.services.accounts import AccountStore
from station_api.services.audit import AuditLog
from station_api.services.fleet import FleetMonitor
from station_api.services.sessions import SessionService
from station_api.services.settings import SettingsService
from station_api.services.users import UserService
from station_api.settings import StationApiSettings
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


def asyncapi_document() -> dict[str, Any]:
    return build_asyncapi(
        SERVICE,
        __version__,
        sends=[
            SETTINGS_CHANGED.name,
            SYSTEM_ALARMS.name,
            SERVICE_HEARTBEAT.name,
            AUTH_REVOCATIONS.name,
        ],
        receives=[SERVICE_HEARTBEAT.name, AUTH_REVOCATIONS.name],
        description="station-api announces settings.changed, system.alarm and revoked access "
        "tokens (auth.revocations, which every service follows), and reads every "
        "service.heartbeat for the fleet view.",
    )


INFO = ServiceInfo(
    name=SERVICE,
    version=__version__,
    title="EAS Station station-api",
    description="The station's control plane: settings, users and roles, login, audit "
    "log, fleet health. Log in with the Authorize button (OAuth2 password flow). "
    "The bus contract is at /asyncapi.json.",
    asyncapi=asyncapi_document,
)


def create_app(settings: StationApiSettings | None = None) -> FastAPI:
    settings = settings or StationApiSettings()

    @contextlib.asynccontextmanager
    async def setup(app: FastAPI, rt: ServiceRuntime) -> AsyncIterator[None]:
        signer = load_signer(settings)
        if signer is not None:
            # With the private key, verify with its own public half: the two can never disagree.
            rt.verifier = app.state.verifier = TokenVerifier(signer.public_pem())
        else:
            log.warning("no signing key (STATION_API_SIGNING_KEY_FILE): logins answer 503")
        engine = rt.engine
        audit = AuditLog(engine, ChainKey.load_or_create(settings.chain_key_file))
        sealed = await audit.seal_unchained()
        if sealed:
            log.info("audit log: %d entries written before the hash chain are now chained", sealed)
        outbox = Outbox(engine, rt.bus, tables.outbox)
        accounts = AccountStore(
            engine,
            Passwords(settings.password_memory_kib, settings.password_time_cost),
            audit,
            outbox,
            settings.access_ttl_s,
        )
        users = UserService(accounts)
        sessions = SessionService(
            accounts,
            signer,
            LoginThrottle(
                rt.redis,
                settings.bus_namespace,
                settings.login_window_s,
                settings.login_max_failures_user,
                settings.login_max_failures_addr,
            ),
            settings.access_ttl_s,
            settings.refresh_ttl_s,
        )
        settings_service = SettingsService(
            engine, outbox, audit, rt.source, rt.redis, settings.bus_namespace
        )
        fleet = FleetMonitor(
            rt.redis,
            rt.bus,
            rt.source,
            down_after_intervals=settings.fleet_down_after_intervals,
            check_interval_s=settings.fleet_check_interval_s,
            rebuild_window_s=settings.fleet_rebuild_window_s,
            forget_after_s=settings.fleet_forget_after_s,
        )
        audit_consumer = GroupConsumer(
            rt.redis,
            AUDIT_RECORDS.name,
            STATION_API_GROUP,
            settings.instance,
            make_audit_handler(audit),
            namespace=settings.bus_namespace,
            source=rt.source,
        )
        app.state.engine = engine
        app.state.signer = signer
        app.state.cookie_secure = settings.cookie_secure
        app.state.host_disk_paths = settings.host_disk_paths
        app.state.audit = audit
        app.state.sessions = sessions
        app.state.users = users
        app.state.settings_service = settings_service
        app.state.fleet = fleet
        app.state.outbox = outbox
        app.state.audit_consumer = audit_consumer
        psutil.cpu_percent(interval=None)  # primes the counter the host view reads

        if settings.setup_token_enabled:
            token = await sessions.ensure_setup_token()
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
            await sessions.housekeeping()
            current = await settings_service.current()
            await audit.prune(utcnow() - timedelta(days=current.settings.retention.audit_days))

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

        rt.spawn(fleet.run(rt.stop), name="fleet")
        rt.every(settings.outbox_interval_s, outbox.flush)
        rt.every(3600.0, housekeeping)
        rt.heartbeat(figures)
        if settings.run_audit_consumer:
            rt.spawn(audit_consumer.run(rt.stop), name="audit-consumer")
        yield

    async def signing_key(request: Request, out: dict[str, str]) -> None:
        async def present() -> None:
            if request.app.state.signer is None:
                raise RuntimeError("no signing key configured")

        await check("signing_key", present, out)

    return service_app(INFO, settings, [router], setup, readiness=[signing_key])
