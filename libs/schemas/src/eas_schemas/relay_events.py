"""Payload of ``relay.decision`` (audio-control): one relay decision in its whole current state.

There is one event type, not one per transition. Every change of a decision (made, merged with
the other source's copy, confirmed, rejected, expired, withdrawn, superseded, forwarded, a
message attached) is announced with the decision's complete state. A reader that keeps only
the latest event per ``decision_id`` knows everything, and a reader that missed events loses
nothing. ``revision`` orders the events of one decision.

``checks`` is the whole explanation: every rule audio-control evaluated, in order, with the
values it compared. The ``action`` follows from the checks alone: ``ignore`` if any check's
``consequence`` is ``ignore``, else ``confirm`` if any check asks for confirmation, else ``relay``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas.station_settings import ConfirmationTimeoutAction

RELAY_DECISION_TYPE = "relay.decision"


class DecisionState(StrEnum):
    """Where a decision stands. The first three are what the rules give; the rest follow."""

    PENDING_CONFIRMATION = "pending_confirmation"  # waits for an operator until confirm_by
    SCHEDULED = "scheduled"  # will be relayed at relay_at
    IGNORED = "ignored"  # a rule said no; an operator may still forward it
    CONFIRMED = "confirmed"  # an operator confirmed a pending decision; it will be relayed
    REJECTED = "rejected"  # an operator rejected a pending decision
    EXPIRED = "expired"  # the confirmation timed out (on_timeout said ignore)
    WITHDRAWN = "withdrawn"  # a Cancel, or an Update that moved it out of the station's area
    SUPERSEDED = "superseded"  # an Update replaced it (the Update has its own decision)
    FORWARDED = "forwarded"  # an operator forwarded an ignored or expired decision
    AIRED = "aired"  # its message aired (playout finished it on at least one output)


#: States a Cancel, an Update or the other source's copy may still change.
OPEN_STATES = frozenset(
    {DecisionState.PENDING_CONFIRMATION, DecisionState.SCHEDULED, DecisionState.CONFIRMED}
)
#: States an operator may forward by hand (and audited as such).
FORWARDABLE_STATES = frozenset({DecisionState.IGNORED, DecisionState.EXPIRED})


class RelayAction(StrEnum):
    """What the rules said."""

    RELAY = "relay"
    CONFIRM = "confirm"
    IGNORE = "ignore"


class RelaySource(StrEnum):
    CAP = "cap"  # a CAP alert from alerts-api
    AIR = "air"  # a SAME header heard by eas-monitor


class PrecedenceClass(StrEnum):
    """Air order: EAN first, then national, state, local, and tests last."""

    EAN = "ean"
    NATIONAL = "national"
    STATE = "state"
    LOCAL = "local"
    TEST = "test"


#: ``precedence`` of each class: lower airs first.
PRECEDENCE: dict[PrecedenceClass, int] = {
    PrecedenceClass.EAN: 0,
    PrecedenceClass.NATIONAL: 1,
    PrecedenceClass.STATE: 2,
    PrecedenceClass.LOCAL: 3,
    PrecedenceClass.TEST: 4,
}

CheckValue = str | list[str] | int | float | bool | None


class RuleCheck(BaseModel):
    """One rule evaluated for a decision, with the values it compared.

    ``rule`` is a stable id (``relay_enabled``, ``location``, ``event``, ``originator``,
    ``cap_status``, ``msg_type``, ``scope``, ``blockchannel``, ``must_carry``, ``national``,
    ``severity_urgency``, ``air_agreement``, ``deviation``, ``own_transmission``, ``stale``,
    ``expired``, ``feed_deviation`` (a CAP feed document the poller repaired; informational),
    ``not_yet_effective``, ``confirmation``, ``delay``, ``header`` (an on-air header
    re-encoded), and from the CAP-to-EAS conversion ``info``, ``eas_org``, ``event_code``,
    ``geocode``, ``duration``, ``audio_resource``, ``alert_text``).
    It stays a string, not an enum, so a reader built before a new rule was added still
    reads the event.
    """

    rule: str = Field(max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    passed: bool = Field(description="False when this check keeps the decision from relaying")
    consequence: RelayAction | None = Field(
        default=None,
        description="what a failed check forces: ignore, or confirm (wait for an operator)",
    )
    detail: str = Field(description="one plain-language sentence with the values compared")
    values: dict[str, CheckValue] = Field(default_factory=dict)
    reference: str | None = Field(
        default=None, description="the rule's source, e.g. 'ECIG 3.9' or '47 CFR 11.54'"
    )


class ReceivedCopy(BaseModel):
    """The same transmission received from the other source and merged into this decision."""

    source: RelaySource
    received_at: AwareDatetime
    alert_id: int | None = Field(default=None, description="alerts-api id (CAP copy)")
    alert_identifier: str | None = None
    heard_event_id: str | None = Field(default=None, description="same.header envelope id")
    header: str | None = Field(default=None, description="the header as received")
    confidence: float | None = Field(default=None, ge=0, le=1)
    deviations: list[str] = Field(default_factory=list)


class RelayDecisionEvent(BaseModel):
    """``relay.decision``: a relay decision in its whole current state."""

    decision_id: int = Field(description="audio-control's stable id of the decision")
    revision: int = Field(ge=1, description="1 when made; +1 at every change of the decision")
    state: DecisionState
    action: RelayAction = Field(description="what the rules said when the decision was made")
    source: RelaySource = Field(description="what the decision was made from")
    decided_at: AwareDatetime = Field(description="when the decision entered this state")
    alert_id: int | None = Field(default=None, description="alerts-api id of the CAP alert")
    alert_identifier: str | None = Field(default=None, description="CAP identifier")
    alert_sender: str | None = Field(default=None, description="CAP sender")
    heard_event_id: str | None = Field(
        default=None, description="envelope id of the same.header the decision was made from"
    )
    header: str | None = Field(
        default=None,
        description="the ZCZC header that would air, with the station's callsign "
        "(None when no valid header can be built)",
    )
    originator: str | None = Field(description="SAME ORG (CAP: EAS-ORG, default CIV)")
    event_code: str | None = Field(description="SAME EEE; None for CAP without a SAME code")
    event_name: str
    locations: list[str] = Field(description="PSSCCC codes of the header (at most 31)")
    issued: AwareDatetime = Field(description="CAP sent, or the header's JJJHHMM")
    purge_at: AwareDatetime | None = Field(
        description="CAP expires (or its documented default), or the header's issue + TTTT"
    )
    precedence: int = Field(ge=0, description="air order: lower first (0 = EAN)")
    precedence_class: PrecedenceClass
    relay_at: AwareDatetime | None = Field(
        default=None, description="when it airs (scheduled, confirmed, forwarded)"
    )
    confirm_by: AwareDatetime | None = Field(
        default=None, description="a pending confirmation times out at this time"
    )
    on_timeout: ConfirmationTimeoutAction | None = Field(
        default=None,
        description="what happens at confirm_by without an operator: ignore (expired) or relay",
    )
    checks: list[RuleCheck] = Field(description="every rule evaluated, in order")
    deviations: list[str] = Field(
        default_factory=list, description="deviations from 47 CFR 11.31 of an on-air header"
    )
    also_received: list[ReceivedCopy] = Field(
        default_factory=list, description="the other source's copies merged into this decision"
    )
    actor: str | None = Field(
        default=None, description="who confirmed, rejected or forwarded it (None: automatic)"
    )
    message_id: int | None = Field(default=None, description="the generated EAS message")
    reason: str = Field(description="one plain sentence: why the decision is in this state")
