"""NWS API ``/alerts/active`` GeoJSON into `eas_schemas.cap.CapAlert`.

The NWS API serves each alert as a GeoJSON feature whose ``properties`` mirror CAP 1.2 with
camelCase names (``messageType`` for msgType, ``references`` as objects, ``parameters`` and
``geocode`` as name -> list maps). GeoJSON coordinates are ``[lon, lat]``; CAP's are
``lat,lon``, so every point is swapped here. Features are converted one by one: a bad feature
is a rejection, never the end of the collection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eas_schemas.cap import CapAlert
from eas_schemas.same_codes import event_name
from pollers.cap_xml import (
    CAP_ENUMS,
    DEFAULT_MAX_DOCUMENT_BYTES,
    CapRejected,
    ParsedAlert,
    enum_case,
    parse_cap_time,
    sha256_hex,
    validate_alert,
)

NWS_ALERT_URL_PREFIX = "https://api.weather.gov/alerts/"


CapXmlSource = Callable[[str], CapAlert | None]
"""The CAP XML the NWS API serves for one alert identifier, or None when it cannot be had."""

# Every NWS CAP message, in the XML and in the API's JSON of today, is sent by this address;
# older API vintages put the office's name in ``sender`` instead.
NWS_CAP_SENDER = "w-nws.webmaster@noaa.gov"
_NWS_IDENTIFIER = re.compile(r"^(urn:oid:2\.49\.0\.1\.840\.|NWS-IDP-)")
_FORBIDDEN_IN_SENDER = re.compile(r"[\s,<&]+")
_GEOCODE_NAMES = frozenset({"SAME", "FIPS6", "UGC"})

# Deviations whose repair is a guess: the alert's own CAP XML, when it can be had, wins.
_GUESSES = frozenset({"sender_assumed_nws", "sender_sanitised"})


@dataclass
class GeoJsonBatch:
    alerts: list[ParsedAlert] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)


def parse_nws_json(
    data: bytes | str,
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    cap_xml: CapXmlSource | None = None,
) -> GeoJsonBatch:
    """A FeatureCollection (``/alerts/active``) or a single Feature (``/alerts/{id}``).

    Features are converted one by one (`convert_feature`); ``cap_xml`` is asked for an
    alert's CAP XML when its JSON is unusable.
    """
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
            alert, deviations = convert_feature(feature, cap_xml)
        except CapRejected as exc:
            batch.rejections.append(f"feature #{index} ({_feature_name(feature)}): {exc.reason}")
            continue
        digest = sha256_hex(json.dumps(feature, sort_keys=True).encode())
        batch.alerts.append(ParsedAlert(alert, digest, tuple(deviations)))
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
    """The alert of one feature, repaired where it can be (see `convert_feature`)."""
    return convert_feature(feature)[0]


class _Deviations:
    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)


def convert_feature(
    feature: Any, cap_xml: CapXmlSource | None = None
) -> tuple[CapAlert, list[str]]:
    """One feature into a CAP alert and the deviations repaired on the way.

    A field that is merely non-conformant is normalised and named as a deviation; only what
    cannot be an alert is rejected: no identifier, no readable sent time, no area (no
    geocode and no usable geometry), or a status or message type that is not CAP's (those
    decide what airs, so they are never guessed). When the JSON is unusable, or its sender
    is not an address, the alert's own CAP XML (``cap_xml``) is used instead if it can be had.
    """
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        raise CapRejected("feature without properties")
    props: dict[str, Any] = feature["properties"]
    identifier = _str(props.get("identifier")) or _str(props.get("id")) or _id_from_url(feature)
    if not identifier:
        raise CapRejected("missing identifier (properties.identifier / properties.id)")
    found = _Deviations()
    fatal: CapRejected | None = None
    alert: CapAlert | None = None
    try:
        alert = validate_alert(_document(props, feature.get("geometry"), identifier, found))
    except CapRejected as exc:
        fatal = exc
    if alert is not None and not _GUESSES.intersection(found.names):
        return alert, found.names
    from_xml = cap_xml(identifier) if cap_xml is not None else None
    if from_xml is not None and from_xml.identifier == identifier:
        kept = [d for d in found.names if d not in _GUESSES]
        return from_xml, [*kept, "from_cap_xml"]
    if alert is None:
        raise fatal or CapRejected("unusable feature")
    return alert, found.names


def _document(
    props: dict[str, Any], geometry: Any, identifier: str, found: _Deviations
) -> dict[str, Any]:
    sender = _sender(props, identifier, found)
    return {
        "identifier": identifier,
        "sender": sender,
        "sent": _time(props, "sent", required=True),
        "status": _enum(props, "status", "status", found),
        "msg_type": _enum(props, "messageType", "msg_type", found),
        "scope": enum_case("scope", _str(props.get("scope"))) or "Public",
        "codes": _strings(props.get("code")),
        "note": _str(props.get("note")),
        "references": _references(props, sender, found),
        "infos": [_info(props, geometry, found)],
    }


def _sender_ok(value: str | None) -> bool:
    return bool(value) and _FORBIDDEN_IN_SENDER.search(value or "") is None


def _sender(props: dict[str, Any], identifier: str, found: _Deviations) -> str:
    sender = _str(props.get("sender"))
    if sender is not None and _sender_ok(sender):
        return sender
    if sender is None:
        found.add("sender_missing")
    elif _str(props.get("senderName")) is None:
        # Older API vintages: the office's name where the address belongs. It is the
        # senderName of today, and becomes the info's senderName here (see _info).
        found.add("sender_held_name")
    else:
        found.add("sender_invalid")
    if _NWS_IDENTIFIER.match(identifier):
        found.add("sender_assumed_nws")
        return NWS_CAP_SENDER
    found.add("sender_sanitised")
    cleaned = _FORBIDDEN_IN_SENDER.sub("-", sender or "").strip("-")
    return cleaned or "unknown-sender"


def _enum(props: dict[str, Any], name: str, key: str, found: _Deviations) -> str:
    value = _required(props, name)
    fixed = enum_case(key, value)
    if fixed not in CAP_ENUMS[key]:
        raise CapRejected(f"properties.{name} {value[:40]!r} is not a CAP {name}")
    if fixed != value:
        found.add("enum_case")
    return str(fixed)


def _loose_enum(props: dict[str, Any], name: str, found: _Deviations) -> str:
    """Urgency, severity and certainty: a value that is not CAP's is CAP's own Unknown."""
    value = _str(props.get(name))
    fixed = enum_case(name, value)
    if fixed in CAP_ENUMS[name]:
        if fixed != value:
            found.add("enum_case")
        return str(fixed)
    found.add("enum_unknown")
    return "Unknown"


def _references(props: dict[str, Any], sender: str, found: _Deviations) -> list[dict[str, Any]]:
    refs = []
    for raw in _list(props.get("references")):
        try:
            ref = _reference(raw)
        except CapRejected:
            found.add("reference_unusable")
            continue
        if not _sender_ok(ref["sender"]):
            # The same vintage names the office in its references too: they point at alerts
            # whose sender was normalised the same way.
            found.add("reference_sender_normalised")
            ref["sender"] = (
                sender
                if ref["sender"] == _str(props.get("sender"))
                else _FORBIDDEN_IN_SENDER.sub("-", ref["sender"]).strip("-")
            )
        refs.append(ref)
    return refs


def _info(props: dict[str, Any], geometry: Any, found: _Deviations) -> dict[str, Any]:
    parameters = [
        {"value_name": str(name), "value": str(value)}
        for name, values in _dict(props.get("parameters")).items()
        for value in _strings(values)
    ]
    ends = _str(props.get("ends"))
    if ends and not any(p["value_name"] == "eventEndingTime" for p in parameters):
        # CAP has no "ends"; NWS's own CAP XML carries it as this parameter.
        parameters.append({"value_name": "eventEndingTime", "value": ends})
    sender = _str(props.get("sender"))
    sender_name = _str(props.get("senderName")) or (
        sender if sender is not None and not _sender_ok(sender) else None
    )
    event_codes = _event_codes(props)
    event = _str(props.get("event"))
    if event is None:
        found.add("event_missing")
        same = next((c["value"] for c in event_codes if c["value_name"].upper() == "SAME"), None)
        event = event_name(same.upper()) if same else "Unknown event"
    geocodes = [
        {"value_name": str(name), "value": str(value)}
        for name, values in _dict(props.get("geocode")).items()
        for value in _strings(values)
    ]
    try:
        polygons = polygons_from_geometry(geometry)
    except CapRejected:
        found.add("geometry_unusable")
        polygons = []
    if not polygons and not any(g["value_name"].upper() in _GEOCODE_NAMES for g in geocodes):
        raise CapRejected("no area: no SAME/UGC geocode and no usable geometry")
    area_desc = _str(props.get("areaDesc"))
    if area_desc is None:
        found.add("area_desc_missing")
    return {
        "language": _str(props.get("language")) or "en-US",
        "categories": _strings(props.get("category")),
        "event": event,
        "response_types": _strings(props.get("response")),
        "urgency": _loose_enum(props, "urgency", found),
        "severity": _loose_enum(props, "severity", found),
        "certainty": _loose_enum(props, "certainty", found),
        "event_codes": event_codes,
        "effective": _optional_time(props, "effective", found),
        "onset": _optional_time(props, "onset", found),
        "expires": _optional_time(props, "expires", found),
        "sender_name": sender_name,
        "headline": _str(props.get("headline")),
        "description": _str(props.get("description")),
        "instruction": _str(props.get("instruction")),
        "web": _str(props.get("web")),
        "parameters": parameters,
        "areas": [
            {
                "area_desc": area_desc or "(no areaDesc)",
                "polygons": polygons,
                "geocodes": geocodes,
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
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CapRejected("GeoJSON position out of range")
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


def _optional_time(props: dict[str, Any], name: str, found: _Deviations) -> Any:
    try:
        return _time(props, name)
    except CapRejected:
        found.add("time_unusable")
        return None


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
