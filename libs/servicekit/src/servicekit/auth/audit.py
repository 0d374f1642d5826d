"""Recording a privileged action in the station's audit log from any service.

    from servicekit.auth.audit import publish_audit
    await publish_audit(bus, "alerts-api", "alert.manual", principal,
                        target=f"alert/{alert_id}", client_addr=request.client.host,
                        detail={"event": "TOR"})

The record goes onto the ``audit.records`` stream; station-api reads it with a consumer group
and writes it once (the envelope id is the key), so a retried publish never duplicates an
entry. Publish after the action's own commit, like every other event. Never put a secret in
``detail``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from eas_schemas.envelope import EventEnvelope
from eas_schemas.system_events import (
    AUDIT_RECORD_TYPE,
    AUDIT_RECORDS,
    AuditOutcome,
    AuditRecord,
)
from servicekit.auth.tokens import Principal
from servicekit.bus import AsyncBus, SyncBus

log = logging.getLogger(__name__)


def audit_envelope(
    service: str,
    action: str,
    actor: Principal | str,
    *,
    target: str | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    client_addr: str | None = None,
    detail: dict[str, Any] | None = None,
    instance: str = "",
) -> EventEnvelope[AuditRecord]:
    if isinstance(actor, Principal):
        subject, role = actor.subject, (actor.role.value if actor.role else None)
    else:
        subject, role = actor, None
    record = AuditRecord(
        action=action,
        actor=subject,
        actor_role=role,
        client_addr=client_addr,
        target=target,
        outcome=outcome,
        at=datetime.now(UTC),
        service=service,
        detail=detail or {},
    )
    source = f"{service}/{instance}" if instance else service
    return EventEnvelope[AuditRecord](
        type=AUDIT_RECORD_TYPE, source=source, subject=target, data=record
    )


async def publish_audit(
    bus: AsyncBus,
    service: str,
    action: str,
    actor: Principal | str,
    **kwargs: Any,
) -> str:
    """Publish one audit record (async services); returns the stream entry id."""
    return await bus.publish(AUDIT_RECORDS, audit_envelope(service, action, actor, **kwargs))


def publish_audit_sync(
    bus: SyncBus,
    service: str,
    action: str,
    actor: Principal | str,
    **kwargs: Any,
) -> str:
    """The same for sync workers (redis-py)."""
    return bus.publish(AUDIT_RECORDS, audit_envelope(service, action, actor, **kwargs))


async def audit_request(
    request: Request,
    action: str,
    principal: Principal,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
) -> None:
    """Record a privileged action a route just completed (of a ``service_app`` service).

    Published straight to the bus after the action's own commit: these services keep no
    outbox for it. A failed publish is logged as an error (the action stands; the operator
    sees the gap in the service log), never turned into a failed request after the fact.
    """
    runtime = request.app.state.runtime
    try:
        await publish_audit(
            runtime.bus,
            runtime.info.name,
            action,
            principal,
            target=target,
            detail=detail,
            outcome=outcome,
            client_addr=request.client.host if request.client else None,
            instance=runtime.settings.instance,
        )
    except Exception as exc:
        log.error("audit record %s %s could not be published: %s", action, target, exc)
