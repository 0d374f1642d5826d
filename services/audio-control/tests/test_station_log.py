"""The station log on real Redis and PostgreSQL: entries written with what they record
(decisions, operators, originations, playout per output), filters and paging, CSV, the
monthly PDF, verify catching an edited row, and retention keeping the chain verifiable."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import text

from audio_control.services.station_log import LogKind, StationLog, entry
from eas_schemas.envelope import EventEnvelope
from eas_schemas.playout_events import (
    PLAYOUT_FINISHED_TYPE,
    PLAYOUT_STARTED_TYPE,
    ItemState,
    PlayoutEvent,
)
from eas_schemas.relay_events import PrecedenceClass

from .conftest import heard_event
from .test_service import created, heard, now_cap

pytestmark = pytest.mark.integration


def _app(service: httpx.AsyncClient) -> Any:
    return service.app  # type: ignore[attr-defined]


async def _log(service: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    got = await service.get("/api/audio/log", params=params)
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def _playout(etype: str, state: ItemState, decision_id: int, header: str) -> EventEnvelope[Any]:
    event = PlayoutEvent(
        item_id=5,
        message_id=9,
        decision_id=decision_id,
        header=header,
        event_code="TOR",
        precedence=20,
        precedence_class=PrecedenceClass.LOCAL,
        state=state,
        output="wav-folder",
        output_kind="wav_folder",
        at=datetime.now(UTC),
        duration_s=31.5 if state is ItemState.AIRED else None,
        reason="aired" if state is ItemState.AIRED else "on air",
    )
    return EventEnvelope[dict[str, Any]](
        type=etype, source="audio-control-playout/test", data=event.model_dump(mode="json")
    )


async def test_a_cap_alert_its_decision_and_its_airing_are_logged(
    service: httpx.AsyncClient,
) -> None:
    relay = _app(service).state.relay_service
    outcome = await relay.handle_alert_event(created(now_cap(), alert_id=41))
    decision_id = int(outcome.split()[1].rstrip(":"))
    received = (await _log(service, kind="received_cap"))["items"]
    assert len(received) == 1
    first = received[0]
    assert first["event_code"] == "TOR" and first["originator"] == "WXR"
    assert first["decision_state"] == "scheduled" and first["decision_id"] == decision_id
    assert first["alert_id"] == 41 and first["locations"] == ["039035"]
    assert first["header"].startswith("ZCZC-WXR-TOR-039035+0100-")
    assert first["reasons"]

    header = first["header"]
    await relay.on_playout(_playout(PLAYOUT_STARTED_TYPE, ItemState.PLAYING, decision_id, header))
    done = _playout(PLAYOUT_FINISHED_TYPE, ItemState.AIRED, decision_id, header)
    await relay.on_playout(done)
    await relay.on_playout(done)  # redelivered: logged once
    playout = (await _log(service, kind="playout"))["items"]
    assert [p["result"]["state"] for p in playout] == ["aired", "playing"]
    assert playout[0]["output"] == "wav-folder" and playout[0]["result"]["duration_s"] == "31.500"
    relayed = (await _log(service, kind="relayed"))["items"]
    assert len(relayed) == 1 and relayed[0]["decision_state"] == "aired"
    assert "wav-folder" in relayed[0]["reasons"]

    verdict = (await service.get("/api/audio/log/verify")).json()
    assert verdict["intact"] is True and verdict["broken"] is None
    # The composer may add the message's entry meanwhile: at least what was read is there.
    assert verdict["count"] >= 4


async def test_a_header_heard_on_air_is_logged_with_what_was_heard(
    service: httpx.AsyncClient,
) -> None:
    relay = _app(service).state.relay_service
    issued = datetime.now(UTC).replace(second=0, microsecond=0)
    event = heard_event(event="RWT", duration="0015", issued=issued)
    await relay.handle_heard_header(heard(event))
    (got,) = (await _log(service, kind="received_air"))["items"]
    assert got["event_code"] == "RWT" and got["originator"] == "WXR"
    assert got["detail"]["heard_header"] == event.text and got["detail"]["source"] == "air"
    assert got["summary"].startswith("Received on air: ")
    assert got["decision_state"] and got["reasons"]


async def test_an_operator_forwarding_a_decision_is_logged_with_who(
    service: httpx.AsyncClient,
) -> None:
    relay = _app(service).state.relay_service
    # FFW is not among the station's relayed events: ignored, then forwarded by hand.
    cap = now_cap(event="Flash Flood Warning", same_event="FFW")
    outcome = await relay.handle_alert_event(created(cap, alert_id=3))
    decision_id = int(outcome.split()[1].rstrip(":"))
    forwarded = await service.post(
        f"/api/audio/decisions/{decision_id}/forward", json={"note": "county asked"}
    )
    assert forwarded.status_code == 200, forwarded.text
    ops = (await _log(service, kind="operator"))["items"]
    assert len(ops) == 1
    assert ops[0]["actor"] == "test-operator" and ops[0]["decision_state"] == "forwarded"
    assert "county asked" in ops[0]["reasons"]
    assert (await _log(service, actor="test-operator", kind="operator"))["total"] == 1


async def test_filters_paging_csv_and_bad_filters(service: httpx.AsyncClient) -> None:
    for _ in range(3):
        made = await service.post("/api/audio/originations/rwt")
        assert made.status_code == 201, made.text
    relay = _app(service).state.relay_service
    await relay.handle_alert_event(created(now_cap(), alert_id=8))

    everything = await _log(service)
    total = everything["total"]
    assert total >= 4
    seqs = [i["seq"] for i in everything["items"]]
    assert seqs == sorted(seqs, reverse=True)

    originated = await _log(service, kind="originated", limit=2)
    assert originated["total"] == 3 and len(originated["items"]) == 2
    rest = await _log(service, kind="originated", limit=2, cursor=originated["next_cursor"])
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None and rest["total"] == 3
    assert {i["seq"] for i in originated["items"]}.isdisjoint(i["seq"] for i in rest["items"])
    assert all(i["event_code"] == "RWT" for i in originated["items"] + rest["items"])

    assert (await _log(service, event_code="TOR"))["total"] >= 1
    assert (await _log(service, event_code="TOR", kind="originated"))["total"] == 0
    assert (await _log(service, originator="WXR"))["total"] >= 1
    assert (await _log(service, text="composed by test-operator"))["total"] == 3
    assert (await _log(service, text="COMPOSED BY"))["total"] == 3  # case-insensitive
    assert (await _log(service, text="100%_"))["total"] == 0  # wildcards are literal
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await _log(service, **{"from": future}))["total"] == 0
    assert (await _log(service, to=future))["total"] >= total  # the composer may add one

    for params, field in (
        ({"kind": "gossip"}, "kind"),
        ({"event_code": "tornado"}, "event_code"),
        ({"from": "yesterday"}, "from"),
        ({"from": future, "to": future}, "to"),
        ({"limit": 0}, "limit"),
        ({"text": "x"}, "text"),
    ):
        bad = await service.get("/api/audio/log", params=params)
        assert bad.status_code == 422, (params, bad.text)
        names = [f.split(".")[0] for f in bad.json()["fields"]]
        assert names == [field], (params, bad.json())
    assert (await service.get("/api/audio/log", params={"cursor": "nope"})).status_code == 400

    exported = await service.get("/api/audio/log.csv", params={"kind": "originated"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 3 and all(r["kind"] == "originated" for r in rows)
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert all(r["header"].startswith("ZCZC-") and len(r["hash"]) == 64 for r in rows)


async def test_the_monthly_pdf_opens_and_shows_the_entries(service: httpx.AsyncClient) -> None:
    made = await service.post("/api/audio/originations/rwt")
    assert made.status_code == 201
    header = made.json()["header"]
    relay = _app(service).state.relay_service
    await relay.handle_alert_event(created(now_cap(), alert_id=12))
    # The month in the station's time zone (America/New_York in these tests).
    now = datetime.now(UTC) - timedelta(hours=5)
    got = await service.get(f"/api/audio/log/{now.year}/{now.month}.pdf")
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(got.content))
    printed = "\n".join(page.extract_text() for page in reader.pages)
    assert "Test Station" in printed and "intact" in printed
    assert "originated" in printed and "received_cap" in printed
    # Long cells wrap, so look for the header's distinctive part.
    assert header.split("-")[1] in printed and "Received by CAP" in printed

    empty = await service.get("/api/audio/log/2001/2.pdf")
    assert empty.status_code == 200
    assert "0 entries" in PdfReader(io.BytesIO(empty.content)).pages[0].extract_text()
    for path, field in (("2026/13.pdf", "month"), ("1999/1.pdf", "year")):
        bad = await service.get(f"/api/audio/log/{path}")
        assert bad.status_code == 422 and bad.json()["fields"] == [field], bad.json()


async def test_verify_names_an_edited_entry(service: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await service.post("/api/audio/originations/rwt")).status_code == 201
    items = (await _log(service))["items"]
    middle = sorted(i["seq"] for i in items)[1]
    engine = _app(service).state.station_log.engine
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE station_log SET actor = 'nobody' WHERE seq = :s"), {"s": middle}
        )
    verdict = (await service.get("/api/audio/log/verify")).json()
    assert verdict["intact"] is False
    assert verdict["broken"]["seq"] == middle and verdict["broken"]["reason"] == "edited"


async def test_retention_prunes_old_entries_and_the_chain_still_verifies(
    service: httpx.AsyncClient,
) -> None:
    log: StationLog = _app(service).state.station_log
    old = datetime.now(UTC) - timedelta(days=800)
    async with log.engine.begin() as conn:
        await log.write(
            conn,
            [entry(LogKind.OPERATOR, f"old {i}", at=old + timedelta(days=i)) for i in range(3)],
        )
    assert (await service.post("/api/audio/originations/rwt")).status_code == 201
    before = await _log(service)
    assert before["total"] == 4
    assert log.station.settings.retention.station_log_days == 730
    assert await log.prune() == 3
    after = await _log(service)
    assert after["total"] == 1 and after["items"][0]["kind"] == "originated"
    verdict = (await service.get("/api/audio/log/verify")).json()
    assert verdict["intact"] is True and verdict["first_seq"] == 4 and verdict["count"] == 1


async def test_what_a_worker_airs_is_logged_per_output_through_the_bus(
    service: httpx.AsyncClient, settings: Any
) -> None:
    """The real path: an origination sent to air, a playout worker playing it on two
    outputs, its playout.events read back by the service's consumer into the log."""
    import asyncio

    from .test_playout_worker import Rig, add_output, items, run_worker

    made = await service.post("/api/audio/originations/rwt")
    assert made.status_code == 201, made.text
    message_id = made.json()["id"]
    rig = Rig(settings.model_copy(update={"lease_ttl_s": 1.0, "playout_block_s": 0.05}))
    await asyncio.to_thread(add_output, rig, "second")
    sent = await service.post(f"/api/audio/messages/{message_id}/send")
    assert sent.status_code == 201, sent.text
    item_id = sent.json()["item_id"]

    def aired() -> bool:
        return items(rig)[item_id].state == "aired"

    await asyncio.to_thread(run_worker, rig.worker(), aired)
    want = {("wav-folder", "playing"), ("wav-folder", "aired"), ("second", "playing")}
    want.add(("second", "aired"))
    got: set[tuple[str, str]] = set()
    for _ in range(200):
        page = await _log(service, kind="playout")
        got = {(i["output"], i["result"]["state"]) for i in page["items"] if i["output"]}
        if got >= want:
            break
        await asyncio.sleep(0.05)
    assert got == want
    # Sending it queued it: that is the 'originated ... sent to air' entry, not another one.
    assert [i for i in page["items"] if i["output"] is None] == []
    sent_entries = (await _log(service, kind="originated", text="sent to air"))["items"]
    assert len(sent_entries) == 1 and sent_entries[0]["item_id"] == item_id
    assert sent_entries[0]["actor"] == "test-operator"
    assert (await service.get("/api/audio/log/verify")).json()["intact"] is True
