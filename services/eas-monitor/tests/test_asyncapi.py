"""The published AsyncAPI document stays what the code generates."""

from __future__ import annotations

from pathlib import Path

from eas_monitor.app import asyncapi_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "eas-monitor.json"


def test_document_covers_every_monitor_event():
    doc = asyncapi_document()
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert {
        "same.header",
        "same.eom",
        "same.attention_tone",
        "monitor.status",
        "audio.input_level",
    } <= names
    assert {"SameHeaderEvent", "Hearing", "MonitorStatus", "InputLevel"} <= set(
        doc["components"]["schemas"]
    )
    assert "send_same_events" in doc["operations"] and "receive_same_events" in doc["operations"]
