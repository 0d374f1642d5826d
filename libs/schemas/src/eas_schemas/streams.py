"""Every stream of the bus: its name, what it carries, who reads it and how long it is kept.

Services never write a stream name as a literal; they take these constants. A deployment may
put all streams under a namespace prefix (``<ns>:alerts.ingested``) so several stations, or
parallel tests, can share one Redis; the bus applies the prefix, the names here stay bare.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Retention(Enum):
    """How a stream is capped (approximate MAXLEN, trimmed on every XADD)."""

    HISTORY = 200_000  # alert/decode history: days of traffic, for replay and resume
    STATUS = 10_000  # status and heartbeat: minutes to hours
    METRICS = 2_000  # high-rate metrics: seconds to minutes


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    description: str
    retention: Retention
    public: bool  # fanned out to browsers by ws-broadcaster

    @property
    def maxlen(self) -> int:
        return self.retention.value


ALERTS_INGESTED = StreamSpec(
    "alerts.ingested",
    "CAP alerts fetched by the pollers, to be stored once by alerts-api (consumer group).",
    Retention.HISTORY,
    public=False,
)
ALERT_EVENTS = StreamSpec(
    "alert.events",
    "Alert lifecycle: alert.created, alert.updated, alert.cancelled, alert.expired.",
    Retention.HISTORY,
    public=True,
)
POLLER_STATUS = StreamSpec(
    "poller.status", "One event per poll cycle per feed.", Retention.STATUS, public=True
)
SERVICE_HEARTBEAT = StreamSpec(
    "service.heartbeat",
    "Every service instance says it is alive every few seconds.",
    Retention.STATUS,
    public=True,
)
DEAD_LETTER = StreamSpec(
    "bus.deadletter",
    "Entries a consumer group gave up on, with the reason and the original entry.",
    Retention.HISTORY,
    public=False,
)

SAME_EVENTS = StreamSpec(
    "same.events",
    "What the monitors heard: same.header, same.eom, same.attention_tone.",
    Retention.HISTORY,
    public=True,
)
MONITOR_STATUS = StreamSpec(
    "monitor.status",
    "Per monitored input: running, signal, decoder state, restarts, errors (on change).",
    Retention.STATUS,
    public=True,
)
AUDIO_METRICS = StreamSpec(
    "audio.metrics",
    "Input and output levels (peak/RMS dBFS, silence, clipping), a few per second at most.",
    Retention.METRICS,
    public=True,
)
SETTINGS_CHANGED = StreamSpec(
    "settings.changed",
    "A new settings version was saved; services apply it without a restart.",
    Retention.STATUS,
    public=True,
)
SYSTEM_ALARMS = StreamSpec(
    "system.alarm",
    "A service instance went down (missed heartbeats) or came back.",
    Retention.STATUS,
    public=True,
)

PLAYOUT_EVENTS = StreamSpec(
    "playout.events",
    "audio-control's playout: playout.queued/started/finished/interrupted/failed/cancelled, "
    "per item and output.",
    Retention.HISTORY,
    public=True,
)

PLAYOUT_COMMANDS = StreamSpec(
    "playout.commands",
    "Commands to the playout worker: operators' (stop, test tone, key, status), each "
    "answered on its reply key, and audio-control's preempt for an EAN's decision.",
    Retention.STATUS,
    public=False,
)

AUDIT_RECORDS = StreamSpec(
    "audit.records",
    "Privileged actions done in other services (manual alert, relay confirmed), for the "
    "station's audit log (station-api, consumer group).",
    Retention.HISTORY,
    public=False,
)

AUTH_REVOCATIONS = StreamSpec(
    "auth.revocations",
    "Access tokens revoked before their expiry (logout; a user disabled, demoted, deleted or "
    "given a new password): every verifier and the broadcaster honour them.",
    Retention.STATUS,
    public=False,
)

RELAY_DECISIONS = StreamSpec(
    "relay.decisions",
    "audio-control's relay decisions: relay.decision, the whole current state of a decision "
    "(relay now, after confirmation, or ignore, with every rule checked) at each change.",
    Retention.HISTORY,
    public=True,
)

ALL_STREAMS: tuple[StreamSpec, ...] = (
    ALERTS_INGESTED,
    ALERT_EVENTS,
    POLLER_STATUS,
    SERVICE_HEARTBEAT,
    DEAD_LETTER,
    SAME_EVENTS,
    MONITOR_STATUS,
    AUDIO_METRICS,
    SETTINGS_CHANGED,
    SYSTEM_ALARMS,
    AUDIT_RECORDS,
    AUTH_REVOCATIONS,
    RELAY_DECISIONS,
    PLAYOUT_EVENTS,
    PLAYOUT_COMMANDS,
)

# Consumer groups (work that must happen once) are named after the owning service.
ALERTS_API_GROUP = "alerts-api"
STATION_API_GROUP = "station-api"
EAS_MONITOR_GROUP = "eas-monitor"
AUDIO_CONTROL_GROUP = "audio-control"


_BY_NAME: dict[str, StreamSpec] = {spec.name: spec for spec in ALL_STREAMS}


def stream_by_name(name: str) -> StreamSpec | None:
    """The stream spec of a bare stream name (as stored in an outbox row), or None."""
    return _BY_NAME.get(name)
