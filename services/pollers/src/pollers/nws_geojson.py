"""NWS API ``/alerts/active`` GeoJSON into `eas_schemas.cap.CapAlert`.

The NWS API serves each alert as a GeoJSON feature whose ``properties`` mirror CAP 1.2 with
camelCase names (``messageType`` for msgType, ``references`` as objects, ``parameters`` and
``geocode`` as name -> list maps). GeoJSON coordinates are ``[lon, lat]``; CAP's are
``lat,lon``, so every point is swapped here. Features are converted one by one: a bad feature
is a rejection, never the end of the collection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from eas_schemas.cap import CapAlert
from pollers.cap_xml import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    CapRejected,
    ParsedAlert,
    parse_cap_time,
    sha256_hex,
    validate_alert,
)

NWS_ALERT_URL_PREFIX = "https://api.weather.gov/alerts/"


@dataclass
class GeoJsonBatch:
    alerts: list[ParsedAlert] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


def parse_nws_json(data: bytes | str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> GeoJsonBatch:
    """A FeatureCollection (``/alerts/active``) or a single Feature (``/alerts/{id}``)."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CapRejected(f"document over {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CapRejected(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CapRejected("NWS GeoJSON must be an object")
    if doc.get("type") == "Feature":
        features = [doc]
    elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        features = doc["features"]
    else:
        raise CapRejected("not a GeoJSON FeatureCollection or Feature")
    batch = GeoJsonBatch()
    for index, feature in enumerate(features, start=1):
        try:
            alert = alert_from_feature(feature)
        except CapRejected as exc:
            batch.rejections.append(f"feature #{index} ({_feature_name(feature)}): {exc.reason}")
            continue
        digest = sha256_hex(json.dumps(feature, sort_keys=True).encode())
        batch.alerts.append(ParsedAlert(alert, digest))
    return batch


def _feature_name(feature: Any) -> str:
    if isinstance(feature, dict):
        props = feature.get("properties")
        if isinstance(props, dict) and props.get("id"):
            return str(props["id"])[:80]
        if feature.get("id"):
            return str(feature["id"])[:80]
    return "?"


def alert_from_feature(feature: Any) -> CapAlert:
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise CapRejected("feature without properties")
    props: dict[str, Any] = feature["properties"]
    identifier = _str(props.get("identifier")) or _str(props.get("id")) or _id_from_url(feature)
    if not identifier:
        raise CapRejected("missing identifier (properties.identifier / properties.id)")
    doc: dict[str, Any] = {
        "identifier": identifier,
        "sender": _required(props, "sender"),
        "sent": _time(props, "sent", required=True),
        "status": _required(props, "status"),
        "msg_type": _required(props, "messageType"),
        "scope": _str(props.get("scope")) or "Public",
        "codes": _strings(props.get("code")),
        "note": _str(props.get("note")),
        "references": [_reference(r) for r in _list(props.get("references"))],
        "infos": [_info(props, feature.get("geometry"))],
    }
    return validate_alert(doc)


def _info(props: dict[str, Any], geometry: Any) -> dict[str, Any]:
    parameters = [
        {"value_name": str(name), "value": str(value)}
        for name, values in _dict(props.get("parameters")).items()
        for value in _strings(values)
    ]
    ends = _str(props.get("ends"))
    if ends and not any(p["value_name"] == "eventEndingTime" for p in parameters):
        # CAP has no "ends"; NWS's own CAP XML carries it as this parameter.
        parameters.append({"value_name": "eventEndingTime", "value": ends})
    return {
        "language": _str(props.get("language")) or "en-US",
        "categories": _strings(props.get("category")),
        "event": _required(props, "event"),
        "response_types": _strings(props.get("response")),
        "urgency": _required(props, "urgency"),
        "severity": _required(props, "severity"),
        "certainty": _required(props, "certainty"),
        "event_codes": _event_codes(props),
        "effective": _time(props, "effective"),
        "onset": _time(props, "onset"),
        "expires": _time(props, "expires"),
        "sender_name": _str(props.get("senderName")),
        "headline": _str(props.get("headline")),
        "description": _str(props.get("description")),
        "instruction": _str(props.get("instruction")),
        "web": _str(props.get("web")),
        "parameters": parameters,
        "areas": [
            {
                "area_desc": _str(props.get("areaDesc")) or "(no areaDesc)",
                "polygons": polygons_from_geometry(geometry),
                "geocodes": [
                    {"value_name": str(name), "value": str(value)}
                    for name, values in _dict(props.get("geocode")).items()
                    for value in _strings(values)
                ],
            }
        ],
    }


def _event_codes(props: dict[str, Any]) -> list[dict[str, str]]:
    codes = [
        {"value_name": str(name), "value": value}
        for name, values in _dict(props.get("eventCode")).items()
        for value in _strings(values)
    ]
    if not any(c["value_name"].upper() == "SAME" for c in codes):
        # Older API responses carry the SAME code only among the parameters.
        for name, values in _dict(props.get("parameters")).items():
            if str(name).upper() in ("SAME", "EAS-EVENTCODE", "SAMEEVENTCODE"):
                codes.extend({"value_name": "SAME", "value": v} for v in _strings(values))
    return codes


def polygons_from_geometry(geometry: Any) -> list[list[tuple[float, float]]]:
    """GeoJSON Polygon/MultiPolygon ([lon, lat]) into CAP rings of (lat, lon).

    Only exterior rings: CAP polygons have no holes. A null geometry is a zone-based alert.
    """
    if geometry is None:
        return []
    if not isinstance(geometry, dict):
        raise CapRejected("geometry is not an object")
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    polygons: list[Any]
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = _list(coords)
    elif kind == "GeometryCollection":
        return [
            ring for g in _list(geometry.get("geometries")) for ring in polygons_from_geometry(g)
        ]
    else:
        raise CapRejected(f"unsupported geometry type {kind!r}")
    rings = []
    for polygon in _list(polygons):
        if not isinstance(polygon, list) or not polygon:
            raise CapRejected("malformed polygon coordinates")
        ring = [_swap(point) for point in _list(polygon[0])]
        if len(ring) >= 3 and ring[0] != ring[-1]:
            ring.append(ring[0])
        if len(ring) < 4:
            raise CapRejected("polygon needs at least 4 points")
        rings.append(ring)
    return rings


def _swap(point: Any) -> tuple[float, float]:
    if not isinstance(point, list) or len(point) < 2:
        raise CapRejected("malformed GeoJSON position")
    try:
        lon, lat = float(point[0]), float(point[1])
    except (TypeError, ValueError):
        raise CapRejected("malformed GeoJSON position") from None
    return lat, lon


def _reference(ref: Any) -> dict[str, Any]:
    if isinstance(ref, str):  # tolerate the CAP text form "sender,identifier,sent"
        parts = ref.split(",")
        if len(parts) != 3:
            raise CapRejected(f"invalid reference {ref[:60]!r}")
        return {
            "sender": parts[0],
            "identifier": parts[1],
            "sent": parse_cap_time("references", parts[2]),
        }
    if not isinstance(ref, dict):
        raise CapRejected("reference is not an object")
    identifier = _str(ref.get("identifier")) or _id_from_url({"id": ref.get("@id")})
    sender, sent = _str(ref.get("sender")), _str(ref.get("sent"))
    if not identifier or not sender or not sent:
        raise CapRejected("reference without identifier, sender or sent")
    return {"sender": sender, "identifier": identifier, "sent": parse_cap_time("references", sent)}


def _id_from_url(feature: dict[str, Any]) -> str | None:
    value = _str(feature.get("id"))
    if value and value.startswith(NWS_ALERT_URL_PREFIX):
        return value[len(NWS_ALERT_URL_PREFIX) :]
    return value


def _required(props: dict[str, Any], name: str) -> str:
    value = _str(props.get(name))
    if value is None:
        raise CapRejected(f"missing properties.{name}")
    return value


def _time(props: dict[str, Any], name: str, required: bool = False) -> Any:
    value = _required(props, name) if required else _str(props.get(name))
    return parse_cap_time(name, value) if value else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [s for s in (_str(v) for v in value) if s]
    text = _str(value)
    return [text] if text else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
