"""Builders of valid CAP alerts and bus envelopes for tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapInfo,
    CapMsgType,
    CapReference,
    CapScope,
    CapSeverity,
    CapStatus,
    CapUrgency,
    ValuePair,
)
from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import ALERT_INGESTED_TYPE, AlertIngested, FeedKind
from eas_schemas.station_settings import (
    SETTINGS_CHANGED_TYPE,
    SettingsAction,
    SettingsChanged,
    StationSettings,
    redacted,
)

SENDER = "w-nws.webmaster@noaa.gov"


def make_alert(
    *,
    identifier: str | None = None,
    sender: str = SENDER,
    sent: datetime | None = None,
    msg_type: CapMsgType = CapMsgType.ALERT,
    references: list[CapAlert] | None = None,
    event: str = "Tornado Warning",
    same_event: str | None = "TOR",
    same_codes: tuple[str, ...] = ("039035",),
    ugc_codes: tuple[str, ...] = ("OHC035",),
    expires_in: timedelta = timedelta(hours=1),
    severity: CapSeverity = CapSeverity.EXTREME,
    urgency: CapUrgency = CapUrgency.IMMEDIATE,
    status: CapStatus = CapStatus.ACTUAL,
    polygon: list[tuple[float, float]] | None = None,
    languages: tuple[str, ...] = ("en-US",),
) -> CapAlert:
    sent = (sent or datetime.now(UTC)).replace(microsecond=0)
    geocodes = [ValuePair(value_name="SAME", value=c) for c in same_codes]
    geocodes += [ValuePair(value_name="UGC", value=c) for c in ugc_codes]
    infos = [
        CapInfo(
            language=lang,
            categories=["Met"],
            event=event,
            urgency=urgency,
            severity=severity,
            certainty=CapCertainty.OBSERVED,
            event_codes=[ValuePair(value_name="SAME", value=same_event)] if same_event else [],
            effective=sent,
            onset=sent,
            expires=sent + expires_in,
            headline=f"{event} issued {sent.isoformat()}",
            description="A tornado was observed near Cleveland.",
            instruction="Take shelter now.",
            areas=[
                CapArea(
                    area_desc="Cuyahoga, OH",
                    geocodes=geocodes,
                    polygons=[polygon] if polygon else [],
                )
            ],
        )
        for lang in languages
    ]
    return CapAlert(
        identifier=identifier or f"urn:oid:2.49.0.1.840.0.{uuid.uuid4().hex}",
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=CapScope.PUBLIC,
        references=[
            CapReference(sender=r.sender, identifier=r.identifier, sent=r.sent)
            for r in references or []
        ],
        infos=infos,
    )


def ingested(alert: CapAlert, feed: str = "test-feed") -> AlertIngested:
    return AlertIngested(
        feed=feed, feed_kind=FeedKind.CAP_FOLDER, received_at=datetime.now(UTC), alert=alert
    )


def ingested_envelope(alert: CapAlert, feed: str = "test-feed") -> EventEnvelope[Any]:
    return EventEnvelope[AlertIngested](
        type=ALERT_INGESTED_TYPE,
        source="tests/pollers",
        subject=f"{alert.sender}/{alert.identifier}",
        data=ingested(alert, feed),
    )


def settings_changed_envelope(
    version: int, sections: list[str] | None = None
) -> EventEnvelope[SettingsChanged]:
    """The `settings.changed` announcement station-api publishes after a commit."""
    return EventEnvelope[SettingsChanged](
        type=SETTINGS_CHANGED_TYPE,
        source="station-api/test",
        subject=f"settings/{version}",
        data=SettingsChanged(
            version=version,
            previous_version=version - 1,
            action=SettingsAction.UPDATE,
            sections=sections or ["location"],
            actor="tester",
            changed_at=datetime.now(UTC),
        ),
    )


def current_settings_body(version: int, settings: StationSettings) -> str:
    """The `<ns>:settings.current` document station-api writes (secrets redacted)."""
    return json.dumps({"version": version, "settings": redacted(settings)})
