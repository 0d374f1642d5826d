"""Background work in ``every``: a failure is logged each round, a database outage once when
it starts and once when it ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from servicekit.tasks import every


async def test_a_database_outage_is_one_line_each_way(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    results: list[Exception | None] = [ConnectionRefusedError(111, "refused")] * 3
    results += [None, ValueError("a bug")]

    async def work() -> None:
        outcome = results.pop(0) if results else None
        if not results:
            stop.set()
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.INFO, logger="servicekit.tasks"):
        await asyncio.wait_for(every(0.001, stop, work), 10)
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in got] == ["WARNING", "INFO", "ERROR"], got
    assert "waits for the database" in got[0][1]  # once, for three failed rounds
    assert "the database answers again" in got[1][1]
    assert caplog.records[2].exc_info is not None  # any other failure: its traceback
