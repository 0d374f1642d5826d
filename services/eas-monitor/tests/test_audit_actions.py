"""Issue 12: every privileged eas-monitor action reaches the audit log (audit.records)."""

from __future__ import annotations

import io

import httpx
import soundfile as sf

from eas_same import generate
from eas_schemas.envelope import decode_entry
from eas_schemas.system_events import AUDIT_RECORDS
from servicekit.auth.permissions import Role
from servicekit.bus import stream_key

from .conftest import RWT, auth
from .test_api_inputs import _file

BASE = "/api/eas-monitor"


async def _records(aredis, namespace: str) -> list[dict]:
    entries = await aredis.xrange(stream_key(AUDIT_RECORDS, namespace))
    return [decode_entry(fields).data for _, fields in entries]


async def test_input_actions_and_uploads_are_audited(
    client: httpx.AsyncClient, sample_wav, aredis, bus_namespace, token
):
    made = await client.post(f"{BASE}/inputs", json=_file(sample_wav, loop=True))
    assert made.status_code == 201, made.text
    input_id = made.json()["id"]
    target = f"input/{input_id}"
    steps = [
        ("PATCH", f"/inputs/{input_id}", {"name": "renamed"}, 200),
        ("POST", f"/inputs/{input_id}/start", None, 200),
        ("POST", f"/inputs/{input_id}/stop", None, 200),
        ("DELETE", f"/inputs/{input_id}", None, 204),
    ]
    for method, path, body, code in steps:
        answer = await client.request(method, BASE + path, json=body)
        assert answer.status_code == code, (path, answer.text)
    buf = io.BytesIO()
    sf.write(buf, generate(RWT, 22050, attention=1.0), 22050, format="WAV", subtype="PCM_16")
    decoded = await client.post(f"{BASE}/decode", files={"file": ("rwt.wav", buf.getvalue())})
    assert decoded.status_code == 200
    records = await _records(aredis, bus_namespace)
    assert [(r["action"], r["target"]) for r in records] == [
        ("input.create", target),
        ("input.update", target),
        ("input.start", target),
        ("input.stop", target),
        ("input.delete", target),
        ("upload.decode", "upload"),
    ]
    assert all(r["actor"] == "test-operator" and r["service"] == "eas-monitor" for r in records)
    assert records[1]["detail"] == {"changed": ["name"]}
    assert records[-1]["detail"]["headers"] == 1 and records[-1]["detail"]["file"] == "rwt.wav"
    # A refused action (a viewer's) is not recorded as done.
    refused = await client.post(
        f"{BASE}/inputs", json=_file(sample_wav), headers=auth(token(Role.VIEWER))
    )
    assert refused.status_code == 403
    assert len(await _records(aredis, bus_namespace)) == len(records)
