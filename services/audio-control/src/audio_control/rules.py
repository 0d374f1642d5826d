"""Relay rules: does the station relay this alert or heard header, when, and why. Pure.

``evaluate`` records every rule it applies as a ``RuleCheck`` with the values compared; the
action follows from the checks alone (any ``ignore`` consequence -> ignore, else any
``confirm`` -> wait for an operator, else relay), so the explanation and the decision cannot
disagree. No I/O and no clock: ``now`` is a parameter.

The service layer calls, in this order: ``convert`` (``cap_to_eas``) for a CAP alert, then
``Candidate.from_cap`` or ``Candidate.from_air``, ``same_transmission`` against the open
decisions (the same transmission from the other source is merged, not decided again),
``evaluate``, and ``decision_event`` to announce the result. On a confirmation or a timed
relay it asks ``relay_time`` when the message airs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from audio_control.cap_to_eas import Conversion, purge_code
from eas_same.header import MAX_LOCATIONS, SameHeader, SameHeaderError
from eas_schemas.cap import CapAlert, CapMsgType, CapScope, CapSeverity, CapStatus, CapUrgency
from eas_schemas.monitor_events import SameHeaderEvent
from eas_schemas.relay_events import (
    PRECEDENCE,
    CheckValue,
    DecisionState,
    PrecedenceClass,
    RelayAction,
    RelayDecisionEvent,
    RelaySource,
    RuleCheck,
)
from eas_schemas.same_codes import (
    NATIONAL_CODE,
    NATIONAL_EVENTS,
    TEST_EVENTS,
    LocationCode,
    deviation_text,
    location_covers,
)
from eas_schemas.station_settings import (
    SEVERITY_ORDER,
    URGENCY_ORDER,
    ConfirmationTimeoutAction,
    LocationSettings,
    RelayRules,
    validate_callsign,
)

__all__ = [
    "FULL_AGREEMENT",
    "Candidate",
    "Evaluation",
    "Transmission",
    "TransmissionMatch",
    "decision_event",
    "evaluate",
    "initial_state",
    "match_transmissions",
    "precedence_of",
    "relay_time",
    "same_transmission",
]

#: Bursts that must agree for a heard header to be relayed without a person (47 CFR 11.33
#: has a decoder act on two of three; a relay on air is held to all three).
FULL_AGREEMENT = 3

# Confirmations that exist because the message itself is doubtful: these never become a
# timed relay, whatever confirmation_timeout_action says; an unanswered one is ignored.
RMT_RELAY_WINDOW = timedelta(minutes=60)
_DOUBT_RULES = frozenset({"air_agreement", "deviation", "event_code", "location"})


# ---- candidates --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a decision is made about: a converted CAP alert, or a header heard on air."""

    source: RelaySource
    header: SameHeader | None  # what would air, with the station's callsign
    originator: str | None
    event_code: str | None  # for CAP without a SAME code: looked up from the event name
    event_name: str
    locations: tuple[str, ...]  # the header's (at most 31)
    all_locations: tuple[str, ...]  # every location received (more than 31 possible)
    issued: datetime
    purge_at: datetime | None
    # CAP
    conversion: Conversion | None = None
    status: CapStatus | None = None
    msg_type: CapMsgType | None = None
    scope: CapScope | None = None
    severity: CapSeverity | None = None
    urgency: CapUrgency | None = None
    effective: datetime | None = None
    onset: datetime | None = None
    alert_id: int | None = None
    alert_identifier: str | None = None
    alert_sender: str | None = None
    feed_deviations: tuple[str, ...] = ()  # what the poller repaired in the feed document
    # air
    heard_header: str | None = None  # the header as received
    header_error: str | None = None  # why it cannot be re-encoded in the standard form
    confidence: float | None = None
    bursts: int | None = None
    agreed: int | None = None
    deviations: tuple[str, ...] = ()
    heard_own_callsign: bool = False
    heard_event_id: str | None = None
    # when the station received it (CAP: announced by alerts-api; air: heard)
    received_at: datetime | None = None

    @classmethod
    def from_cap(
        cls, alert: CapAlert, conversion: Conversion, *, alert_id: int | None = None
    ) -> Candidate:
        info = conversion.info
        header = conversion.header or conversion.inferred_header
        return cls(
            source=RelaySource.CAP,
            header=header,
            originator=conversion.originator,
            event_code=conversion.event_code or conversion.inferred_event_code,
            event_name=info.event if info is not None else "",
            locations=conversion.locations,
            all_locations=conversion.locations + conversion.dropped_locations,
            issued=alert.sent,
            purge_at=conversion.expires,
            conversion=conversion,
            status=alert.status,
            msg_type=alert.msg_type,
            scope=alert.scope,
            severity=info.severity if info is not None else None,
            urgency=info.urgency if info is not None else None,
            effective=info.effective if info is not None else None,
            onset=info.onset if info is not None else None,
            alert_id=alert_id,
            alert_identifier=alert.identifier,
            alert_sender=alert.sender,
        )

    @classmethod
    def from_air(
        cls,
        event: SameHeaderEvent,
        *,
        callsign: str,
        heard_event_id: str | None = None,
        deviations: Sequence[str] | None = None,
    ) -> Candidate:
        """A heard header, re-encoded in the standard form with the station's callsign.

        A purge time off the legal steps is rounded up to the next one and only the first 31
        locations go into the header (strict on send); the deviations stay on the decision.
        """
        own = validate_callsign(callsign)
        fields = event.header
        all_locations = tuple(loc.code for loc in fields.locations)
        duration = purge_code(timedelta(minutes=fields.duration_minutes))
        header: SameHeader | None = None
        error: str | None = None
        if duration is None:
            error = f"purge time +{fields.duration} is zero: the message is already expired"
        else:
            try:
                header = SameHeader.create(
                    originator=fields.originator,
                    event=fields.event_code,
                    locations=all_locations[:MAX_LOCATIONS],
                    duration=duration,
                    issued=fields.issued,
                    callsign=own,
                )
            except SameHeaderError as exc:
                error = str(exc)
        return cls(
            source=RelaySource.AIR,
            header=header,
            originator=fields.originator,
            event_code=fields.event_code,
            event_name=fields.event_name,
            locations=all_locations[:MAX_LOCATIONS],
            all_locations=all_locations,
            issued=fields.issued,
            purge_at=fields.purge_at,
            heard_header=event.text,
            header_error=error,
            confidence=event.confidence,
            bursts=event.bursts,
            agreed=event.agreed,
            deviations=tuple(deviations if deviations is not None else event.deviations),
            heard_own_callsign=fields.callsign.rstrip() == own.rstrip(),
            heard_event_id=heard_event_id,
        )


