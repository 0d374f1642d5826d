from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eas_schemas.cap import CapMsgType, CapStatus
from pollers.cap_xml import (
    CapRejected,
    parse_cap_alert,
    parse_cap_batch,
    parse_polygon,
)

NWS = "w-nws.webmaster@noaa.gov"

# file -> (sender, identifier, sent in UTC)
GOOD = {
    "nws-tor-cuyahoga.xml": (
        NWS,
        "urn:oid:2.49.0.1.840.0.7a1c2e0f4b9d4b1e8f3a6c5d2e1f0a9b8c7d6e5f.001.1",
        datetime(2026, 5, 1, 18, 32, tzinfo=UTC),
    ),
    "bilingual-en-es-pr.xml": (
        NWS,
        "urn:oid:2.49.0.1.840.0.3e5f7a9b1c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f.001.1",
        datetime(2026, 6, 12, 20, 5, tzinfo=UTC),
    ),
    "update-chain-1-alert.xml": (
        NWS,
        "urn:oid:2.49.0.1.840.0.wsw-cle-2026-0007.001.1",
        datetime(2026, 1, 15, 9, 10, tzinfo=UTC),
    ),
    "update-chain-2-update.xml": (
        NWS,
        "urn:oid:2.49.0.1.840.0.wsw-cle-2026-0007.002.1",
        datetime(2026, 1, 15, 20, 45, tzinfo=UTC),
    ),
    "update-chain-3-cancel.xml": (
        NWS,
        "urn:oid:2.49.0.1.840.0.wsw-cle-2026-0007.003.1",
        datetime(2026, 1, 16, 14, 20, tzinfo=UTC),
    ),
    "statewide-ohio-cem.xml": (
        "alerts@ema.ohio.gov",
        "OHEMA-2026-03-0042",
        datetime(2026, 3, 10, 13, 0, tzinfo=UTC),
    ),
    "national-npt.xml": (
        "npt@fema.dhs.gov",
        "NPT-2026-10-01-1420",
        datetime(2026, 10, 1, 18, 20, tzinfo=UTC),
    ),
    "hazmat-circle.xml": (
        "eoc@cuyahogacounty.us",
        "CUYCO-HMW-2026-0815-01",
        datetime(2026, 8, 15, 15, 47, tzinfo=UTC),
    ),
    "amber-cae-resource.xml": (
        "amber@ohiohighwaypatrol.gov",
        "OSHP-AMBER-2026-0021",
        datetime(2026, 7, 5, 1, 15, tzinfo=UTC),
    ),
    "cap11-rwt-test.xml": (NWS, "KCLE-RWT-2026-09-02", datetime(2026, 9, 2, 15, 5, tzinfo=UTC)),
}

BAD = {
    "billion-laughs.xml": "XML entity declarations are forbidden",
    "xxe-etc-passwd.xml": "XML external entity 'xxe' is forbidden",
    "truncated.xml": "malformed XML",
    "missing-sent.xml": "missing <sent>",
    "missing-event.xml": "missing <event> in <info>",
    "wrong-namespace.xml": "not a CAP 1.2/1.1 alert",
    "update-without-references.xml": "msgType Update requires references",
    "naive-sent-time.xml": "<sent> has no UTC offset",
}


def _load(cap_fixtures: Path, name: str) -> bytes:
    return (cap_fixtures / "good" / name).read_bytes()


def test_every_good_fixture_is_listed(cap_fixtures: Path) -> None:
    assert {p.name for p in (cap_fixtures / "good").glob("*.xml")} == set(GOOD)
    assert {p.name for p in (cap_fixtures / "bad").glob("*.xml")} == set(BAD)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_fixture_identity(cap_fixtures: Path, name: str) -> None:
    alert = parse_cap_alert(_load(cap_fixtures, name))
    assert (alert.sender, alert.identifier, alert.sent) == GOOD[name]


def test_good_fixture_identities_are_distinct() -> None:
    assert len(set(GOOD.values())) == len(GOOD)


