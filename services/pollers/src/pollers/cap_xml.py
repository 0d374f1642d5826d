"""CAP 1.2 (and 1.1) XML into `eas_schemas.cap.CapAlert`, parsed safely.

Safety rules, applied before any element is looked at:
- the document size is checked first (a bound the caller configures, 1 MiB by default);
- `defusedxml` refuses entity declarations (billion laughs, XXE) and external references;
- anything that is not a well-formed CAP alert raises `CapRejected` with a short reason that
  goes to the log and to ``poller.status``.

Batches (ATOM feeds, the IPAWS-OPEN ``<alerts>`` wrapper) are parsed alert by alert so one
bad alert never hides the others.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as safe_fromstring
from pydantic import ValidationError

from eas_schemas.cap import CapAlert

CAP_12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_11 = "urn:oasis:names:tc:emergency:cap:1.1"
CAP_NAMESPACES = (CAP_12, CAP_11)
ATOM = "http://www.w3.org/2005/Atom"

DEFAULT_MAX_DOCUMENT_BYTES = 1_048_576


class CapRejected(Exception):
    """A document (or one alert of a batch) that is not an acceptable CAP alert."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedAlert:
    alert: CapAlert
    raw_sha256: str
    deviations: tuple[str, ...] = ()  # what was repaired in the document, by name


@dataclass(frozen=True, slots=True)
class AtomEntryLink:
    """An ATOM entry that points at its CAP document instead of embedding it."""

    entry_id: str
    updated: str
    url: str


@dataclass
class CapBatch:
    kind: str  # "alert", "atom" or "wrapper"
    root: str
    alerts: list[ParsedAlert] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    links: list[AtomEntryLink] = field(default_factory=list)


# --- safe XML ---------------------------------------------------------------------------------


