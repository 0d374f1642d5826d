"""/api/settings on real PostgreSQL and Redis: validation, versions, rollback, events, export."""

from __future__ import annotations

import json

from eas_schemas.envelope import decode_entry
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, SETTINGS_CHANGED_TYPE
from eas_schemas.streams import SETTINGS_CHANGED
from servicekit.bus import stream_key
from servicekit.tail import read_all

PIN = "PIN-7394-do-not-leak"
KEY = "-----BEGIN PRIVATE KEY-----\nsecret-key-material-5521\n-----END PRIVATE KEY-----"


def document(**identity) -> dict:
    return {
        "identity": {
            "name": "WXYZ Radio",
            "callsign": "WXYZ/FM",
            "originator": "EAS",
            "timezone": "America/New_York",
            **identity,
        },
        "location": {"same_codes": ["039049", "039000"], "ugc_codes": ["OHZ055", "OHC049"]},
        "feeds": {
            "nws": {
                "enabled": True,
                "zones": ["OHZ055"],
                "areas": ["OH"],
                "contact": "ops@wxyz.example",
            },
            "ipaws": {
                "enabled": True,
                "url": "https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest/feed",
                "interval_s": 60,
                "pin": PIN,
                "client_key_pem": KEY,
            },
            "cap_folders": ["/srv/cap"],
        },
        "relay": {
            "enabled": True,
            "events": ["TOR", "SVR", "RMT", "EAN"],
            "originators": ["PEP", "WXR"],
            "require_confirmation": ["RMT"],
        },
    }


