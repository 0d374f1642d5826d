"""Payloads of station-wide system events: fleet alarms and audit records."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas import streams

SYSTEM_ALARM_TYPE = "system.alarm"
# An output that failed while it aired a message (a sound card unplugged, a stream server gone):
# on the same stream as instance alarms, so whoever watches the station's health sees it.
OUTPUT_ALARM_TYPE = "system.output_alarm"
AUDIT_RECORD_TYPE = "audit.record"
TOKEN_REVOKED_TYPE = "auth.token_revoked"  # noqa: S105 - an event type, not a secret


class InstanceState(StrEnum):
    UP = "up"
    DOWN = "down"


class SystemAlarm(BaseModel):
    """A service instance went down (missed heartbeats) or came back (``state`` says which)."""

    state: InstanceState
    service: str
    instance: str
    version: str
    last_heartbeat: AwareDatetime = Field(description="time of the last heartbeat seen")
    interval_s: float = Field(description="the instance's announced heartbeat interval")
    silent_for_s: float = Field(ge=0, description="seconds without a heartbeat at detection")
    reason: str


class OutputAlarm(BaseModel):
    """A playout output failed on a message; the message went on on the other outputs."""

    output: str = Field(description="the output's name")
    output_kind: str
    item_id: int = Field(description="the playout item it failed on")
    header: str
    reason: str = Field(description="what failed, in a sentence; never a credential")
    at: AwareDatetime


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditRecord(BaseModel):
    """One privileged action, as written to station-api's audit log.

    Other services record their privileged actions (a manual alert, a relay decision
    confirmed) by publishing this payload as ``audit.record``; see station-api's README.
    """

    action: str = Field(max_length=64, description="dotted verb, e.g. alert.manual")
    actor: str = Field(max_length=255, description="user name, or service name for automation")
    actor_role: str | None = Field(default=None, max_length=32)
    client_addr: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=255)
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    at: AwareDatetime
    service: str = Field(max_length=64, description="service that performed the action")
    detail: dict[str, Any] = Field(default_factory=dict, description="never a secret")


# Where other services put their AuditRecords (streams.AUDIT_RECORDS); station-api reads it
# with a consumer group and writes each entry once (keyed by the envelope id). Re-exported
# beside the payload it carries.
AUDIT_RECORDS = streams.AUDIT_RECORDS
STATION_API_GROUP = streams.STATION_API_GROUP


class TokenRevoked(BaseModel):
    """Access tokens that stop being valid before their ``exp``.

    With ``token_id``: that one token (a logout). Without: every token of ``subject`` issued
    at or before ``not_before`` (disable, demote, delete, password change). ``until`` is when
    the revocation can be forgotten: no token it covers is valid after it anyway.
    """

    subject: str = Field(min_length=1, max_length=128)
    token_id: str | None = Field(default=None, max_length=64)
    not_before: float = Field(description="epoch seconds: tokens issued at or before are void")
    until: float = Field(description="epoch seconds after which this entry no longer matters")
    reason: str = Field(max_length=64)


AUTH_REVOCATIONS = streams.AUTH_REVOCATIONS
