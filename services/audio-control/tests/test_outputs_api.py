"""/api/audio/outputs on real Redis and PostgreSQL: CRUD, refusals naming the field, the
secret never returned, permissions, the live status, and no delete while on air."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from audio_control.settings import AudioControlSettings
from audio_control.tables import playout_airings
from eas_schemas.envelope import decode_entry
from eas_schemas.playout_events import PLAYOUT_LEASE_KEY, PLAYOUT_LEVEL_KEY, OutputLevel
from eas_schemas.streams import AUDIT_RECORDS
from servicekit.auth.permissions import Role
from servicekit.bus import fields_to_str, stream_key

from .test_playout_worker import Rig, queue

pytestmark = pytest.mark.integration

URL = "/api/audio/outputs"
STREAM = {"kind": "stream", "url": "icecast://127.0.0.1:8000/eas.mp3", "format": "mp3"}


@pytest.fixture
def admin(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(Role.ADMIN)}"}


def fields(r: httpx.Response) -> list[str]:
    body: dict[str, Any] = r.json()
    return list(body["fields"])


async def test_create_list_get_update_delete(
    service: httpx.AsyncClient, admin: dict[str, str], tmp_path: Any
) -> None:
    listed = await service.get(URL)
    assert [o["name"] for o in listed.json()] == ["wav-folder"]  # a fresh station's output
    assert listed.json()[0]["config"]["folder"].startswith("/")
    body = {"name": "studio", "config": {"kind": "wav_folder", "folder": str(tmp_path)}}
    r = await service.post(URL, json=body, headers=admin)
    assert r.status_code == 201, r.text
    out = r.json()
    assert r.headers["Location"] == "/api/audio/outputs/studio"
    assert out["kind"] == "wav_folder" and out["config"]["gain_db"] == 0.0
    assert out["keying"] == {"kind": "none", "pre_roll_s": 0.0, "post_roll_s": 0.0}
    assert out["enabled"] is True and out["has_secret"] is False
    assert out["status"] == {"held_by": None, "playing": False, "level": None, "last": None}
    again = await service.post(URL, json=body, headers=admin)
    assert again.status_code == 409 and "studio" in again.json()["detail"]
    change = {
        "name": "studio-b",
        "config": {"kind": "null", "gain_db": -3},
        "keying": {"kind": "gpio", "pin": 17, "pre_roll_s": 0.5},
        "enabled": False,
    }
    r = await service.put(f"{URL}/studio", json=change, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "studio-b" and r.json()["keying"]["pin"] == 17
    assert (await service.get(f"{URL}/studio")).status_code == 404
    assert (await service.get(f"{URL}/studio-b")).json()["enabled"] is False
    clash = await service.put(
        f"{URL}/studio-b", json={**change, "name": "wav-folder"}, headers=admin
    )
    assert clash.status_code == 409
    assert (await service.delete(f"{URL}/studio-b", headers=admin)).status_code == 204
    assert (await service.delete(f"{URL}/studio-b", headers=admin)).status_code == 404
    assert [o["name"] for o in (await service.get(URL)).json()] == ["wav-folder"]


async def test_the_secret_is_write_only(
    service: httpx.AsyncClient, admin: dict[str, str], aredis: Any, bus_namespace: str
) -> None:
    body = {"name": "icecast", "config": STREAM, "secret": "hackme-9"}
    r = await service.post(URL, json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["has_secret"] is True
    for got in (r, await service.get(URL), await service.get(f"{URL}/icecast")):
        assert "hackme" not in got.text
    # Left out, the stored secret stays; null clears it, which an Icecast stream refuses.
    r = await service.put(
        f"{URL}/icecast", json={"config": {**STREAM, "bitrate_kbps": 96}}, headers=admin
    )
    assert r.status_code == 200 and r.json()["has_secret"] is True
    r = await service.put(f"{URL}/icecast", json={"config": STREAM, "secret": None}, headers=admin)
    assert r.status_code == 422 and fields(r) == ["secret"]
    audit = await aredis.xrange(stream_key(AUDIT_RECORDS, bus_namespace))
    raw = [json.dumps(dict(f), default=str) for _, f in audit]
    actions = [decode_entry(fields_to_str(f)).data["action"] for _, f in audit]
    assert actions == ["audio.output.create", "audio.output.update"]
    assert not any("hackme" in r for r in raw)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"config": {"kind": "tape"}}, "config", "kind"),
        (
            {"config": {"kind": "wav_folder", "folder": "aired"}},
            "config.wav_folder.folder",
            "absolute",
        ),
        ({"config": {"kind": "device", "device": "hw:0,0;x"}}, "config.device.device", "ALSA"),
        (
            {"config": {**STREAM, "url": "icecast://source:letmein@127.0.0.1:8000/eas.mp3"}},
            "config.stream.url",
            "secret",
        ),
        ({"config": STREAM}, "secret", "source password"),
        ({"config": {"kind": "null"}, "secret": "x"}, "secret", "no secret"),
        (
            {"config": {"kind": "null"}, "keying": {"kind": "serial", "port": "COM1"}},
            "keying.serial.port",
            "/dev",
        ),
        ({"name": "../etc", "config": {"kind": "null"}}, "name", "pattern"),
    ],
)
async def test_bad_outputs_are_refused_naming_the_field(
    service: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], field: str, words: str
) -> None:
    r = await service.post(URL, json={"name": "bad", **body}, headers=admin)
    assert r.status_code == 422, r.text
    assert field in fields(r)
    assert words in json.dumps(r.json()["detail"])
    assert "letmein" not in r.text


async def test_only_admins_change_outputs(
    service: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    body = {"name": "x", "config": {"kind": "null"}}
    assert (await service.post(URL, json=body)).status_code == 403  # the operator's token
    viewer = {"Authorization": f"Bearer {token(Role.VIEWER)}"}
    assert (await service.get(URL, headers=viewer)).status_code == 200
    assert (await service.delete(f"{URL}/wav-folder", headers=viewer)).status_code == 403


async def test_status_and_no_delete_while_on_air(
    service: httpx.AsyncClient,
    admin: dict[str, str],
    settings: AudioControlSettings,
    aredis: Any,
    bus_namespace: str,
) -> None:
    out = (await service.get(f"{URL}/wav-folder")).json()
    rig = Rig(settings)
    item = queue(rig, "TOR", 3, seconds=0.2)
    with rig.worker("setup").store.begin() as conn:
        conn.execute(
            insert(playout_airings).values(
                item_id=item,
                output_id=out["id"],
                state="playing",
                started_at=datetime.now(UTC),
                result="{}",
            )
        )
    level = OutputLevel(
        output="wav-folder",
        peak_dbfs=-3.5,
        rms_dbfs=-12.0,
        playing=True,
        item_id=item,
        window_s=0.25,
        at=datetime.now(UTC),
    )
    await aredis.set(f"{bus_namespace}:{PLAYOUT_LEVEL_KEY}:{out['id']}", level.model_dump_json())
    await aredis.set(f"{bus_namespace}:{PLAYOUT_LEASE_KEY}:{out['id']}", "worker-7")
    status = (await service.get(f"{URL}/wav-folder")).json()["status"]
    assert status["held_by"] == "worker-7" and status["playing"] is True
    assert status["level"]["peak_dbfs"] == -3.5 and status["last"]["item_id"] == item
    r = await service.delete(f"{URL}/wav-folder", headers=admin)
    assert r.status_code == 409 and f"item {item}" in r.json()["detail"]