# ---- precedence -------------------------------------------------------------------------------


def precedence_of(
    event_code: str | None, originator: str | None, locations: Sequence[str]
) -> tuple[int, PrecedenceClass]:
    """Air order of a message: EAN first, then national, state, local, and tests last.

    National: the events the SAME code table classes national (NPT, NIC and the retired EAT),
    a PEP originator, or the national code 000000. Tests (the table's test class: RWT, RMT,
    DMO, NMN, NAT, NST) are last even when statewide; NPT is national, not a test, as 47 CFR
    11.61 treats it. State: any statewide location 0SS000. Local: everything else.
    """
    if event_code == "EAN":
        cls = PrecedenceClass.EAN
    elif event_code in NATIONAL_EVENTS:
        cls = PrecedenceClass.NATIONAL
    elif event_code in TEST_EVENTS:
        cls = PrecedenceClass.TEST
    elif originator == "PEP" or NATIONAL_CODE in locations:
        cls = PrecedenceClass.NATIONAL
    elif any(LocationCode.parse(code).is_statewide for code in locations):
        cls = PrecedenceClass.STATE
    else:
        cls = PrecedenceClass.LOCAL
    return PRECEDENCE[cls], cls


# ---- duplicates -------------------------------------------------------------------------------


class Transmission(Protocol):
    """What two receptions are compared on: a Candidate and a RelayDecisionEvent both are."""

    @property
    def event_code(self) -> str | None: ...
    @property
    def locations(self) -> Sequence[str]: ...
    @property
    def issued(self) -> datetime: ...
    @property
    def purge_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class TransmissionMatch:
    same: bool
    reason: str


