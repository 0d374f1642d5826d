from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eas_schemas.cap import CapMsgType
from pollers.cap_xml import CapRejected
from pollers.nws_geojson import parse_nws_json, polygons_from_geometry

TOR = "urn:oid:2.49.0.1.840.0.4f1a3c5e7b9d2f4a6c8e0b2d4f6a8c0e2b4d6f8a.001.1"
HEAT = "urn:oid:2.49.0.1.840.0.9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b.001.1"
SVS = "urn:oid:2.49.0.1.840.0.1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e.002.1"


@pytest.fixture
def collection(nws_fixtures: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((nws_fixtures / "active.json").read_text())
    return doc


def test_active_collection(nws_fixtures: Path) -> None:
    batch = parse_nws_json((nws_fixtures / "active.json").read_bytes(), max_bytes=1_000_000)
    assert batch.rejections == []
    assert [p.alert.identifier for p in batch.alerts] == [TOR, HEAT, SVS]


def test_polygon_alert_swaps_to_lat_lon(nws_fixtures: Path) -> None:
    tor = parse_nws_json((nws_fixtures / "active.json").read_bytes()).alerts[0].alert
    assert tor.sender == "w-nws.webmaster@noaa.gov"
    assert tor.sent == datetime(2026, 5, 20, 22, 5, tzinfo=UTC)
    info = tor.infos[0]
    assert info.event == "Tornado Warning" and info.same_event_code() == "TOR"
    assert info.response_types == ["Shelter"] and info.categories == ["Met"]
    ring = info.areas[0].polygons[0]
    assert ring[0] == (41.35, -81.80) and ring[0] == ring[-1]
    assert tor.same_codes() == ["039035"] and tor.ugc_codes() == ["OHC035"]
    params = [(p.value_name, p.value) for p in info.parameters]
    assert ("BLOCKCHANNEL", "EAS") in params and ("BLOCKCHANNEL", "NWEM") in params
    assert tor.codes == ["IPAWSv1.0"]


def test_zone_alert_with_null_geometry(nws_fixtures: Path) -> None:
    heat = parse_nws_json((nws_fixtures / "active.json").read_bytes()).alerts[1].alert
    area = heat.infos[0].areas[0]
    assert area.polygons == [] and area.area_desc == "Cuyahoga; Summit"
    assert heat.ugc_codes() == ["OHZ014", "OHZ089"]
    assert heat.same_codes() == ["039035", "039153"]
    assert heat.infos[0].same_event_code() is None  # this feature carries no eventCode


def test_update_with_references_and_multipolygon(nws_fixtures: Path) -> None:
    svs = parse_nws_json((nws_fixtures / "active.json").read_bytes()).alerts[2].alert
    assert svs.msg_type is CapMsgType.UPDATE
    (ref,) = svs.references
    assert (ref.sender, ref.identifier, ref.sent) == (
        "w-nws.webmaster@noaa.gov",
        TOR,
        datetime(2026, 5, 20, 22, 5, tzinfo=UTC),
    )
    rings = svs.infos[0].areas[0].polygons
    assert len(rings) == 2 and all(r[0] == r[-1] for r in rings)
    assert rings[1][0] == (41.20, -81.45)


def test_same_code_from_parameters_and_identifier_from_url(collection: dict[str, Any]) -> None:
    feature = copy.deepcopy(collection["features"][1])
    feature["properties"]["parameters"]["SAME"] = ["HTA"]
    del feature["properties"]["id"]
    alert = parse_nws_json(json.dumps(feature)).alerts[0].alert
    assert alert.identifier == HEAT  # from the feature's https://api.weather.gov/alerts/ URL
    assert alert.infos[0].same_event_code() == "HTA"


def test_bad_feature_is_rejected_alone(collection: dict[str, Any]) -> None:
    del collection["features"][1]["properties"]["sent"]
    # A geometry that cannot be read still leaves the alert its zone and county codes.
    collection["features"][2]["geometry"] = {"type": "Point", "coordinates": [-81.0, 41.0]}
    batch = parse_nws_json(json.dumps(collection))
    assert [p.alert.identifier for p in batch.alerts] == [TOR, SVS]
    assert batch.alerts[1].deviations == ("geometry_unusable",)
    assert batch.rejections == [f"feature #2 ({HEAT}): missing properties.sent"]
    # Without its geocodes as well, nothing says where it applies: not an alert.
    del collection["features"][2]["properties"]["geocode"]
    batch = parse_nws_json(json.dumps(collection))
    assert batch.rejections[1] == (
        f"feature #3 ({SVS}): no area: no SAME/UGC geocode and no usable geometry"
    )


def test_whole_document_problems() -> None:
    with pytest.raises(CapRejected, match="malformed JSON"):
        parse_nws_json(b'{"type": "FeatureCollection", ')
    with pytest.raises(CapRejected, match="not a GeoJSON"):
        parse_nws_json(b'{"type": "Topology"}')
    with pytest.raises(CapRejected, match="document over 10 bytes"):
        parse_nws_json(b'{"type": "FeatureCollection", "features": []}', max_bytes=10)


def test_geometry_conversion() -> None:
    assert polygons_from_geometry(None) == []
    polygon = {"type": "Polygon", "coordinates": [[[1, 2], [3, 4], [5, 6]], [[0, 0], [1, 1]]]}
    # Holes are dropped (CAP has none) and an open ring is closed.
    assert polygons_from_geometry(polygon) == [[(2, 1), (4, 3), (6, 5), (2, 1)]]