def test_tornado_warning(cap_fixtures: Path) -> None:
    alert = parse_cap_alert(_load(cap_fixtures, "nws-tor-cuyahoga.xml"))
    assert alert.status is CapStatus.ACTUAL and alert.msg_type is CapMsgType.ALERT
    assert alert.source == "CLE" and alert.codes == ["IPAWSv1.0"]
    (info,) = alert.infos
    assert info.event == "Tornado Warning" and info.same_event_code() == "TOR"
    assert [(c.value_name, c.value) for c in info.event_codes] == [
        ("SAME", "TOR"),
        ("NationalWeatherService", "TOW"),
    ]
    assert info.categories == ["Met"] and info.response_types == ["Shelter"]
    assert info.expires == datetime(2026, 5, 1, 19, 15, tzinfo=UTC)
    assert {p.value_name: p.value for p in info.parameters}["VTEC"].startswith("/O.NEW.KCLE.TO.W")
    assert "TAKE COVER NOW" in (info.instruction or "")
    (area,) = info.areas
    assert area.area_desc == "Cuyahoga, OH"
    assert area.polygons[0][0] == (41.35, -81.80) and area.polygons[0][0] == area.polygons[0][-1]
    assert alert.same_codes() == ["039035"]
    assert alert.ugc_codes() == ["OHC035", "OHZ014"]


def test_bilingual_alert_keeps_both_languages(cap_fixtures: Path) -> None:
    alert = parse_cap_alert(_load(cap_fixtures, "bilingual-en-es-pr.xml"))
    assert [i.language for i in alert.infos] == ["en-US", "es-US"]
    assert alert.primary_info("es").event == "Aviso de Inundaciones Repentinas"  # type: ignore[union-attr]
    assert "¡Dé la vuelta" in (alert.infos[1].instruction or "")
    assert alert.same_codes() == ["072127"] and alert.ugc_codes() == ["PRC127"]


def test_update_and_cancel_reference_earlier_alerts(cap_fixtures: Path) -> None:
    first = parse_cap_alert(_load(cap_fixtures, "update-chain-1-alert.xml"))
    update = parse_cap_alert(_load(cap_fixtures, "update-chain-2-update.xml"))
    cancel = parse_cap_alert(_load(cap_fixtures, "update-chain-3-cancel.xml"))
    assert update.msg_type is CapMsgType.UPDATE and cancel.msg_type is CapMsgType.CANCEL
    identity = lambda a: (a.sender, a.identifier, a.sent)  # noqa: E731
    assert [identity(r) for r in update.references] == [identity(first)]
    assert [identity(r) for r in cancel.references] == [identity(first), identity(update)]
    assert cancel.infos[0].response_types == ["AllClear"]


def test_statewide_national_circle_and_resource(cap_fixtures: Path) -> None:
    assert parse_cap_alert(_load(cap_fixtures, "statewide-ohio-cem.xml")).same_codes() == ["039000"]
    npt = parse_cap_alert(_load(cap_fixtures, "national-npt.xml"))
    assert npt.same_codes() == ["000000"] and npt.infos[0].same_event_code() == "NPT"
    hazmat = parse_cap_alert(_load(cap_fixtures, "hazmat-circle.xml"))
    (circle,) = hazmat.infos[0].areas[0].circles
    assert (circle.lat, circle.lon, circle.radius_km) == (41.489, -81.693, 3.0)
    assert hazmat.incidents == "CUYCO-INC-2026-0815"
    assert hazmat.infos[0].categories == ["CBRNE", "Safety"]
    amber = parse_cap_alert(_load(cap_fixtures, "amber-cae-resource.xml"))
    photo, audio = amber.infos[0].resources
    assert (photo.mime_type, photo.size, photo.uri) == (
        "image/jpeg",
        48213,
        "https://www.ohioamberalert.example/2026-0021/photo.jpg",
    )
    assert audio.deref_uri == "SUQzBAAAAAAAAA==" and audio.uri is None
    assert amber.addresses == "ohio-eas ohio-wea"
    assert amber.same_codes() == ["039035", "039085", "039093", "039153"]