def match_transmissions(a: Transmission, b: Transmission, window_s: float) -> TransmissionMatch:
    """Are two receptions (CAP and air, or two of one kind) the same transmission?

    ECIG 3.11 calls two EAS messages duplicates when their ZCZC strings are equal without the
    LLLLLLLL field. A CAP alert and its on-air copy are compared on the same fields with what
    legitimately differs between them allowed: the event code must be equal; the locations
    equal as a set (a relaying station may reorder them); the issue times within the window
    (CAP ``sent`` has seconds, JJJHHMM minutes, and a relayed copy is later); and the valid
    times equal once each is rounded up to a legal purge step, as the CAP alert's is when it
    is converted. The originator is not compared: a CAP alert without EAS-ORG is CIV by the
    guide while its on-air copy may say WXR.
    """
    if a.event_code is None or b.event_code is None:
        return TransmissionMatch(False, "an event code is missing")
    if a.event_code != b.event_code:
        return TransmissionMatch(False, f"events differ ({a.event_code} / {b.event_code})")
    if set(a.locations) != set(b.locations):
        only_a = sorted(set(a.locations) - set(b.locations))
        only_b = sorted(set(b.locations) - set(a.locations))
        return TransmissionMatch(False, f"locations differ (only {only_a} / only {only_b})")
    apart = abs((a.issued - b.issued).total_seconds())
    if apart > window_s:
        return TransmissionMatch(
            False, f"issued {apart:.0f} s apart, more than the {window_s:.0f} s window"
        )
    if a.purge_at is not None and b.purge_at is not None:
        ta, tb = purge_code(a.purge_at - a.issued), purge_code(b.purge_at - b.issued)
        if ta != tb:
            return TransmissionMatch(False, f"purge times differ (+{ta} / +{tb})")
    return TransmissionMatch(
        True,
        f"same {a.event_code} for the same {len(set(a.locations))} locations, issued "
        f"{apart:.0f} s apart",
    )


def same_transmission(a: Transmission, b: Transmission, window_s: float) -> bool:
    return match_transmissions(a, b, window_s).same


# ---- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    action: RelayAction
    checks: tuple[RuleCheck, ...]
    precedence: int
    precedence_class: PrecedenceClass
    relay_at: datetime | None  # action relay: when it airs
    confirm_by: datetime | None  # action confirm: when the wait times out
    on_timeout: ConfirmationTimeoutAction | None  # action confirm: what the timeout does
    reason: str
    header: SameHeader | None = field(default=None)  # what airs, with the station's callsign


# Positional-only, so every keyword argument is a compared value.
def _ok(rule: str, detail: str, reference: str | None = None, /, **values: CheckValue) -> RuleCheck:
    return RuleCheck(rule=rule, passed=True, detail=detail, values=values, reference=reference)


def _fail(
    rule: str,
    consequence: RelayAction,
    detail: str,
    reference: str | None = None,
    /,
    **values: CheckValue,
) -> RuleCheck:
    return RuleCheck(
        rule=rule,
        passed=False,
        consequence=consequence,
        detail=detail,
        values=values,
        reference=reference,
    )


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _hold_until(candidate: Candidate, rules: RelayRules) -> datetime | None:
    times = [candidate.effective]
    if rules.hold_until_onset:
        times.append(candidate.onset)
    known = [t for t in times if t is not None]
    return max(known) if known else None


def relay_time(candidate: Candidate, rules: RelayRules, at: datetime) -> datetime:
    """When a message decided (or confirmed) at ``at`` airs: not before it is in effect, then
    after the station's relay delay, except an EAN, which airs at once (47 CFR 11.54)."""
    start = at
    hold = _hold_until(candidate, rules)
    if hold is not None and hold > start:
        start = hold
    if candidate.event_code == "EAN":
        return start
    return start + timedelta(seconds=rules.delay_s)


