"""The published AsyncAPI document stays what the code generates."""

from __future__ import annotations

from pathlib import Path

from alerts_api.app import asyncapi_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "alerts-api.json"


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
        "receive_settings_changed",
    }


async def test_served_at_asyncapi_json(client):
    answer = await client.get("/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json() == asyncapi_document()