async def test_defaults_before_first_save(client, operator):
    answer = await client.get("/api/settings", headers=operator.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == 0
    assert body["settings"]["identity"]["callsign"] == "NOCALL  "
    assert body["settings"]["feeds"]["ipaws"]["pin_set"] is False


async def test_invalid_document_is_refused_naming_each_bad_field(client, admin):
    bad = document(callsign="TOO-LONG-CALL", timezone="Mars/Base")
    bad["location"]["same_codes"] = ["12345", "039049"]
    bad["relay"]["events"] = ["TOR"]  # RMT still needs confirmation but is no longer relayed
    answer = await client.put("/api/settings", json={"settings": bad}, headers=admin.headers)
    assert answer.status_code == 422
    body = answer.json()
    assert set(body["fields"]) == {
        "settings.identity.callsign",
        "settings.identity.timezone",
        "settings.location.same_codes.0",
        "settings.relay",
    }
    assert PIN not in answer.text and KEY not in answer.text  # no input echoed back
    # Nothing was saved.
    assert (await client.get("/api/settings", headers=admin.headers)).json()["version"] == 0


async def test_model_level_error_does_not_echo_a_secret(client, admin):
    bad = document()
    bad["feeds"]["ipaws"].pop("url")  # enabled without url: the error covers the whole section
    answer = await client.put("/api/settings", json={"settings": bad}, headers=admin.headers)
    assert answer.status_code == 422
    assert answer.json()["fields"] == ["settings.feeds.ipaws"]
    assert PIN not in answer.text


async def test_save_versions_and_rollback(client, admin, operator):
    first = await client.put(
        "/api/settings", json={"settings": document(), "comment": "initial"}, headers=admin.headers
    )
    assert first.status_code == 200, first.text
    assert first.json() == {
        "changed": True,
        "version": 1,
        "previous_version": 0,
        "sections": ["identity", "location", "feeds", "relay"],
        "secrets_changed": ["feeds.ipaws.pin", "feeds.ipaws.client_key_pem"],
    }
    second = await client.patch(
        "/api/settings",
        json={"patch": {"identity": {"name": "WXYZ 101.1"}}, "base_version": 1},
        headers=admin.headers,
    )
    assert second.json()["version"] == 2 and second.json()["sections"] == ["identity"]

    # The same content again is no new version.
    same = await client.patch(
        "/api/settings", json={"patch": {"identity": {"name": "WXYZ 101.1"}}}, headers=admin.headers
    )
    assert same.json()["changed"] is False and same.json()["version"] == 2

    # A writer holding an old version is told so.
    stale = await client.patch(
        "/api/settings",
        json={"patch": {"identity": {"name": "Stale"}}, "base_version": 1},
        headers=admin.headers,
    )
    assert stale.status_code == 409

    current = (await client.get("/api/settings", headers=operator.headers)).json()
    assert current["version"] == 2 and current["saved_by"] == "root-admin"
    assert current["settings"]["identity"]["name"] == "WXYZ 101.1"
    assert current["location_names"]["039049"] == "Franklin County, OH"
    assert current["location_names"]["039000"] == "all of Ohio"

    versions = (await client.get("/api/settings/versions", headers=operator.headers)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert versions["items"][1]["comment"] == "initial"
    old = (await client.get("/api/settings/versions/1", headers=operator.headers)).json()
    assert old["settings"]["identity"]["name"] == "WXYZ Radio"

    rolled = await client.post("/api/settings/rollback", headers=admin.headers)
    assert rolled.status_code == 200
    assert rolled.json()["version"] == 3 and rolled.json()["sections"] == ["identity"]
    now = (await client.get("/api/settings", headers=operator.headers)).json()
    assert now["settings"]["identity"]["name"] == "WXYZ Radio"
    assert now["action"] == "rollback"
    assert now["settings"]["feeds"]["ipaws"]["pin_set"] is True

    missing = await client.get("/api/settings/versions/99", headers=operator.headers)
    assert missing.status_code == 404


async def test_rollback_without_history_is_refused(client, admin):
    answer = await client.post("/api/settings/rollback", headers=admin.headers)
    assert answer.status_code == 409


async def test_patch_result_is_validated_as_a_whole(client, admin):
    await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    answer = await client.patch(
        "/api/settings",
        json={"patch": {"relay": {"events": ["SVR"]}, "identity": {"callsign": "A-B"}}},
        headers=admin.headers,
    )
    assert answer.status_code == 422
    assert set(answer.json()["fields"]) == {"patch.relay", "patch.identity.callsign"}


async def test_secrets_are_kept_replaced_and_cleared(client, admin):
    await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    read = (await client.get("/api/settings", headers=admin.headers)).json()["settings"]
    # Sending back what was read (markers, no secrets) keeps them.
    again = await client.put("/api/settings", json={"settings": read}, headers=admin.headers)
    assert again.json()["changed"] is False
    cleared = await client.patch(
        "/api/settings", json={"patch": {"feeds": {"ipaws": {"pin": ""}}}}, headers=admin.headers
    )
    assert cleared.json()["secrets_changed"] == ["feeds.ipaws.pin"]
    ipaws = (await client.get("/api/settings", headers=admin.headers)).json()["settings"]["feeds"][
        "ipaws"
    ]
    assert ipaws["pin_set"] is False and ipaws["client_key_pem_set"] is True


async def test_settings_changed_published_after_commit(client, admin, aredis, bus_namespace):
    key = stream_key(SETTINGS_CHANGED, bus_namespace)
    assert await read_all(aredis, key) == []
    await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    entries = await read_all(aredis, key)
    assert len(entries) == 1
    envelope = decode_entry(entries[0][1])
    assert envelope.type == SETTINGS_CHANGED_TYPE
    assert envelope.source == "station-api/test-1"
    assert envelope.data["version"] == 1
    assert envelope.data["actor"] == "root-admin"
    assert envelope.data["action"] == "update"
    assert envelope.data["secrets_changed"] == ["feeds.ipaws.pin", "feeds.ipaws.client_key_pem"]
    assert PIN not in entries[0][1]["envelope"] and "secret-key-material" not in str(entries)

    # By the time the event is readable the version is committed and readable too.
    current = await client.get("/api/settings", headers=admin.headers)
    assert current.json()["version"] == envelope.data["version"]
    # The current secret-free document is where services read it.
    stored = json.loads(await aredis.get(stream_key(CURRENT_SETTINGS_KEY, bus_namespace)))
    assert stored["version"] == 1
    assert stored["settings"]["identity"]["callsign"] == "WXYZ/FM "
    assert PIN not in json.dumps(stored)

    # A refused change announces nothing.
    await client.put(
        "/api/settings", json={"settings": document(callsign="A-B")}, headers=admin.headers
    )
    assert len(await read_all(aredis, key)) == 1
    # Neither does a change that changes nothing.
    await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    assert len(await read_all(aredis, key)) == 1


async def test_publish_failure_leaves_event_in_outbox_until_flushed(
    client, admin, aredis, bus_namespace
):
    outbox = client.app.state.outbox
    real_bus = outbox.bus

    class Broken:
        async def publish_entries(self, entries):
            raise ConnectionError("redis away")

    outbox.bus = Broken()
    answer = await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    assert answer.status_code == 200  # the change is committed; the event waits
    key = stream_key(SETTINGS_CHANGED, bus_namespace)
    assert await read_all(aredis, key) == []
    outbox.bus = real_bus
    assert await outbox.flush(grace_s=0) == 1
    entries = await read_all(aredis, key)
    assert len(entries) == 1 and decode_entry(entries[0][1]).data["version"] == 1
    assert await outbox.flush(grace_s=0) == 0


async def test_export_and_import(client, admin, operator, aredis, bus_namespace):
    await client.put("/api/settings", json={"settings": document()}, headers=admin.headers)
    exported = await client.get("/api/settings/export", headers=operator.headers)
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    doc = exported.json()
    assert doc["format"] == "eas-station-settings" and doc["version"] == 1
    assert PIN not in exported.text and "pin_set" not in exported.text
    assert "pin" not in doc["settings"]["feeds"]["ipaws"]

    doc["settings"]["identity"]["name"] = "Imported Station"
    doc["settings"]["location"]["same_codes"] = ["039035"]
    imported = await client.post("/api/settings/import", json=doc, headers=admin.headers)
    assert imported.status_code == 200, imported.text
    assert imported.json()["sections"] == ["identity", "location"]
    assert imported.json()["secrets_changed"] == []  # secrets absent from a file are kept
    current = (await client.get("/api/settings", headers=admin.headers)).json()
    assert current["action"] == "import"
    assert current["settings"]["feeds"]["ipaws"]["pin_set"] is True

    broken = dict(doc)
    broken["settings"] = {**doc["settings"], "identity": {"callsign": "X-Y"}}
    refused = await client.post("/api/settings/import", json=broken, headers=admin.headers)
    assert refused.status_code == 422
    assert refused.json()["fields"] == ["settings.identity.callsign"]
    wrong_format = await client.post(
        "/api/settings/import", json={**doc, "format": "other"}, headers=admin.headers
    )
    assert wrong_format.status_code == 422


async def test_operator_reads_but_cannot_write(client, operator, viewer):
    assert (await client.get("/api/settings", headers=operator.headers)).status_code == 200
    put = await client.put("/api/settings", json={"settings": document()}, headers=operator.headers)
    assert put.status_code == 403
    assert (await client.get("/api/settings", headers=viewer.headers)).status_code == 403