def _cap_checks(candidate: Candidate, rules: RelayRules) -> list[RuleCheck]:
    conversion = candidate.conversion
    assert conversion is not None  # a CAP candidate always has one (from_cap)
    out: list[RuleCheck] = []
    if candidate.feed_deviations:
        # Shown, not held: what was repaired (a sender taken from the CAP XML, an unreadable
        # polygon) leaves the alert's meaning intact, and a missed alert is the worse failure.
        out.append(
            _ok(
                "feed_deviation",
                "The feed document was not conformant and was repaired by the poller "
                f"({', '.join(candidate.feed_deviations)}).",
                deviations=list(candidate.feed_deviations),
            )
        )
    status = candidate.status
    if status is CapStatus.ACTUAL:
        out.append(_ok("cap_status", "Status is Actual.", "ECIG 3.9", status=status.value))
    elif status is CapStatus.TEST and rules.allow_test_status:
        out.append(
            _ok(
                "cap_status",
                "Status is Test, relayed because this station allows Test (a lab setting; "
                "ECIG 3.9 forbids it on a real station).",
                "ECIG 3.9",
                status=status.value,
                allow_test_status=True,
            )
        )
    else:
        value = status.value if status is not None else None
        out.append(
            _fail(
                "cap_status",
                RelayAction.IGNORE,
                f"Status is {value}: only Actual messages air.",
                "ECIG 3.9",
                status=value,
                allow_test_status=rules.allow_test_status,
            )
        )
    msg_type = candidate.msg_type
    listed = [m.value for m in rules.msg_types]
    if msg_type in rules.msg_types:
        out.append(
            _ok(
                "msg_type",
                f"msgType {msg_type.value} is relayed.",
                "ECIG 3.8",
                msg_type=msg_type.value,
                relayed=listed,
            )
        )
    else:
        value = msg_type.value if msg_type is not None else None
        why = (
            "a Cancel never airs; it withdraws the alert it references"
            if msg_type is CapMsgType.CANCEL
            else "this station does not relay it"
            if msg_type in (CapMsgType.ALERT, CapMsgType.UPDATE)
            else "it is not processed"
        )
        out.append(
            _fail(
                "msg_type",
                RelayAction.IGNORE,
                f"msgType {value}: {why}.",
                "ECIG 3.8",
                msg_type=value,
                relayed=listed,
            )
        )
    scope = candidate.scope
    scopes = [s.value for s in rules.scopes]
    if scope in rules.scopes:
        out.append(
            _ok(
                "scope",
                f"Scope {scope.value} is relayed.",
                "ECIG 4",
                scope=scope.value,
                relayed=scopes,
            )
        )
    else:
        value = scope.value if scope is not None else None
        out.append(
            _fail(
                "scope",
                RelayAction.IGNORE,
                f"Scope {value} is not relayed.",
                "ECIG 4",
                scope=value,
                relayed=scopes,
            )
        )
    blocked = sorted(conversion.blockchannels)
    if "EAS" in conversion.blockchannels:
        out.append(
            _fail(
                "blockchannel",
                RelayAction.IGNORE,
                "The originator blocked the EAS channel (BLOCKCHANNEL EAS): never on air.",
                "IPAWS CAP profile",
                blockchannels=blocked,
            )
        )
    else:
        out.append(
            _ok(
                "blockchannel",
                "EAS is not blocked." + (f" Blocked: {', '.join(blocked)}." if blocked else ""),
                "IPAWS CAP profile",
                blockchannels=blocked,
            )
        )
    # The header checks of the guide. Without a SAME event code the alert can still be
    # offered for confirmation (RelayRules.cap_without_event_code); otherwise a failure here
    # is an ignore, as the guide says.
    without_code = conversion.sent_event_code is None
    severity_check = _severity_urgency_check(candidate, rules) if without_code else None
    offered = (
        severity_check is not None
        and severity_check.passed
        and conversion.inferred_event_code is not None
    )
    for check in conversion.header_checks:
        if check.rule == "event_code" and offered:
            check = check.model_copy(
                update={
                    "consequence": RelayAction.CONFIRM,
                    "detail": check.detail
                    + " This station offers such alerts for an operator's confirmation "
                    f"as {conversion.inferred_event_code}; never automatically.",
                }
            )
        out.append(check)
    if severity_check is not None:
        out.append(severity_check)
    return out


