"""eas_same decoder events -> the bus payloads of eas_schemas.monitor_events."""

from __future__ import annotations

from datetime import datetime

from eas_same import SameHeader
from eas_same.header import describe_location
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import (
    SAME_ATTENTION_TONE_TYPE,
    SAME_EOM_TYPE,
    SAME_HEADER_TYPE,
    AttentionToneKind,
    Hearing,
    SameAttentionToneEvent,
    SameEomEvent,
    SameHeaderEvent,
    SameHeaderFields,
    SameLocation,
)

TONE_FREQUENCIES: dict[AttentionToneKind, list[float]] = {
    AttentionToneKind.BROADCAST: [853.0, 960.0],
    AttentionToneKind.NWR: [1050.0],
}


def _best(hearings: list[Hearing]) -> Hearing:
    return max(hearings, key=lambda h: (h.confidence, h.agreed, -h.heard_at.timestamp()))


def header_fields(header: SameHeader, now: datetime) -> SameHeaderFields:
    return SameHeaderFields(
        originator=header.originator,
        originator_name=header.originator_name,
        event_code=header.event,
        event_name=header.event_name,
        locations=[SameLocation(code=c, name=describe_location(c)) for c in header.locations],
        duration=header.duration,
        duration_minutes=int(header.purge_duration.total_seconds() // 60),
        issued=header.issued_near(now),
        purge_at=header.purge_near(now),
        callsign=header.callsign,
    )


def header_event(
    header: SameHeader, hearings: list[Hearing], source: str
) -> EventEnvelope[SameHeaderEvent]:
    first = hearings[0]
    best = _best(hearings)
    data = SameHeaderEvent(
        text=header.raw,
        header=header_fields(header, first.heard_at),
        deviations=list(header.deviations),
        deviation_notes=header.deviation_texts,
        description=header.describe(now=first.heard_at),
        confidence=best.confidence,
        bursts=max(h.bursts for h in hearings),
        agreed=max(h.agreed for h in hearings),
        inputs=hearings,
        first_heard_at=first.heard_at,
        clip_id=best.clip_id or next((h.clip_id for h in hearings if h.clip_id), None),
    )
    return EventEnvelope[SameHeaderEvent](
        type=SAME_HEADER_TYPE, source=source, subject=header.raw, data=data
    )


def eom_event(hearings: list[Hearing], source: str) -> EventEnvelope[SameEomEvent]:
    best = _best(hearings)
    data = SameEomEvent(
        confidence=best.confidence,
        bursts=max(h.bursts for h in hearings),
        inputs=hearings,
        first_heard_at=hearings[0].heard_at,
    )
    return EventEnvelope[SameEomEvent](type=SAME_EOM_TYPE, source=source, subject="NNNN", data=data)


def attention_event(
    kind: AttentionToneKind, hearings: list[Hearing], source: str
) -> EventEnvelope[SameAttentionToneEvent]:
    first = hearings[0]
    data = SameAttentionToneEvent(
        kind=kind,
        frequencies_hz=TONE_FREQUENCIES[kind],
        started_at=first.started_at,
        ended_at=first.ended_at,
        duration_s=round(first.end_s - first.start_s, 3),
        inputs=hearings,
        first_heard_at=first.heard_at,
    )
    return EventEnvelope[SameAttentionToneEvent](
        type=SAME_ATTENTION_TONE_TYPE, source=source, subject=kind.value, data=data
    )
