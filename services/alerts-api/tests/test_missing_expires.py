"""A CAP alert without ``expires`` (CAP 1.2 makes it optional): active for the documented
default (``missing_expires_h``, 24 h) after it takes effect, then expired like any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from eas_schemas.cap import CapAlert
from eas_testkit.factories import ingested, make_alert


def _auth(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]


def _without_expires(alert: CapAlert, effective: datetime | None = None) -> CapAlert:
    infos = [i.model_copy(update={"expires": None, "effective": effective}) for i in alert.infos]
    return alert.model_copy(update={"infos": infos})


async def test_default_is_documented_in_settings(settings) -> None:
    assert settings.missing_expires_h == 24.0


async def test_without_expires_stays_active_then_expires_from_effective(client):
    service = client.app.state.alert_service
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = await service.ingest(ingested(_without_expires(make_alert(identifier="fresh"))))
    # Sent 30 h ago but in effect only 2 h ago: counted from effective, still active.
    late = _without_expires(
        make_alert(identifier="late", sent=now - timedelta(hours=30)),
        effective=now - timedelta(hours=2),
    )
    late_id = (await service.ingest(ingested(late))).alert_id
    # Sent (and in effect) 25 h ago: already past the default when it arrives.
    old = _without_expires(make_alert(identifier="old", sent=now - timedelta(hours=25)))
    old_id = (await service.ingest(ingested(old))).alert_id

    async def state(alert_id: int) -> dict:
        got = await client.get(f"/api/alerts/{alert_id}", headers=_auth(client))
        return got.json()

    assert (await state(old_id))["alert"]["state"] == "expired"
    assert (await service.expire_due()) == 0
    assert (await state(fresh.alert_id))["alert"]["state"] == "active"
    detail = await state(late_id)
    assert detail["alert"]["state"] == "active" and detail["alert"]["expires"] is None
    # A day after it took effect it expires, and its history says why.
    assert await service.expire_due(now=now + timedelta(hours=22, minutes=1)) == 1
    detail = await state(late_id)
    assert detail["alert"]["state"] == "expired"
    assert detail["history"][-1]["reason"] == "no expires given: 24 h since it took effect passed"
    assert (await state(fresh.alert_id))["alert"]["state"] == "active"