def parse_xml(data: bytes | str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> ET.Element:
    """Parse untrusted XML: bounded size, no entities, no external references."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CapRejected(f"document over {max_bytes} bytes")
    if not raw.strip():
        raise CapRejected("empty document")
    try:
        # A DOCTYPE without entities is harmless; every entity declaration is refused.
        root: ET.Element = safe_fromstring(
            raw, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise CapRejected(
                f"XML external entity {exc.name!r} is forbidden ({_short(exc.sysid or '')})"
            ) from None
        raise CapRejected("XML entity declarations are forbidden") from None
    except ExternalReferenceForbidden:
        raise CapRejected("XML external references are forbidden") from None
    except DTDForbidden:
        raise CapRejected("XML DTDs are forbidden") from None
    except ET.ParseError as exc:
        raise CapRejected(f"malformed XML: {exc}") from None
    return root


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split_tag(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


# --- one alert ----------------------------------------------------------------------------------


def parse_cap_alert(data: bytes | str, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> CapAlert:
    """One CAP document whose root is ``<alert>``; raises `CapRejected`."""
    root = parse_xml(data, max_bytes)
    ns, local = _split_tag(root.tag)
    if local != "alert":
        raise CapRejected(f"root element is <{local}>, not a CAP <alert>")
    if ns not in CAP_NAMESPACES:
        raise CapRejected(f"not a CAP 1.2/1.1 alert: namespace {ns or '(none)'!r}")
    return alert_from_element(root)


def alert_from_element(el: ET.Element) -> CapAlert:
    ns, _ = _split_tag(el.tag)
    reader = _Reader(ns)
    doc: dict[str, Any] = {
        "identifier": reader.required(el, "identifier"),
        "sender": reader.required(el, "sender"),
        "sent": reader.time(el, "sent", required=True),
        "status": reader.required(el, "status"),
        "msg_type": reader.required(el, "msgType"),
        "source": reader.text(el, "source"),
        "scope": reader.required(el, "scope"),
        "restriction": reader.text(el, "restriction"),
        "addresses": reader.text(el, "addresses"),
        "codes": reader.texts(el, "code"),
        "note": reader.text(el, "note"),
        "references": _references(reader.text(el, "references")),
        "incidents": reader.text(el, "incidents"),
        "infos": [_info(reader, info) for info in reader.all(el, "info")],
    }
    for key in ("status", "msg_type", "scope"):
        doc[key] = enum_case(key, doc[key])
    return validate_alert(doc)


def validate_alert(doc: dict[str, Any]) -> CapAlert:
    try:
        return CapAlert.model_validate(doc)
    except ValidationError as exc:
        raise CapRejected(summarize_validation(exc)) from None


def summarize_validation(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "alert"
        parts.append(f"{loc}: {_short(err['msg'], 120)}")
    more = exc.error_count() - limit
    return "invalid CAP: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


# Producers are case-sloppy with the enumerations now and then; a mis-cased "actual" is still
# an Actual alert, and rejecting it would miss it.
CAP_ENUMS: dict[str, tuple[str, ...]] = {
    "status": ("Actual", "Exercise", "System", "Test", "Draft"),
    "msg_type": ("Alert", "Update", "Cancel", "Ack", "Error"),
    "scope": ("Public", "Restricted", "Private"),
    "urgency": ("Immediate", "Expected", "Future", "Past", "Unknown"),
    "severity": ("Extreme", "Severe", "Moderate", "Minor", "Unknown"),
    "certainty": ("Observed", "Likely", "Possible", "Unlikely", "Unknown"),
}


def enum_case(key: str, value: str | None) -> str | None:
    if value is None:
        return None
    for allowed in CAP_ENUMS[key]:
        if allowed.lower() == value.lower():
            return allowed
    # "Very Likely" was CAP 1.0's; CAP 1.1+ says to read it as Likely.
    if key == "certainty" and value.lower() == "very likely":
        return "Likely"
    return value


class _Reader:
    def __init__(self, ns: str) -> None:
        self.ns = ns

    def _q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}" if self.ns else name

    def all(self, el: ET.Element, name: str) -> list[ET.Element]:
        return el.findall(self._q(name))

    def text(self, el: ET.Element, name: str) -> str | None:
        child = el.find(self._q(name))
        if child is None or child.text is None:
            return None
        value = child.text.strip()
        return value or None

    def texts(self, el: ET.Element, name: str) -> list[str]:
        return [c.text.strip() for c in el.findall(self._q(name)) if c.text and c.text.strip()]

    def required(self, el: ET.Element, name: str, parent: str = "") -> str:
        value = self.text(el, name)
        if value is None:
            where = f" in <{parent}>" if parent else ""
            raise CapRejected(f"missing <{name}>{where}")
        return value

    def time(self, el: ET.Element, name: str, required: bool = False) -> datetime | None:
        value = self.required(el, name) if required else self.text(el, name)
        return parse_cap_time(name, value) if value is not None else None

    def pairs(self, el: ET.Element, name: str) -> list[dict[str, str]]:
        out = []
        for child in self.all(el, name):
            value_name = self.text(child, "valueName")
            if value_name is None:
                raise CapRejected(f"<{name}> without <valueName>")
            out.append({"value_name": value_name, "value": self.text(child, "value") or ""})
        return out


def parse_cap_time(name: str, value: str) -> datetime:
    """CAP dateTime: ISO 8601 with an explicit offset; a naive time is not guessed."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CapRejected(f"<{name}> is not a CAP dateTime: {_short(value, 40)!r}") from None
    if parsed.tzinfo is None:
        raise CapRejected(f"<{name}> has no UTC offset: {_short(value, 40)!r}")
    return parsed


def _references(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    out = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapRejected(f"invalid <references> entry {_short(triple, 60)!r}")
        out.append(
            {
                "sender": parts[0],
                "identifier": parts[1],
                "sent": parse_cap_time("references", parts[2]),
            }
        )
    return out


def _info(reader: _Reader, el: ET.Element) -> dict[str, Any]:
    info: dict[str, Any] = {
        "language": reader.text(el, "language") or "en-US",
        "categories": reader.texts(el, "category"),
        "event": reader.required(el, "event", "info"),
        "response_types": reader.texts(el, "responseType"),
        "urgency": enum_case("urgency", reader.required(el, "urgency", "info")),
        "severity": enum_case("severity", reader.required(el, "severity", "info")),
        "certainty": enum_case("certainty", reader.required(el, "certainty", "info")),
        "audience": reader.text(el, "audience"),
        "event_codes": reader.pairs(el, "eventCode"),
        "effective": reader.time(el, "effective"),
        "onset": reader.time(el, "onset"),
        "expires": reader.time(el, "expires"),
        "sender_name": reader.text(el, "senderName"),
        "headline": reader.text(el, "headline"),
        "description": reader.text(el, "description"),
        "instruction": reader.text(el, "instruction"),
        "web": reader.text(el, "web"),
        "contact": reader.text(el, "contact"),
        "parameters": reader.pairs(el, "parameter"),
        "resources": [_resource(reader, r) for r in reader.all(el, "resource")],
        "areas": [_area(reader, a) for a in reader.all(el, "area")],
    }
    return info


def _resource(reader: _Reader, el: ET.Element) -> dict[str, Any]:
    size_text = reader.text(el, "size")
    try:
        size = int(size_text) if size_text is not None else None
    except ValueError:
        raise CapRejected(
            f"<resource><size> is not an integer: {_short(size_text or '')!r}"
        ) from None
    return {
        "resource_desc": reader.required(el, "resourceDesc", "resource"),
        "mime_type": reader.required(el, "mimeType", "resource"),
        "size": size,
        "uri": reader.text(el, "uri"),
        "deref_uri": reader.text(el, "derefUri"),
        "digest": reader.text(el, "digest"),
    }


def _area(reader: _Reader, el: ET.Element) -> dict[str, Any]:
    return {
        "area_desc": reader.required(el, "areaDesc", "area"),
        "polygons": [parse_polygon(p) for p in reader.texts(el, "polygon")],
        "circles": [parse_circle(c) for c in reader.texts(el, "circle")],
        "geocodes": reader.pairs(el, "geocode"),
        "altitude": _float(reader.text(el, "altitude"), "altitude"),
        "ceiling": _float(reader.text(el, "ceiling"), "ceiling"),
    }


def _float(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise CapRejected(f"<{name}> is not a number: {_short(text, 40)!r}") from None


_PAIR = re.compile(r"^\s*([-+]?[0-9.]+)\s*,\s*([-+]?[0-9.]+)\s*$")


def _point(text: str, what: str) -> tuple[float, float]:
    match = _PAIR.match(text)
    if not match:
        raise CapRejected(f"invalid {what} point {_short(text, 40)!r} (want 'lat,lon')")
    try:
        return float(match.group(1)), float(match.group(2))
    except ValueError:
        raise CapRejected(f"invalid {what} point {_short(text, 40)!r} (want 'lat,lon')") from None


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """``"lat,lon lat,lon ..."``; an unclosed ring is closed rather than rejected.

    Producers occasionally drop the closing pair; the alert still carries its geocodes, and
    refusing it over geometry would miss it, which is worse than repairing an obvious ring.
    """
    points = [_point(pair, "polygon") for pair in text.split()]
    if len(points) < 3:
        raise CapRejected(f"<polygon> needs at least 3 points, got {len(points)}")
    if points[0] != points[-1]:
        points.append(points[0])
    if len(points) < 4:
        raise CapRejected("<polygon> needs at least 4 points and must be closed")
    return points


def parse_circle(text: str) -> dict[str, float]:
    parts = text.split()
    if len(parts) != 2:
        raise CapRejected(f"invalid <circle> {_short(text, 40)!r} (want 'lat,lon radius')")
    lat, lon = _point(parts[0], "circle")
    radius = _float(parts[1], "circle radius")
    return {"lat": lat, "lon": lon, "radius_km": radius if radius is not None else 0.0}


# --- batches: a single alert, an ATOM feed, or a wrapper such as IPAWS-OPEN's <alerts> --------


def parse_cap_batch(
    data: bytes | str,
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
) -> CapBatch:
    """Every CAP alert of a document; per-alert failures become rejections, not exceptions.

    Raises `CapRejected` only when the document as a whole is unusable (too big, hostile,
    malformed, or a lone ``<alert>`` that is invalid).
    """
    raw = data.encode() if isinstance(data, str) else data
    root = parse_xml(raw, max_bytes)
    ns, local = _split_tag(root.tag)
    if local == "alert":
        if ns not in CAP_NAMESPACES:
            raise CapRejected(f"not a CAP 1.2/1.1 alert: namespace {ns or '(none)'!r}")
        alert = alert_from_element(root)
        return CapBatch("alert", local, alerts=[ParsedAlert(alert, sha256_hex(raw))])
    if ns == ATOM and local == "feed":
        return _atom_batch(root)
    batch = CapBatch("wrapper", local)
    _collect_alerts(root, batch)
    return batch


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _collect_alerts(container: ET.Element, batch: CapBatch) -> None:
    first = len(batch.alerts) + len(batch.rejections) + 1
    for index, el in enumerate(_alert_elements(container), start=first):
        ns, _ = _split_tag(el.tag)
        if ns not in CAP_NAMESPACES:
            batch.rejections.append(f"alert #{index}: wrong namespace {ns or '(none)'!r}")
            continue
        try:
            alert = alert_from_element(el)
        except CapRejected as exc:
            ident = _Reader(ns).text(el, "identifier") or "?"
            batch.rejections.append(f"alert #{index} ({_short(ident, 60)}): {exc.reason}")
            continue
        batch.alerts.append(ParsedAlert(alert, sha256_hex(ET.tostring(el))))


def _alert_elements(container: ET.Element) -> list[ET.Element]:
    """Outermost ``<alert>`` elements (any namespace) below ``container``."""
    found: list[ET.Element] = []
    queue = deque(container)
    while queue:
        el = queue.popleft()
        if _split_tag(el.tag)[1] == "alert":
            found.append(el)
        else:
            queue.extend(el)
    return found


def _atom_batch(feed: ET.Element) -> CapBatch:
    batch = CapBatch("atom", "feed")
    for entry in feed.findall(f"{{{ATOM}}}entry"):
        before = len(batch.alerts) + len(batch.rejections)
        _collect_alerts(entry, batch)
        if len(batch.alerts) + len(batch.rejections) > before:
            continue  # the entry embeds its CAP document
        link = _entry_link(entry)
        entry_id = (entry.findtext(f"{{{ATOM}}}id") or "").strip()
        updated = (entry.findtext(f"{{{ATOM}}}updated") or "").strip()
        if link:
            batch.links.append(AtomEntryLink(entry_id or link, updated, link))
        else:
            batch.rejections.append(f"ATOM entry {_short(entry_id or '?', 60)}: no CAP link")
    return batch


def _entry_link(entry: ET.Element) -> str | None:
    """The CAP document of an entry: a CAP-typed link, else the alternate link, else the id."""
    links = entry.findall(f"{{{ATOM}}}link")
    for link in links:
        mime = (link.get("type") or "").lower()
        if "cap" in mime and link.get("href"):
            return link.get("href")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    entry_id = (entry.findtext(f"{{{ATOM}}}id") or "").strip()
    return entry_id if entry_id.startswith(("http://", "https://")) else None
