"""Faults across the whole pipeline, short variant (``eas_testkit.faults``; the 10,000-alert
run is ``bench/scaled_faults/run.py``): while alerts flow from a CAP folder through the scaled
topology, every service is SIGKILLed in turn, Redis (private, append-only) is restarted and
PostgreSQL (a private throwaway cluster) is stopped for a few seconds. Every alert is stored
once, announced once and decided once, nothing airs twice, each ``/ws`` client that resumed
saw every ``alert.created`` once, nothing is dead-lettered, and reads during the database
outage answered 503 with a message, quickly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eas_testkit.faults import FaultPlan, run_faults
from servicekit.errors import DATABASE_UNAVAILABLE

# Fourteen processes started, eight of them killed and restarted, on a shared 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def test_every_alert_once_through_kills_a_redis_restart_and_a_database_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = FaultPlan(alerts=40, pg_outage_s=6, aired_every=20, settle_bound_s=180)
    report = asyncio.run(run_faults(plan, tmp_path / "faults"))
    summary = "\n".join(report.lines())
    with capsys.disabled():
        print("\n" + summary)
    # Each check names the whole report: a failure in CI shows every count, not only one.
    assert report.unsettled == [], summary
    assert report.stored == plan.alerts and report.stored_twice == {}, summary
    assert report.created_events == plan.alerts and report.created_twice == {}, summary
    assert report.decided == plan.alerts and report.decided_twice == {}, summary
    assert report.relayed_expected == plan.alerts // plan.aired_every, summary
    assert report.aired == report.relayed_expected and report.aired_twice == {}, summary
    assert report.ws_missing == {}, summary
    assert all(twice == 0 for _, twice, _ in report.ws.values()), summary
    assert report.dead_letters == [], summary
    assert report.outage_reads, f"no read was made during the outage\n{summary}"
    assert set(report.outage_reads) == {f"503 {DATABASE_UNAVAILABLE}"}, summary
    assert report.outage_slowest_s < 15, summary  # an answer, not a hang
