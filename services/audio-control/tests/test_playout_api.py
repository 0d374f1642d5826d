"""The playout queue through audio-control's API and consumers, on real Redis and PostgreSQL:
a relayed alert is queued once its message is ready and a Cancel takes it off before it
plays; the queue is in air order (EAN first); originations are sent, cancelled and refused
when they cannot be; worker commands are refused at once with no worker and answered by a
running one after it acted."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import insert, select, update

from audio_control.playout.keying import keying_for
from audio_control.playout.outputs import open_output
from audio_control.playout.store import make_sync_engine
from audio_control.playout.supervisor import WorkerSupervisor, worker_env
from audio_control.playout.worker import PlayoutWorker
from audio_control.settings import AudioControlSettings
from audio_control.tables import playout_airings, playout_items, playout_outputs
from eas_schemas.envelope import decode_entry
from eas_schemas.events import AlertEventType, AlertState
from eas_schemas.streams import ALERT_EVENTS, PLAYOUT_COMMANDS, PLAYOUT_EVENTS
from servicekit.bus import stream_key

from .test_service import created, lifecycle, now_cap, publish


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        await asyncio.sleep(0.05)


async def playout_types(aredis: Any, ns: str) -> list[str]:
    return [decode_entry(f).type for _, f in await aredis.xrange(stream_key(PLAYOUT_EVENTS, ns))]


async def test_a_relayed_alert_is_queued_and_a_cancel_takes_it_off_before_it_plays(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    cap = now_cap()
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(cap, alert_id=1))

    async def queued() -> Any:
        return (await service.get("/api/audio/playout/queue")).json()

    (item,) = await until("a queued item", queued)
    assert item["state"] == "queued" and item["event_code"] == "TOR"
    assert item["precedence_class"] == "local" and item["decision_id"] is not None
    await publish(
        aredis,
        bus_namespace,
        ALERT_EVENTS,
        lifecycle(AlertEventType.CANCELLED, cap, 1, AlertState.CANCELLED, "cancelled by NWS"),
    )

    async def emptied() -> bool:
        return (await service.get("/api/audio/playout/queue")).json() == []

    await until("the queue emptied by the Cancel", emptied)
    types = await playout_types(aredis, bus_namespace)
    assert types == ["playout.queued", "playout.cancelled"], types
    cancelled = await service.post(f"/api/audio/playout/{item['item_id']}/cancel")
    assert cancelled.status_code == 409 and "only a queued item" in cancelled.text


async def test_the_queue_is_in_air_order_and_originations_are_sent_and_cancelled(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    rwt = await service.post("/api/audio/originations/rwt", json={})
    assert rwt.status_code == 201, rwt.text
    sent = await service.post(f"/api/audio/messages/{rwt.json()['id']}/send")
    assert sent.status_code == 201, sent.text
    test_item = sent.json()
    assert test_item["state"] == "queued" and test_item["precedence_class"] == "test"
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(now_cap(), alert_id=7))

    async def both() -> Any:
        got = (await service.get("/api/audio/playout/queue")).json()
        return got if len(got) == 2 else None

    order = [i["event_code"] for i in await until("two queued items", both)]
    assert order == ["TOR", "RWT"]  # a local warning airs before a test that came first

    assert (await service.post("/api/audio/playout/999999/cancel")).status_code == 404
    resent = await service.post(f"/api/audio/playout/{test_item['item_id']}/resend")
    assert resent.status_code == 409 and "only an aired or interrupted" in resent.text
    cancelled = await service.post(f"/api/audio/playout/{test_item['item_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert [i["event_code"] for i in (await service.get("/api/audio/playout/queue")).json()] == [
        "TOR"
    ]
    assert (await service.post("/api/audio/messages/999999/send")).status_code == 404


async def test_commands_need_a_worker_and_one_answers_after_it_acted(
    service: httpx.AsyncClient, settings: AudioControlSettings
) -> None:
    status = await service.get("/api/audio/playout/status")
    assert status.status_code == 200 and status.json()["ok"] is False
    assert "no playout worker" in status.json()["detail"]
    stop = await service.post("/api/audio/playout/stop")
    assert stop.status_code == 409 and "no playout worker is running" in stop.text
    tone = await service.post("/api/audio/outputs/no-such/test-tone", json={"seconds": 0.2})
    assert tone.status_code == 404

    worker_settings = settings.model_copy(
        update={"instance": "api-test-worker", "lease_ttl_s": 1.0, "playout_block_s": 0.05}
    )

    def keyer(output: Any) -> Any:
        return keying_for(output.keying)

    worker = PlayoutWorker(worker_settings, open_output, keyer)  # type: ignore[arg-type]
    stop_worker = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop_worker,), daemon=True)
    thread.start()
    try:

        async def answered() -> Any:
            got = (await service.get("/api/audio/playout/status")).json()
            return got if got["ok"] and got["state"].get("outputs") == "wav-folder" else None

        held = await until("a worker holding the output", answered)
        assert held["command_id"]
        tone = await service.post("/api/audio/outputs/wav-folder/test-tone", json={"seconds": 0.2})
        assert tone.status_code == 200, tone.text
        assert tone.json()["ok"] is True
        stopped = await service.post("/api/audio/playout/stop")
        # The worker's own answer: nothing was on air to stop (not "command sent").
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["ok"] is False and stopped.json()["detail"] == "nothing is on air"
    finally:
        stop_worker.set()
        await asyncio.to_thread(thread.join, 10)
    gone = await service.get("/api/audio/playout/status")
    assert gone.json()["ok"] is False  # a worker that stops takes its presence with it


async def test_an_ean_decision_tells_the_worker_to_cut_before_its_message_is_composed(
    service: httpx.AsyncClient, aredis: Any, bus_namespace: str
) -> None:
    ean = now_cap(
        identifier="EAN-1",
        event="Emergency Action Notification",
        same_event="EAN",
        codes=("000000",),
        parameters=(("EAS-ORG", "PEP"),),
    )
    await publish(aredis, bus_namespace, ALERT_EVENTS, created(ean, alert_id=9))

    async def preempts() -> Any:
        entries = await aredis.xrange(stream_key(PLAYOUT_COMMANDS, bus_namespace))
        found = [decode_entry(f).data for _, f in entries]
        return [c for c in found if c["kind"] == "preempt"] or None

    (command,) = await until("a preempt command", preempts)
    assert command["precedence"] == 0 and command["decision_id"] is not None

    async def queued() -> Any:
        return (await service.get("/api/audio/playout/queue")).json()

    (item,) = await until("the EAN queued once composed", queued)
    assert item["event_code"] == "EAN" and item["decision_id"] == command["decision_id"]
    assert len(await preempts()) == 1  # the message's arrival does not cut again


async def test_a_killed_worker_is_restarted_and_never_airs_the_cut_message_again(
    service: httpx.AsyncClient, settings: AudioControlSettings, aredis: Any, bus_namespace: str
) -> None:
    engine = make_sync_engine(settings.database_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(playout_outputs).values(enabled=False))  # the default WAV folder
        conn.execute(
            insert(playout_outputs).values(
                name="card",
                kind="null",
                config=json.dumps({"kind": "null", "realtime": True}),
                keying=json.dumps({"kind": "none"}),
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
    rmt = await service.post("/api/audio/originations/rmt", json={})
    assert rmt.status_code == 201, rmt.text
    worker_settings = settings.model_copy(
        update={"instance": "kill-test", "lease_ttl_s": 1.0, "playout_block_s": 0.05}
    )
    supervisor = WorkerSupervisor(worker_settings, backoff_s=0.2)
    stop = asyncio.Event()
    supervising = asyncio.create_task(supervisor.run(stop))
    try:
        sent = await service.post(f"/api/audio/messages/{rmt.json()['id']}/send")
        item = sent.json()["item_id"]

        async def on_air() -> bool:
            return "playout.started" in await playout_types(aredis, bus_namespace)

        await until("the RMT on air", on_air, 60)
        first = supervisor.process
        assert first is not None
        first.kill()  # as the OOM killer or a power blip in the worker would

        async def settled() -> Any:
            with engine.connect() as conn:
                row = conn.execute(select(playout_items).where(playout_items.c.id == item)).one()
            return row if row.state == "interrupted" and supervisor.restarts == 1 else None

        row = await until("the cut item settled by the next worker", settled, 60)
        assert supervisor.process is not first and supervisor.running
        await asyncio.sleep(1.5)  # the new worker has time to (wrongly) air it again
    finally:
        stop.set()
        await supervising
    assert "not aired again" in row.reason
    with engine.connect() as conn:
        airings = conn.execute(
            select(playout_airings).where(playout_airings.c.item_id == item)
        ).all()
    engine.dispose()
    assert [a.state for a in airings] == ["interrupted"]  # one airing, never a second
    types = await playout_types(aredis, bus_namespace)
    assert types.count("playout.started") == 1, types
    entries = await aredis.xrange(stream_key(PLAYOUT_EVENTS, bus_namespace))
    cut = [
        decode_entry(f).data for _, f in entries if decode_entry(f).type == "playout.interrupted"
    ]
    assert any("EOM sent on restart" in e["reason"] for e in cut), cut


def test_the_worker_reads_back_every_setting_the_service_hands_it(
    settings: AudioControlSettings, monkeypatch: Any
) -> None:
    given = settings.model_copy(
        update={
            "trusted_proxies": ["10.0.0.1", "10.1.0.0/16"],
            "lease_ttl_s": 2.5,
            "requeue_interrupted": False,
        }
    )
    env = worker_env(given)
    for key in list(os.environ):
        if key.startswith(("AUDIO_CONTROL_", "EAS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("AUDIO_CONTROL_"):
            monkeypatch.setenv(key, value)
    # What the worker process builds from its environment is what the service had.
    assert AudioControlSettings().model_dump() == given.model_dump()


async def test_replicas_starting_together_make_one_first_output(
    service: httpx.AsyncClient, settings: AudioControlSettings, tmp_path: Any
) -> None:
    # The fault run saw the second of two replicas fail its start on the unique output name.
    playout = service.app.state.playout_service  # type: ignore[attr-defined]
    engine = playout.engine
    async with engine.begin() as conn:
        await conn.execute(playout_outputs.delete())
    await asyncio.gather(*(playout.ensure_an_output(tmp_path / f"aired-{i}") for i in range(4)))
    async with engine.connect() as conn:
        names = (await conn.execute(select(playout_outputs.c.name))).scalars().all()
    assert names == ["wav-folder"]
