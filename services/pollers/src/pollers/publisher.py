"""Alerts and poll status onto the bus, as `EventEnvelope`s through `SyncBus`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from eas_schemas.envelope import EventEnvelope
from eas_schemas.events import (
    ALERT_INGESTED_TYPE,
    POLLER_STATUS_TYPE,
    AlertIngested,
    FeedKind,
    PollerStatus,
)
from eas_schemas.streams import ALERTS_INGESTED, POLLER_STATUS
from pollers.cap_xml import ParsedAlert
from pollers.seen_alerts import SeenAlerts, alert_identity
from servicekit.bus import SyncBus


class AlertPublisher:
    def __init__(self, bus: SyncBus, seen: SeenAlerts, source: str) -> None:
        self.bus = bus
        self.seen = seen
        self.source = source

    def publish_new(self, feed: str, kind: FeedKind, alerts: Sequence[ParsedAlert]) -> int:
        """Publish the alerts not published before; returns how many were.

        Raises redis errors as they come: an alert is marked seen only after its XADD, so
        whatever did not make it is published by a later cycle.
        """
        unique: dict[str, ParsedAlert] = {}
        for parsed in alerts:
            unique.setdefault(alert_identity(parsed.alert), parsed)
        # Oldest first, so an Update or Cancel never reaches the store before what it refers to.
        fresh = sorted(self.seen.unseen(list(unique.values())), key=lambda p: p.alert.sent)
        received_at = datetime.now(UTC)
        for parsed in fresh:
            envelope = EventEnvelope[AlertIngested](
                type=ALERT_INGESTED_TYPE,
                source=self.source,
                subject=alert_identity(parsed.alert),
                data=AlertIngested(
                    feed=feed,
                    feed_kind=kind,
                    received_at=received_at,
                    alert=parsed.alert,
                    raw_sha256=parsed.raw_sha256,
                    deviations=list(parsed.deviations),
                ),
            )
            self.bus.publish(ALERTS_INGESTED, envelope)
            self.seen.mark(parsed.alert)
        return len(fresh)

    def publish_status(self, status: PollerStatus) -> None:
        envelope = EventEnvelope[PollerStatus](
            type=POLLER_STATUS_TYPE, source=self.source, subject=status.feed, data=status
        )
        self.bus.publish(POLLER_STATUS, envelope)
