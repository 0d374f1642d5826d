"""The published AsyncAPI document stays what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from alerts_api.app import asyncapi_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "alerts-api.json"


def test_checked_in_asyncapi_matches_the_code():
    generated = asyncapi_document()
    assert json.loads(DOC.read_text()) == generated, (
        "docs/asyncapi/alerts-api.json is stale: regenerate with "
        "`uv run python -m alerts_api asyncapi > docs/asyncapi/alerts-api.json`"
    )


def test_document_covers_every_alert_event_and_payload_schema():
    doc = asyncapi_document()
    assert doc["asyncapi"].startswith("3.")
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert {"alert.created", "alert.updated", "alert.cancelled", "alert.expired"} <= names
    assert "CapAlert" in doc["components"]["schemas"]
    assert set(doc["operations"]) == {
        "send_alert_events",
        "send_service_heartbeat",
        "send_bus_deadletter",
        "receive_alerts_ingested",
    }


async def test_served_at_asyncapi_json(client):
    answer = await client.get("/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json() == asyncapi_document()
