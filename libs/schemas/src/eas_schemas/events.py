"""Event types and their typed payloads (the ``data`` of an envelope)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas import streams
from eas_schemas.cap import CapAlert, CapCertainty, CapMsgType, CapSeverity, CapStatus, CapUrgency
from eas_schemas.monitor_events import (
    AUDIO_INPUT_LEVEL_TYPE,
    MONITOR_STATUS_TYPE,
    SAME_ATTENTION_TONE_TYPE,
    SAME_EOM_TYPE,
    SAME_HEADER_TYPE,
    InputLevel,
    MonitorStatus,
    SameAttentionToneEvent,
    SameEomEvent,
    SameHeaderEvent,
)
from eas_schemas.playout_events import (
    AUDIO_OUTPUT_LEVEL_TYPE,
    PLAYOUT_CANCELLED_TYPE,
    PLAYOUT_COMMAND_TYPE,
    PLAYOUT_FAILED_TYPE,
    PLAYOUT_FINISHED_TYPE,
    PLAYOUT_INTERRUPTED_TYPE,
    PLAYOUT_QUEUED_TYPE,
    PLAYOUT_STARTED_TYPE,
    OutputLevel,
    PlayoutCommand,
    PlayoutEvent,
)
from eas_schemas.relay_events import RELAY_DECISION_TYPE, RelayDecisionEvent
from eas_schemas.relevance import RelevanceMatch
from eas_schemas.station_settings import SETTINGS_CHANGED_TYPE, SettingsChanged
from eas_schemas.streams import StreamSpec
from eas_schemas.system_events import (
    AUDIT_RECORD_TYPE,
    OUTPUT_ALARM_TYPE,
    SYSTEM_ALARM_TYPE,
    TOKEN_REVOKED_TYPE,
    AuditRecord,
    OutputAlarm,
    SystemAlarm,
    TokenRevoked,
)


class FeedKind(StrEnum):
    NWS = "nws"
    IPAWS = "ipaws"
    CAP_FOLDER = "cap-folder"
    CAP_URL = "cap-url"
    MANUAL = "manual"


FeedDeviation = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class AlertIngested(BaseModel):
    """A CAP alert as fetched from a feed, before it is stored."""

    feed: str = Field(description="configured feed name, e.g. nws or cap-folder:/srv/cap")
    feed_kind: FeedKind
    received_at: AwareDatetime
    alert: CapAlert
    raw_sha256: str | None = Field(default=None, description="digest of the source document")
    deviations: list[FeedDeviation] = Field(
        default_factory=list,
        max_length=64,
        description="how the source document broke CAP or its feed's format, and what the "
        "poller did about it; empty for a conformant document",
    )


class AlertState(StrEnum):
    ACTIVE = "active"
    UPDATED = "updated"  # superseded by a later Update
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class AlertSummary(BaseModel):
    """What every alert lifecycle event carries: enough to render and to decide on relay."""

    id: int = Field(description="alerts-api's stable id for the alert")
    identifier: str
    sender: str
    sent: AwareDatetime
    status: CapStatus
    msg_type: CapMsgType
    state: AlertState
    source: FeedKind
    event: str
    same_event: str | None
    severity: CapSeverity
    urgency: CapUrgency
    certainty: CapCertainty
    headline: str | None
    area_desc: str
    same_codes: list[str]
    ugc_codes: list[str]
    onset: AwareDatetime | None
    expires: AwareDatetime | None
    relevant: bool
    relevance_reason: str = Field(description="the first match (or why none), in words")
    relevance_matches: list[RelevanceMatch] = Field(
        default_factory=list,
        description="every (rule, alert code, station code) that makes the alert relevant",
    )
    deviations: list[FeedDeviation] = Field(
        default_factory=list, description="the feed document's deviations (AlertIngested)"
    )
    references: list[int] = Field(
        default_factory=list, description="alerts-api ids of the alerts this one references"
    )


class AlertLifecycle(BaseModel):
    alert: AlertSummary
    reason: str = Field(description="why the state changed, e.g. 'cancelled by <identifier>'")
    previous_state: AlertState | None = None
    by_alert_id: int | None = Field(
        default=None, description="the Update or Cancel that changed the state, if one did"
    )
    cap: CapAlert | None = Field(
        default=None,
        description="the whole CAP document, on alert.created only: what a relay converts "
        "to an EAS message (ECIG), without asking alerts-api for it",
    )


class AlertEventType(StrEnum):
    CREATED = "alert.created"
    UPDATED = "alert.updated"
    CANCELLED = "alert.cancelled"
    EXPIRED = "alert.expired"


class PollerStatus(BaseModel):
    feed: str
    feed_kind: FeedKind
    started_at: AwareDatetime
    duration_s: float = Field(ge=0)
    fetched: int = Field(ge=0, description="documents fetched this cycle")
    new: int = Field(ge=0, description="alerts published that this poller had not seen")
    not_modified: bool = Field(description="the feed answered 304 / nothing changed")
    errors: int = Field(ge=0)
    rejected: list[str] = Field(
        default_factory=list, description="one reason per rejected document (malformed, hostile)"
    )
    next_poll_s: float = Field(ge=0)
    ok: bool


class ServiceHeartbeat(BaseModel):
    service: str
    instance: str
    version: str
    started_at: AwareDatetime
    uptime_s: float
    ready: bool
    interval_s: float
    figures: dict[str, float] = Field(
        default_factory=dict, description="service key figures: lag, pending, dead letters..."
    )
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="the dependency checks this instance's /readyz makes, by name "
        '("database", "redis"): "ok" or what failed ("error: unavailable"); a failed one '
        "makes the beat not ready. Empty where the instance checks none",
    )


class DeadLetter(BaseModel):
    stream: str
    group: str
    entry_id: str
    deliveries: int
    reason: str
    fields: dict[str, str]
    failed_at: datetime


POLLER_STATUS_TYPE = "poller.status"
HEARTBEAT_TYPE = "service.heartbeat"
DEAD_LETTER_TYPE = "bus.deadletter"
ALERT_INGESTED_TYPE = "alerts.ingested"


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    type: str
    stream: str
    payload: builtins.type[BaseModel]
    summary: str


def _spec(type_: str, stream: StreamSpec, payload: type[BaseModel], summary: str) -> EventTypeSpec:
    return EventTypeSpec(type=type_, stream=stream.name, payload=payload, summary=summary)


EVENT_TYPES: tuple[EventTypeSpec, ...] = (
    _spec(ALERT_INGESTED_TYPE, streams.ALERTS_INGESTED, AlertIngested, "A CAP alert fetched"),
    _spec(AlertEventType.CREATED, streams.ALERT_EVENTS, AlertLifecycle, "New alert stored"),
    _spec(AlertEventType.UPDATED, streams.ALERT_EVENTS, AlertLifecycle, "Alert superseded"),
    _spec(AlertEventType.CANCELLED, streams.ALERT_EVENTS, AlertLifecycle, "Alert cancelled"),
    _spec(AlertEventType.EXPIRED, streams.ALERT_EVENTS, AlertLifecycle, "Alert expired"),
    _spec(POLLER_STATUS_TYPE, streams.POLLER_STATUS, PollerStatus, "One poll cycle of a feed"),
    _spec(HEARTBEAT_TYPE, streams.SERVICE_HEARTBEAT, ServiceHeartbeat, "Service is alive"),
    _spec(DEAD_LETTER_TYPE, streams.DEAD_LETTER, DeadLetter, "Entry given up by a group"),
    _spec(SETTINGS_CHANGED_TYPE, streams.SETTINGS_CHANGED, SettingsChanged, "Settings saved"),
    _spec(SYSTEM_ALARM_TYPE, streams.SYSTEM_ALARMS, SystemAlarm, "Instance down or back up"),
    _spec(OUTPUT_ALARM_TYPE, streams.SYSTEM_ALARMS, OutputAlarm, "Playout output failed"),
    _spec(AUDIT_RECORD_TYPE, streams.AUDIT_RECORDS, AuditRecord, "Privileged action to audit"),
    _spec(TOKEN_REVOKED_TYPE, streams.AUTH_REVOCATIONS, TokenRevoked, "Access tokens revoked"),
    _spec(SAME_HEADER_TYPE, streams.SAME_EVENTS, SameHeaderEvent, "SAME header heard"),
    _spec(SAME_EOM_TYPE, streams.SAME_EVENTS, SameEomEvent, "SAME end of message heard"),
    _spec(SAME_ATTENTION_TONE_TYPE, streams.SAME_EVENTS, SameAttentionToneEvent, "Attention tone"),
    _spec(MONITOR_STATUS_TYPE, streams.MONITOR_STATUS, MonitorStatus, "Monitored input state"),
    _spec(AUDIO_INPUT_LEVEL_TYPE, streams.AUDIO_METRICS, InputLevel, "Input level changed"),
    _spec(RELAY_DECISION_TYPE, streams.RELAY_DECISIONS, RelayDecisionEvent, "Relay decision"),
    _spec(PLAYOUT_QUEUED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "Message queued for air"),
    _spec(PLAYOUT_STARTED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "On air on an output"),
    _spec(PLAYOUT_FINISHED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "Aired on an output"),
    _spec(PLAYOUT_INTERRUPTED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "Stopped on air"),
    _spec(PLAYOUT_FAILED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "An output failed"),
    _spec(PLAYOUT_CANCELLED_TYPE, streams.PLAYOUT_EVENTS, PlayoutEvent, "Left the queue"),
    _spec(AUDIO_OUTPUT_LEVEL_TYPE, streams.AUDIO_METRICS, OutputLevel, "Output level"),
    _spec(PLAYOUT_COMMAND_TYPE, streams.PLAYOUT_COMMANDS, PlayoutCommand, "Playout command"),
)


def payload_model(event_type: str) -> type[BaseModel]:
    for spec in EVENT_TYPES:
        if spec.type == event_type:
            return spec.payload
    raise KeyError(f"unknown event type {event_type!r}")
