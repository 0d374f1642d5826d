"""Rendering alerts for the wire, once per change instead of once per request.

The list endpoint concatenates pre-rendered JSON items; it never parses or hydrates rows.
DESIGN.md measured serialization, not the framework, as what dominated this endpoint.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from eas_schemas.cap import CapAlert, CapArea, CapScope
from eas_schemas.events import AlertState, AlertSummary, FeedKind
from eas_schemas.relevance import RelevanceDecision

GEOJSON = "application/geo+json"


class AlertItem(AlertSummary):
    """One alert as listed by GET /api/alerts (an AlertSummary plus its texts)."""

    scope: CapScope
    feed: str
    description: str | None
    instruction: str | None
    effective: AwareDatetime | None
    received_at: AwareDatetime
    updated_at: AwareDatetime


class AlertPage(BaseModel):
    items: list[AlertItem]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


def build_item(
    alert_id: int,
    cap: CapAlert,
    *,
    state: AlertState,
    source: FeedKind,
    feed: str,
    relevance: RelevanceDecision,
    received_at: datetime,
    updated_at: datetime,
    references: list[int],
    deviations: list[str] | None = None,
) -> AlertItem:
    info = cap.primary_info()
    areas = [a.area_desc for a in info.areas] if info else []
    return AlertItem(
        id=alert_id,
        identifier=cap.identifier,
        sender=cap.sender,
        sent=cap.sent,
        status=cap.status,
        msg_type=cap.msg_type,
        scope=cap.scope,
        state=state,
        source=source,
        feed=feed,
        event=info.event if info else "(no info)",
        same_event=info.same_event_code() if info else None,
        severity=info.severity if info else "Unknown",
        urgency=info.urgency if info else "Unknown",
        certainty=info.certainty if info else "Unknown",
        headline=info.headline if info else None,
        description=info.description if info else None,
        instruction=info.instruction if info else None,
        area_desc="; ".join(areas),
        same_codes=cap.same_codes(),
        ugc_codes=cap.ugc_codes(),
        onset=info.onset if info else None,
        effective=info.effective if info else None,
        expires=cap.expires(),
        relevant=relevance.relevant,
        relevance_reason=relevance.reason,
        relevance_matches=list(relevance.matches),
        deviations=list(deviations or []),
        received_at=received_at,
        updated_at=updated_at,
        references=references,
    )


def summary_of(item: AlertItem) -> AlertSummary:
    return AlertSummary.model_validate(item.model_dump(include=set(AlertSummary.model_fields)))


def _circle_ring(lat: float, lon: float, radius_km: float, points: int = 32) -> list[list[float]]:
    # A circle becomes a 32-gon in GeoJSON (which has no circles); fine at county scale.
    # Counterclockwise (east of north first is clockwise, so go west), as RFC 7946 asks.
    ring = []
    for k in range(points):
        theta = 2 * math.pi * k / points
        dlat = (radius_km / 111.32) * math.cos(theta)
        dlon = (radius_km / (111.32 * max(math.cos(math.radians(lat)), 1e-6))) * math.sin(theta)
        ring.append(
            [
                round(min(max(lon - dlon, -180.0), 180.0), 6),
                round(min(max(lat + dlat, -90.0), 90.0), 6),
            ]
        )
    ring.append(ring[0])
    return ring


def _counterclockwise(ring: list[list[float]]) -> list[list[float]]:
    """RFC 7946 3.1.6: exterior rings are counterclockwise (CAP does not say either way)."""
    twice_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring))
    return ring[::-1] if twice_area < 0 else ring


def geometry_of(cap: CapAlert) -> dict[str, Any] | None:
    """GeoJSON MultiPolygon ([lon, lat] order, closed counterclockwise rings) of every polygon
    and circle of the alert's primary info (the one the list item describes)."""
    polygons: list[list[list[list[float]]]] = []
    info = cap.primary_info()
    areas: list[CapArea] = info.areas if info else []
    for area in areas:
        for ring in area.polygons:
            polygons.append([_counterclockwise([[lon, lat] for lat, lon in ring])])
        for c in area.circles:
            polygons.append([_circle_ring(c.lat, c.lon, c.radius_km)])
    if not polygons:
        return None
    return {"type": "MultiPolygon", "coordinates": polygons}


def geometry_json(cap: CapAlert) -> str | None:
    geometry = geometry_of(cap)
    return json.dumps(geometry, separators=(",", ":")) if geometry else None


def feature_bytes(item_json: str, geometry: str | None, alert_id: int) -> bytes:
    return (
        f'{{"type":"Feature","id":{alert_id},"geometry":{geometry or "null"},'
        f'"properties":{item_json}}}'
    ).encode()


def wants_geojson(accept: str) -> bool:
    """Content negotiation between JSON and GeoJSON: GeoJSON only when asked for by name and
    preferred at least as much as JSON (wildcards such as a browser's ``*/*`` mean JSON)."""
    geo = plain = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == GEOJSON:
            geo = max(geo, q)
        elif media == "application/json":
            plain = max(plain, q)
    return geo > 0 and geo >= plain


def page_body(items: list[str], next_cursor: str | None) -> bytes:
    """The AlertPage JSON of pre-rendered items (the list route and its fast path)."""
    joined = ",".join(items).encode()
    return b'{"items":[' + joined + b'],"next_cursor":' + json.dumps(next_cursor).encode() + b"}"