def test_cap_11_namespace_is_accepted(cap_fixtures: Path) -> None:
    alert = parse_cap_alert(_load(cap_fixtures, "cap11-rwt-test.xml"))
    assert alert.status is CapStatus.TEST
    assert alert.infos[0].language == "en-US"  # CAP default when <language> is absent


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_fixture_is_rejected_with_reason(cap_fixtures: Path, name: str) -> None:
    with pytest.raises(CapRejected) as caught:
        parse_cap_alert((cap_fixtures / "bad" / name).read_bytes())
    assert BAD[name] in caught.value.reason
    assert len(caught.value.reason) < 300


def test_xxe_never_reads_the_file(cap_fixtures: Path) -> None:
    with pytest.raises(CapRejected) as caught:
        parse_cap_batch((cap_fixtures / "bad" / "xxe-etc-passwd.xml").read_bytes())
    assert "root:" not in caught.value.reason


def test_oversized_document_is_rejected_before_parsing(cap_fixtures: Path) -> None:
    good = _load(cap_fixtures, "nws-tor-cuyahoga.xml")
    padded = good.replace(b"<code>", b"<note>" + b"x" * 1_048_576 + b"</note><code>")
    with pytest.raises(CapRejected, match=r"document over 1048576 bytes"):
        parse_cap_alert(padded)
    with pytest.raises(CapRejected, match=r"document over 100 bytes"):
        parse_cap_alert(good, max_bytes=100)
    # Even hostile content is refused on size alone, before any parser sees it.
    with pytest.raises(CapRejected, match="document over"):
        parse_cap_alert((cap_fixtures / "bad" / "billion-laughs.xml").read_bytes(), max_bytes=64)


def test_empty_and_non_alert_roots() -> None:
    with pytest.raises(CapRejected, match="empty document"):
        parse_cap_alert(b"  ")
    with pytest.raises(CapRejected, match="not a CAP <alert>"):
        parse_cap_alert(b"<feed/>")


def test_mis_cased_enumerations_are_read() -> None:
    doc = b"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X-1</identifier>
    <sender>s@example.gov</sender><sent>2026-01-01T00:00:00+00:00</sent><status>actual</status>
    <msgType>ALERT</msgType><scope>public</scope><info><event>Test</event>
    <urgency>immediate</urgency><severity>Severe</severity><certainty>Very Likely</certainty>
    </info></alert>"""
    alert = parse_cap_alert(doc)
    assert alert.status is CapStatus.ACTUAL and alert.infos[0].certainty.value == "Likely"


def test_invalid_enumeration_is_summarized() -> None:
    doc = b"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X-2</identifier>
    <sender>s@example.gov</sender><sent>2026-01-01T00:00:00+00:00</sent><status>Real</status>
    <msgType>Alert</msgType><scope>Public</scope></alert>"""
    with pytest.raises(CapRejected, match=r"^invalid CAP: status: "):
        parse_cap_alert(doc)


