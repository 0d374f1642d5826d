"""Decode history: idempotent storage from the bus, filters and paging, clip retention."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from eas_monitor.clips import AudioRing, new_clip_id, write_clip
from eas_monitor.payloads import eom_event, header_event
from eas_monitor.repository import DecodeFilter
from eas_monitor.service import Invalid, MonitorService
from eas_same import parse_header
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import Hearing
from servicekit.db import make_engine

from .conftest import RWT

TOR = "ZCZC-WXR-TOR-039035-039093+0030-1181322-KCLE/NWS-"


@pytest.fixture
async def service(settings) -> AsyncIterator[MonitorService]:
    engine = make_engine(settings.database_url)
    yield MonitorService(engine, settings, None)
    await engine.dispose()


def hearing(input_id: int, at: datetime, clip: str | None = None) -> Hearing:
    return Hearing(
        input_id=input_id,
        input_name=f"in-{input_id}",
        heard_at=at,
        confidence=0.99,
        bursts=3,
        agreed=3,
        start_s=0.0,
        end_s=4.0,
        started_at=at,
        ended_at=at,
        clip_id=clip,
    )


def untyped(envelope: EventEnvelope) -> EventEnvelope[dict]:
    return EventEnvelope[dict].model_validate_json(envelope.model_dump_json())


def clip_file(settings) -> str:
    clip_id = new_clip_id()
    write_clip(settings.clips_dir, clip_id, np.zeros(8000, dtype=np.int16), 8000)
    return clip_id


async def test_store_is_idempotent_and_keeps_clips(service: MonitorService, settings):
    at = datetime.now(UTC)
    clip = clip_file(settings)
    env = untyped(header_event(parse_header(RWT), [hearing(1, at, clip), hearing(2, at)], "t"))
    assert await service.store_event(env) is True
    assert await service.store_event(env) is False  # redelivery: nothing changes
    rows, cursor = await service.list_decodes(DecodeFilter(), 10, None)
    assert cursor is None and len(rows) == 1
    assert rows[0]["input_ids"] == [1, 2] and rows[0]["clip_id"] == clip
    assert rows[0]["data"]["header"]["event_name"] == "Required Weekly Test"
    path = await service.clip_path(clip)
    assert path.is_file()


async def test_filters_and_paging(service: MonitorService):
    base = datetime(2026, 4, 28, 13, 0, tzinfo=UTC)
    for i in range(5):
        at = base + timedelta(minutes=i)
        text = RWT if i % 2 else TOR
        await service.store_event(
            untyped(header_event(parse_header(text), [hearing(1 + i % 2, at)], "t"))
        )
    await service.store_event(untyped(eom_event([hearing(3, base)], "t")))

    everything, _ = await service.list_decodes(DecodeFilter(), 50, None)
    assert len(everything) == 6
    tor, _ = await service.list_decodes(DecodeFilter(event_code="TOR"), 50, None)
    assert [r["event_code"] for r in tor] == ["TOR"] * 3
    eoms, _ = await service.list_decodes(DecodeFilter(type="same.eom"), 50, None)
    assert [r["text"] for r in eoms] == ["NNNN"]
    on_two, _ = await service.list_decodes(DecodeFilter(input_id=2), 50, None)
    assert len(on_two) == 2
    window = DecodeFilter(since=base + timedelta(minutes=1), until=base + timedelta(minutes=3))
    assert len((await service.list_decodes(window, 50, None))[0]) == 2

    seen, cursor = [], None
    while True:
        page, cursor = await service.list_decodes(DecodeFilter(), 2, cursor)
        seen.extend(r["id"] for r in page)
        if cursor is None:
            break
    assert seen == [r["id"] for r in everything]  # newest first, no gaps, no repeats
    with pytest.raises(Invalid):
        await service.list_decodes(DecodeFilter(), 2, "garbage")


async def test_clip_retention_by_count_and_orphans(service: MonitorService, settings):
    service.settings = settings.model_copy(update={"clip_max_count": 1})
    at = datetime.now(UTC)
    old, new = clip_file(settings), clip_file(settings)
    orphan = clip_file(settings)  # a suppressed duplicate's clip: no event refers to it
    (settings.clips_dir / f"{orphan}.wav").touch()
    os.utime(settings.clips_dir / f"{orphan}.wav", (0, 0))
    await service.store_event(untyped(header_event(parse_header(RWT), [hearing(1, at, old)], "t")))
    await service.store_event(untyped(header_event(parse_header(TOR), [hearing(1, at, new)], "t")))
    removed = await service.prune_clips()
    assert removed == 2
    assert not (settings.clips_dir / f"{old}.wav").exists()
    assert not (settings.clips_dir / f"{orphan}.wav").exists()
    assert (settings.clips_dir / f"{new}.wav").exists()
    rows, _ = await service.list_decodes(DecodeFilter(event_code="RWT"), 5, None)
    assert rows[0]["clip_id"] is None


def test_audio_ring_keeps_the_latest_samples():
    ring = AudioRing(rate=10, seconds=1.0)  # 10 samples
    for start in range(0, 25, 7):
        ring.write(np.arange(start, min(start + 7, 25), dtype=np.int16))
    assert ring.total == 25
    assert ring.extract(15, 25).tolist() == list(range(15, 25))
    assert ring.extract(0, 18).tolist() == [15, 16, 17]  # older samples are gone
    assert ring.extract(30, 40).tolist() == []
