"""The reference tables a county picker and an event picker read."""

from __future__ import annotations

from typing import Any


async def test_counties_by_name_with_their_same_code(client: Any, viewer: Any) -> None:
    answer = await client.get("/api/reference/locations?q=cuyahoga", headers=viewer.headers)
    assert answer.status_code == 200
    assert {"code": "039035", "name": "Cuyahoga County, OH"} in answer.json()


async def test_a_state_by_name_comes_first_as_the_whole_state(client: Any, viewer: Any) -> None:
    answer = await client.get("/api/reference/locations?q=ohio&limit=5", headers=viewer.headers)
    body = answer.json()
    assert body[0] == {"code": "039000", "name": "all of Ohio"}
    assert len(body) <= 5


async def test_a_code_prefix_finds_the_counties(client: Any, viewer: Any) -> None:
    answer = await client.get("/api/reference/locations?q=03903&limit=50", headers=viewer.headers)
    codes = [row["code"] for row in answer.json()]
    assert "039035" in codes and all(c.startswith("03903") for c in codes)


async def test_a_one_letter_query_is_refused_naming_q(client: Any, viewer: Any) -> None:
    answer = await client.get("/api/reference/locations?q=c", headers=viewer.headers)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "q"]


async def test_events_with_names_without_retired_codes(client: Any, viewer: Any) -> None:
    answer = await client.get("/api/reference/events", headers=viewer.headers)
    assert answer.status_code == 200
    events = {row["code"]: row for row in answer.json()}
    assert events["TOR"]["name"] == "Tornado Warning"
    assert events["RWT"]["event_class"] == "test"
