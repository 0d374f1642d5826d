"""Issue 12: manual alert create and cancel reach the audit log (audit.records)."""

from __future__ import annotations

from eas_schemas.envelope import decode_entry
from eas_schemas.system_events import AUDIT_RECORDS
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key

from .test_api_auth import MANUAL, client  # noqa: F401  (the fixture)


async def _records(aredis, namespace: str) -> list[dict]:
    entries = await aredis.xrange(stream_key(AUDIT_RECORDS, namespace))
    return [decode_entry(fields).data for _, fields in entries]


async def test_manual_create_and_cancel_are_audited(
    client,  # noqa: F811
    token,
    aredis,
    bus_namespace,
):
    headers = {"Authorization": f"Bearer {token(Role.OPERATOR)}"}
    created = await client.post("/api/alerts", json=MANUAL, headers=headers)
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]
    cancelled = await client.post(
        f"/api/alerts/{alert_id}/cancel", json={"note": "drill over"}, headers=headers
    )
    assert cancelled.status_code == 201, cancelled.text
    records = await _records(aredis, bus_namespace)
    assert [(r["action"], r["target"]) for r in records] == [
        ("alert.create", f"alert/{alert_id}"),
        ("alert.cancel", f"alert/{alert_id}"),
    ]
    assert all(r["actor"] == "test-operator" and r["actor_role"] == "operator" for r in records)
    assert all(r["service"] == "alerts-api" and r["client_addr"] for r in records)
    assert records[0]["detail"]["event"] == "Civil Emergency Message"
