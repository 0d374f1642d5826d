"""Counting what the pipeline did, from the bus and the API themselves: alerts stored,
``alert.created`` announced, relay decisions made, messages aired, dead letters. The scaled
fault run (``eas_testkit.faults``) and the one-machine kill test
(``tests/integration/test_station_kill.py``) judge their runs with the same counts."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio as aioredis

from eas_schemas.relay_events import RELAY_DECISION_TYPE
from eas_schemas.streams import ALERT_EVENTS, DEAD_LETTER, PLAYOUT_EVENTS, RELAY_DECISIONS
from eas_testkit.scaled import stream_envelopes

SETTLED = ("playout.finished", "playout.failed", "playout.interrupted")


def identifier_of(subject: str) -> str:
    """The CAP identifier in an ``alert.*`` event's subject (``<sender>/<identifier>/<sent>``)."""
    return subject.split("/")[1]


async def created(bus: aioredis.Redis, ns: str) -> list[str]:
    """The identifier of every ``alert.created`` on the stream, in order (repeats show)."""
    return [
        identifier_of(e.subject)
        for e in await stream_envelopes(bus, ALERT_EVENTS, ns)
        if e.type == "alert.created"
    ]


async def decisions(bus: aioredis.Redis, ns: str) -> dict[str, set[str]]:
    """Per alert identifier, the ids of the relay decisions made for it (one expected)."""
    per_alert: dict[str, set[str]] = {}
    for e in await stream_envelopes(bus, RELAY_DECISIONS, ns):
        if e.type == RELAY_DECISION_TYPE and e.data.get("alert_identifier"):
            per_alert.setdefault(e.data["alert_identifier"], set()).add(str(e.data["decision_id"]))
    return per_alert


async def playout(bus: aioredis.Redis, ns: str) -> list[Any]:
    return await stream_envelopes(bus, PLAYOUT_EVENTS, ns)


async def airings_started(bus: aioredis.Redis, ns: str) -> list[str]:
    """``message_id@output`` of every ``playout.started``: a message aired twice on one output
    shows twice."""
    return [
        f"{e.data['message_id']}@{e.data.get('output')}"
        for e in await playout(bus, ns)
        if e.type == "playout.started"
    ]


async def messages_settled(bus: aioredis.Redis, ns: str) -> set[str]:
    """Messages whose playout ended (aired, failed or interrupted) on some output."""
    return {e.data["message_id"] for e in await playout(bus, ns) if e.type in SETTLED}


async def dead_letters(bus: aioredis.Redis, ns: str) -> list[str]:
    return [
        f"{e.data['stream']}: {e.data['reason']}"
        for e in await stream_envelopes(bus, DEAD_LETTER, ns)
    ]


async def stored(http: httpx.AsyncClient, expected: int) -> list[str]:
    """The identifier of every stored alert (``GET /api/alerts?status=all``, all pages; a
    store holding more than twice ``expected`` stops the walk, the counts already fail)."""
    items: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, "status": "all"}
        if cursor:
            params["cursor"] = cursor
        answer = await http.get("/api/alerts", params=params)
        answer.raise_for_status()
        page = answer.json()
        items += [item["identifier"] for item in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor or len(items) > expected * 2:
            return items