def test_identifier_with_space_is_rejected() -> None:
    doc = b"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X 3</identifier>
    <sender>s@example.gov</sender><sent>2026-01-01T00:00:00+00:00</sent><status>Actual</status>
    <msgType>Alert</msgType><scope>Public</scope></alert>"""
    with pytest.raises(CapRejected, match="identifier"):
        parse_cap_alert(doc)


def test_polygon_parsing() -> None:
    assert parse_polygon("1,2 3,4 5,6 1,2") == [(1, 2), (3, 4), (5, 6), (1, 2)]
    # An unclosed ring is closed, not rejected: the alert still matters.
    assert parse_polygon("1,2 3,4 5,6") == [(1, 2), (3, 4), (5, 6), (1, 2)]
    with pytest.raises(CapRejected, match="at least 3 points"):
        parse_polygon("1,2 3,4")
    with pytest.raises(CapRejected, match="invalid polygon point"):
        parse_polygon("1;2 3,4 5,6")


def test_out_of_range_polygon_is_rejected() -> None:
    doc = b"""<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X-4</identifier>
    <sender>s@example.gov</sender><sent>2026-01-01T00:00:00+00:00</sent><status>Actual</status>
    <msgType>Alert</msgType><scope>Public</scope><info><event>T</event><urgency>Past</urgency>
    <severity>Minor</severity><certainty>Unknown</certainty><area><areaDesc>A</areaDesc>
    <polygon>95,1 3,4 5,6 95,1</polygon></area></info></alert>"""
    with pytest.raises(CapRejected, match=r"invalid CAP: infos\.0\.areas\.0\.polygons"):
        parse_cap_alert(doc)


def test_ipaws_wrapper_keeps_good_alerts_and_rejects_the_bad_one(cap_fixtures: Path) -> None:
    batch = parse_cap_batch((cap_fixtures / "batch" / "ipaws-recent.xml").read_bytes())
    assert batch.kind == "wrapper"
    assert [p.alert.identifier for p in batch.alerts] == [
        "urn:oid:2.49.0.1.840.0.ipaws-batch-ffw-lake.001.1",
        "SUMMIT-EVI-2026-0420",
    ]
    assert batch.rejections == ["alert #2 (BAD-IPAWS-MISSING-SENT): missing <sent>"]
    assert len({p.raw_sha256 for p in batch.alerts}) == 2
    empty = parse_cap_batch((cap_fixtures / "batch" / "ipaws-empty.xml").read_bytes())
    assert (empty.kind, empty.alerts, empty.rejections) == ("wrapper", [], [])


def test_atom_with_embedded_alerts(cap_fixtures: Path) -> None:
    batch = parse_cap_batch((cap_fixtures / "batch" / "atom-embedded.xml").read_bytes())
    assert batch.kind == "atom"
    assert [p.alert.identifier for p in batch.alerts] == ["DEMO-ATOM-SPS-1"]
    assert batch.rejections == ["alert #2 (DEMO-ATOM-BROKEN): missing <urgency> in <info>"]


def test_nws_style_atom_entries_become_links() -> None:
    atom = b"""<?xml version="1.0"?>
    <feed xmlns="http://www.w3.org/2005/Atom" xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2">
      <id>https://api.weather.gov/alerts/active.atom?zone=OHZ014</id>
      <entry>
        <id>https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.a.001.1</id>
        <updated>2026-05-01T14:32:00-04:00</updated>
        <link rel="alternate" href="https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.a.001.1"/>
        <cap:event>Tornado Warning</cap:event>
        <cap:geocode><valueName>SAME</valueName><value>039035</value></cap:geocode>
      </entry>
      <entry>
        <id>urn:x:2</id><updated>2026-05-01T14:40:00-04:00</updated>
        <link rel="related" type="application/cap+xml" href="https://example.gov/cap/2.xml"/>
      </entry>
      <entry><id>urn:x:3</id></entry>
    </feed>"""
    batch = parse_cap_batch(atom)
    assert [(link.entry_id, link.url) for link in batch.links] == [
        (
            "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.a.001.1",
            "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.a.001.1",
        ),
        ("urn:x:2", "https://example.gov/cap/2.xml"),
    ]
    assert batch.rejections == ["ATOM entry urn:x:3: no CAP link"]


def test_wrapper_with_foreign_namespace_alert_is_rejected_alone(cap_fixtures: Path) -> None:
    good = _load(cap_fixtures, "national-npt.xml").split(b"?>", 1)[1]
    doc = (
        b"<alerts>" + good + b'<alert xmlns="urn:other"><identifier>Q</identifier></alert></alerts>'
    )
    batch = parse_cap_batch(doc)
    assert [p.alert.identifier for p in batch.alerts] == ["NPT-2026-10-01-1420"]
    assert batch.rejections == ["alert #2: wrong namespace 'urn:other'"]