def _severity_urgency_check(candidate: Candidate, rules: RelayRules) -> RuleCheck:
    offer = rules.cap_without_event_code
    severity = candidate.severity.value if candidate.severity else None
    urgency = candidate.urgency.value if candidate.urgency else None
    values: dict[str, CheckValue] = {
        "severity": severity,
        "urgency": urgency,
        "min_severity": offer.min_severity.value,
        "min_urgency": offer.min_urgency.value,
        "enabled": offer.enabled,
    }
    thresholds = f"({offer.min_severity.value}, {offer.min_urgency.value})"
    if not offer.enabled:
        return _fail(
            "severity_urgency",
            RelayAction.IGNORE,
            "CAP alerts without a SAME event code are not offered at this station "
            "(cap_without_event_code is off).",
            "ECIG 3.4.1.2",
            **values,
        )
    if _at_least(candidate.severity, offer.min_severity, SEVERITY_ORDER) and _at_least(
        candidate.urgency, offer.min_urgency, URGENCY_ORDER
    ):
        return _ok(
            "severity_urgency",
            f"Severity {severity} and urgency {urgency} reach the thresholds {thresholds}.",
            "ECIG 3.4.1.2",
            **values,
        )
    return _fail(
        "severity_urgency",
        RelayAction.IGNORE,
        f"Severity {severity} and urgency {urgency} do not reach the thresholds "
        f"{thresholds} for an alert without a SAME event code.",
        "ECIG 3.4.1.2",
        **values,
    )


def _at_least(value: object, minimum: object, order: Sequence[object]) -> bool:
    return value in order and order.index(value) >= order.index(minimum)


def _air_checks(candidate: Candidate, rules: RelayRules) -> list[RuleCheck]:
    out: list[RuleCheck] = []
    heard = candidate.heard_header
    if candidate.heard_own_callsign:
        out.append(
            _fail(
                "own_transmission",
                RelayAction.IGNORE,
                "The header carries this station's own callsign: it is our own transmission.",
                header=heard,
            )
        )
    else:
        out.append(_ok("own_transmission", "Sent by another station.", header=heard))
    if candidate.header is None:
        out.append(
            _fail(
                "header",
                RelayAction.IGNORE,
                f"The header cannot be re-encoded in the standard form: {candidate.header_error}.",
                "47 CFR 11.31",
                header=heard,
            )
        )
    else:
        out.append(
            _ok(
                "header",
                f"Re-encoded with this station's callsign: {candidate.header.text}",
                "47 CFR 11.31",
                header=heard,
                relayed=candidate.header.text,
            )
        )
    agreed = candidate.agreed or 0
    confidence = candidate.confidence or 0.0
    agreement: dict[str, CheckValue] = {
        "agreed": agreed,
        "bursts": candidate.bursts,
        "confidence": confidence,
        "min_confidence": rules.air_min_confidence,
    }
    doubts = []
    if agreed < FULL_AGREEMENT:
        doubts.append(f"{agreed} of {FULL_AGREEMENT} bursts agreed")
    if confidence < rules.air_min_confidence:
        doubts.append(f"confidence {confidence:.2f} is below {rules.air_min_confidence:.2f}")
    if doubts:
        out.append(
            _fail(
                "air_agreement",
                RelayAction.CONFIRM,
                f"Heard with less than full agreement ({'; '.join(doubts)}): never relayed "
                "without an operator.",
                **agreement,
            )
        )
    else:
        out.append(
            _ok(
                "air_agreement",
                f"All {FULL_AGREEMENT} bursts agreed at confidence {confidence:.2f}.",
                **agreement,
            )
        )
    if candidate.deviations:
        out.append(
            _fail(
                "deviation",
                RelayAction.CONFIRM,
                f"The header deviates from 47 CFR 11.31 ({', '.join(candidate.deviations)}), "
                "so it is never relayed without an operator (a relay re-encodes it in the "
                f"standard form): {' '.join(deviation_text(d) for d in candidate.deviations)}",
                "47 CFR 11.31",
                deviations=list(candidate.deviations),
            )
        )
    else:
        out.append(
            _ok("deviation", "The header follows 47 CFR 11.31.", "47 CFR 11.31", deviations=[])
        )
    return out


