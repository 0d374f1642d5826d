"""Every relevance match and the feed's deviations on the stored alert, in the list, the
detail and the lifecycle events; a change of station codes that only adds a match is
announced too."""

from __future__ import annotations

import httpx

from eas_schemas.envelope import decode_entry
from eas_testkit.factories import ingested, make_alert
from servicekit.bus import stream_key


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


async def _events(aredis, namespace: str) -> list[tuple[str, dict]]:
    rows = await aredis.xrange(stream_key("alert.events", namespace))
    return [(env.type, env.data) for env in (decode_entry(f) for _, f in rows)]


async def test_every_match_in_detail_list_and_event(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    alert = make_alert(same_codes=("039035", "039000"), ugc_codes=("OHZ014",))
    ing = ingested(alert).model_copy(update={"deviations": ["sender_from_sender_name"]})
    result = await service.ingest(ing)
    detail = (await client.get(f"/api/alerts/{result.alert_id}", headers=_auth(client))).json()
    item = detail["alert"]
    want = [
        {"kind": "SAME", "rule": "exact", "alert_code": "039035", "station_code": "039035"},
        {"kind": "SAME", "rule": "statewide", "alert_code": "039000", "station_code": "039035"},
        {"kind": "UGC", "rule": "ugc_exact", "alert_code": "OHZ014", "station_code": "OHZ014"},
    ]
    assert item["relevance_matches"] == want
    assert item["relevance_reason"] == "SAME exact: alert 039035 ~ station 039035"
    assert item["deviations"] == ["sender_from_sender_name"]
    assert "deviations: sender_from_sender_name" in detail["history"][0]["reason"]
    listed = (await client.get("/api/alerts", headers=_auth(client))).json()["items"]
    assert listed[0]["relevance_matches"] == want
    ((etype, data),) = await _events(aredis, bus_namespace)
    assert etype == "alert.created"
    assert data["alert"]["relevance_matches"] == want
    assert data["alert"]["deviations"] == ["sender_from_sender_name"]


async def test_a_new_second_match_is_announced(client, aredis, bus_namespace):
    service = client.app.state.alert_service
    alert = make_alert(same_codes=("039035", "039055"), ugc_codes=())
    result = await service.ingest(ingested(alert))
    # 039035 stays first, so the reason is the same; only the list of matches grows.
    assert service.set_station_codes(["039035", "039055"], ["OHZ014"])
    assert await service.recompute_relevance() == 1
    assert await service.recompute_relevance() == 0  # the same codes again change nothing
    detail = (await client.get(f"/api/alerts/{result.alert_id}", headers=_auth(client))).json()
    assert detail["alert"]["relevance_reason"] == "SAME exact: alert 039035 ~ station 039035"
    assert [m["alert_code"] for m in detail["alert"]["relevance_matches"]] == ["039035", "039055"]
    types = [t for t, _ in await _events(aredis, bus_namespace)]
    assert types == ["alert.created", "alert.updated"]
