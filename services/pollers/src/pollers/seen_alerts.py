"""Which alerts this station's pollers already published, by CAP identity.

Kept in Redis with a TTL of a few days so a restart does not republish every active alert.
A key is written only after the alert's XADD succeeded; alerts-api is idempotent anyway, so
this only saves traffic and never decides whether an alert is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from eas_schemas.cap import CapAlert
from pollers.cap_xml import ParsedAlert
from pollers.state_keys import digest, state_key

DEFAULT_SEEN_TTL_S = 4 * 24 * 3600


def alert_identity(alert: CapAlert) -> str:
    """``sender/identifier/sent`` (sent in UTC ISO 8601): the envelope subject too."""
    return f"{alert.sender}/{alert.identifier}/{alert.sent.isoformat()}"


class SeenAlerts:
    def __init__(
        self, client: redis.Redis, namespace: str = "", ttl_s: int = DEFAULT_SEEN_TTL_S
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_s = ttl_s

    def key(self, identity: str) -> str:
        return state_key(self.namespace, "seen", digest(identity))

    def unseen(self, alerts: Sequence[ParsedAlert]) -> list[ParsedAlert]:
        if not alerts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for parsed in alerts:
            pipe.exists(self.key(alert_identity(parsed.alert)))
        found: list[Any] = pipe.execute()
        return [parsed for parsed, hit in zip(alerts, found, strict=True) if not hit]

    def mark(self, alert: CapAlert) -> None:
        self.client.set(self.key(alert_identity(alert)), "1", ex=self.ttl_s)