def _location_check(
    candidate: Candidate, rules: RelayRules, station: LocationSettings
) -> RuleCheck:
    configured = list(rules.locations or station.same_codes)
    values: dict[str, CheckValue] = {
        "alert_locations": list(candidate.all_locations),
        "station_locations": configured,
        "configured_by": "relay.locations" if rules.locations else "location.same_codes",
    }
    if not configured:
        return _fail(
            "location",
            RelayAction.IGNORE,
            "The station has no location codes configured, so nothing is in its area.",
            **values,
        )
    matches: list[str] = []
    in_header = False
    for code in candidate.all_locations:
        for own in configured:
            how = location_covers(code, own)
            if how is not None:
                matches.append(f"{code}~{own} {how}")
                in_header = in_header or code in candidate.locations
    values["matches"] = matches
    if not matches:
        return _fail(
            "location",
            RelayAction.IGNORE,
            f"None of the alert's {len(candidate.all_locations)} locations covers the "
            f"station's ({', '.join(configured)}).",
            **values,
        )
    if not in_header:
        return _fail(
            "location",
            RelayAction.CONFIRM,
            f"The station's area matches only past the 31st location ({', '.join(matches)}), "
            "which the relayed header cannot carry: an operator decides.",
            "47 CFR 11.31(c)",
            **values,
        )
    return _ok("location", f"In the station's area: {', '.join(matches)}.", **values)


def _mandatory(candidate: Candidate) -> bool:
    return candidate.event_code == "EAN" or (
        candidate.event_code == "NPT" and NATIONAL_CODE in candidate.all_locations
    )


def evaluate(
    candidate: Candidate, rules: RelayRules, station: LocationSettings, now: datetime
) -> Evaluation:
    """Apply every relay rule to ``candidate`` at ``now``; see the module docstring."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    checks: list[RuleCheck] = []
    if rules.enabled:
        checks.append(_ok("relay_enabled", "Relay is enabled.", enabled=True))
    else:
        checks.append(
            _fail(
                "relay_enabled", RelayAction.IGNORE, "Relay is off at this station.", enabled=False
            )
        )
    if candidate.source is RelaySource.CAP:
        checks += _cap_checks(candidate, rules)
    else:
        checks += _air_checks(candidate, rules)
    checks.append(_location_check(candidate, rules, station))

    mandatory = _mandatory(candidate)
    event = candidate.event_code
    if mandatory:
        checks.append(
            _ok(
                "national",
                f"{event} for the nation must be carried: the station's event and originator "
                "filters do not apply.",
                "47 CFR 11.54, 11.61(a)(3)",
                event_code=event,
                mandatory=True,
            )
        )
    else:
        checks.append(
            _ok(
                "national",
                "Not a mandatory national message.",
                "47 CFR 11.54",
                event_code=event,
                mandatory=False,
            )
        )
    must_carry = candidate.conversion is not None and candidate.conversion.must_carry
    if candidate.source is RelaySource.CAP:
        checks.append(
            _ok(
                "must_carry",
                "Governor's must-carry: the event and originator filters do not apply "
                "(location and duplicates still do)."
                if must_carry
                else "Not marked EAS-Must-Carry.",
                "ECIG 3.4.1.7",
                must_carry=must_carry,
            )
        )
    overridden = mandatory or must_carry
    why_override = "national message" if mandatory else "must-carry"
    events_listed = list(rules.events)
    if overridden:
        checks.append(
            _ok(
                "event",
                f"Event {event}: relayed as a {why_override}.",
                event_code=event,
                relayed=events_listed,
            )
        )
    elif event is not None and event in rules.events:
        checks.append(
            _ok("event", f"Event {event} is relayed.", event_code=event, relayed=events_listed)
        )
    else:
        checks.append(
            _fail(
                "event",
                RelayAction.IGNORE,
                f"Event {event} is not relayed by this station.",
                event_code=event,
                relayed=events_listed,
            )
        )
    originator = candidate.originator
    originators = [o.value for o in rules.originators]
    if overridden:
        checks.append(
            _ok(
                "originator",
                f"Originator {originator}: relayed as a {why_override}.",
                originator=originator,
                relayed=originators,
            )
        )
    elif originator is not None and originator in originators:
        checks.append(
            _ok(
                "originator",
                f"Originator {originator} is relayed.",
                originator=originator,
                relayed=originators,
            )
        )
    else:
        checks.append(
            _fail(
                "originator",
                RelayAction.IGNORE,
                f"Originator {originator} is not relayed by this station.",
                originator=originator,
                relayed=originators,
            )
        )

    received = candidate.received_at
    age_s = (now - received).total_seconds() if received is not None else 0.0
    if age_s > rules.max_age_s:
        checks.append(
            _fail(
                "stale",
                RelayAction.IGNORE,
                f"Received {age_s / 60:.0f} min ago, longer than the {rules.max_age_s} s after "
                "which nothing is relayed automatically; an operator may forward it.",
                received_at=_iso(received),
                max_age_s=rules.max_age_s,
            )
        )
    else:
        checks.append(
            _ok(
                "stale",
                f"Received {age_s:.0f} s ago.",
                received_at=_iso(received),
                max_age_s=rules.max_age_s,
            )
        )
    hold = _hold_until(candidate, rules)
    airs_at = relay_time(candidate, rules, now)
    purge_at = candidate.purge_at
    if purge_at is not None and purge_at <= now:
        checks.append(
            _fail(
                "expired",
                RelayAction.IGNORE,
                f"Expired at {purge_at.isoformat()}.",
                "ECIG 3.4.1.4",
                purge_at=purge_at.isoformat(),
                now=now.isoformat(),
            )
        )
    elif purge_at is not None and airs_at >= purge_at:
        checks.append(
            _fail(
                "expired",
                RelayAction.IGNORE,
                f"It would air at {airs_at.isoformat()}, after it expires at "
                f"{purge_at.isoformat()}.",
                "ECIG 3.4.1.4",
                purge_at=purge_at.isoformat(),
                relay_at=airs_at.isoformat(),
            )
        )
    else:
        checks.append(
            _ok(
                "expired",
                f"Valid until {_iso(purge_at)}.",
                "ECIG 3.4.1.4",
                purge_at=_iso(purge_at),
                now=now.isoformat(),
            )
        )
    if candidate.source is RelaySource.CAP:
        timing: dict[str, CheckValue] = {
            "effective": _iso(candidate.effective),
            "onset": _iso(candidate.onset),
            "hold_until_onset": rules.hold_until_onset,
        }
        if hold is not None and hold > now:
            what = "onset" if rules.hold_until_onset and hold == candidate.onset else "effective"
            checks.append(
                _ok(
                    "not_yet_effective",
                    f"Not in effect yet: held until its {what} time {hold.isoformat()}.",
                    **timing,
                )
            )
        else:
            note = (
                ""
                if rules.hold_until_onset or candidate.onset is None or candidate.onset <= now
                else " Its onset is later; the warning is relayed now, ahead of the hazard."
            )
            checks.append(_ok("not_yet_effective", "In effect now." + note, **timing))

    confirm_listed = list(rules.require_confirmation)
    if event is not None and event in rules.require_confirmation and not must_carry:
        checks.append(
            _fail(
                "confirmation",
                RelayAction.CONFIRM,
                f"{event} waits for an operator's confirmation at this station.",
                event_code=event,
                require_confirmation=confirm_listed,
            )
        )
    else:
        checks.append(
            _ok(
                "confirmation",
                "No confirmation required for this event.",
                event_code=event,
                require_confirmation=confirm_listed,
            )
        )
    if event == "RMT":
        checks.append(
            _ok(
                "rmt_window",
                "A received RMT airs within 60 minutes of its receipt, by "
                f"{now + RMT_RELAY_WINDOW:%H:%M} UTC (an operator's confirmation included).",
                "47 CFR 11.61(a)(1)(i)",
                window_minutes=60,
            )
        )
    if event == "EAN":
        checks.append(
            _ok(
                "delay",
                "An EAN airs at once; the relay delay does not apply.",
                "47 CFR 11.54",
                delay_s=0,
            )
        )
    else:
        checks.append(_ok("delay", f"Relay delay {rules.delay_s} s.", delay_s=rules.delay_s))

    precedence, precedence_class = precedence_of(event, originator, candidate.locations)
    consequences = [c.consequence for c in checks if c.consequence is not None]
    header = candidate.header
    if RelayAction.IGNORE in consequences:
        first = next(c for c in checks if c.consequence is RelayAction.IGNORE)
        return Evaluation(
            action=RelayAction.IGNORE,
            checks=tuple(checks),
            precedence=precedence,
            precedence_class=precedence_class,
            relay_at=None,
            confirm_by=None,
            on_timeout=None,
            reason=f"Ignored: {first.detail}",
            header=header,
        )
    if RelayAction.CONFIRM in consequences:
        waiting = [c for c in checks if c.consequence is RelayAction.CONFIRM]
        doubtful = any(c.rule in _DOUBT_RULES for c in waiting)
        on_timeout = (
            ConfirmationTimeoutAction.IGNORE if doubtful else rules.confirmation_timeout_action
        )
        confirm_by = now + timedelta(seconds=rules.confirmation_timeout_s)
        if event == "RMT":
            # 47 CFR 11.61(a)(1)(i): a received RMT is retransmitted within 60 minutes; a
            # confirmation that would come later (delay included) cannot make it legal.
            latest = now + RMT_RELAY_WINDOW - timedelta(seconds=rules.delay_s)
            confirm_by = min(confirm_by, latest)
        then = "relayed" if on_timeout is ConfirmationTimeoutAction.RELAY else "ignored"
        return Evaluation(
            action=RelayAction.CONFIRM,
            checks=tuple(checks),
            precedence=precedence,
            precedence_class=precedence_class,
            relay_at=None,
            confirm_by=confirm_by,
            on_timeout=on_timeout,
            reason=f"Waits for an operator until {confirm_by:%H:%M} UTC, then is {then}: "
            f"{waiting[0].detail}",
            header=header,
        )
    location = next(c for c in checks if c.rule == "location")
    return Evaluation(
        action=RelayAction.RELAY,
        checks=tuple(checks),
        precedence=precedence,
        precedence_class=precedence_class,
        relay_at=airs_at,
        confirm_by=None,
        on_timeout=None,
        reason=f"Relay {event} at {airs_at:%H:%M:%S} UTC: {location.detail}",
        header=header,
    )


# ---- the announced decision ---------------------------------------------------------------------


def initial_state(action: RelayAction) -> DecisionState:
    return {
        RelayAction.RELAY: DecisionState.SCHEDULED,
        RelayAction.CONFIRM: DecisionState.PENDING_CONFIRMATION,
        RelayAction.IGNORE: DecisionState.IGNORED,
    }[action]


def decision_event(
    candidate: Candidate,
    evaluation: Evaluation,
    *,
    decision_id: int,
    decided_at: datetime,
    revision: int = 1,
) -> RelayDecisionEvent:
    """The ``relay.decision`` payload of a decision just made (state from the action).

    Later changes (confirmed, withdrawn, merged copies, a message id) are this payload with
    those fields updated (``model_copy``) and ``revision`` + 1.
    """
    return RelayDecisionEvent(
        decision_id=decision_id,
        revision=revision,
        state=initial_state(evaluation.action),
        action=evaluation.action,
        source=candidate.source,
        decided_at=decided_at,
        alert_id=candidate.alert_id,
        alert_identifier=candidate.alert_identifier,
        alert_sender=candidate.alert_sender,
        heard_event_id=candidate.heard_event_id,
        header=evaluation.header.text if evaluation.header is not None else None,
        originator=candidate.originator,
        event_code=candidate.event_code,
        event_name=candidate.event_name,
        locations=list(candidate.locations),
        issued=candidate.issued,
        purge_at=candidate.purge_at,
        precedence=evaluation.precedence,
        precedence_class=evaluation.precedence_class,
        relay_at=evaluation.relay_at,
        confirm_by=evaluation.confirm_by,
        on_timeout=evaluation.on_timeout,
        checks=list(evaluation.checks),
        deviations=list(candidate.deviations),
        reason=evaluation.reason,
    )
