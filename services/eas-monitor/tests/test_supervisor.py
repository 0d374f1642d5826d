"""The supervisor restarts dead and stalled workers with backoff and reports it all."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eas_monitor.inputs import FileConfig
from eas_monitor.settings import EasMonitorSettings
from eas_monitor.supervisor import InputRecord, Supervisor
from eas_schemas.envelope import decode_entry
from eas_schemas.monitor_events import InputState
from eas_schemas.streams import MONITOR_STATUS
from servicekit.bus import AsyncBus

RUNNING = 'print(\'{"t": "state", "state": "running", "rate": 8000}\', flush=True)'

DIES = f"import sys\n{RUNNING}\nprint('boom: the card went away', file=sys.stderr)\nsys.exit(3)"
STALLS = f"""
import time
{RUNNING}
while True:  # reports, but its sample count never moves
    print('{{"t": "progress", "samples_total": 800, "samples_per_s": 0}}', flush=True)
    time.sleep(0.1)
"""
FATAL = """
import sys
print('{"t": "fatal", "error": "cannot open /x.wav: no such file"}', flush=True)
sys.exit(78)
"""
HEALTHY = f"""
import time
{RUNNING}
n = 0
while True:
    n += 800
    print('{{"t": "progress", "samples_total": %d, "samples_per_s": %d, "signal": true}}'
          % (n, 8000 + n % 7), flush=True)
    time.sleep(0.1)
"""


def fake(script: str) -> Callable[[int], list[str]]:
    return lambda _input_id: [sys.executable, "-c", script]


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, bus_namespace: str) -> EasMonitorSettings:
    return EasMonitorSettings(
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        data_dir=tmp_path,
        stall_timeout_s=1.0,
        startup_grace_s=3.0,
        restart_backoff_s=0.2,
        restart_backoff_max_s=0.8,
        stop_timeout_s=2.0,
        status_refresh_s=60.0,
    )


RECORD = InputRecord(id=7, name="fake", config=FileConfig(path="/x.wav"), wanted_running=True)


@pytest.fixture
async def make(settings, aredis) -> AsyncIterator[Callable[[str], Supervisor]]:
    made: list[Supervisor] = []

    def build(script: str) -> Supervisor:
        sup = Supervisor(settings, AsyncBus(aredis, settings.bus_namespace), command=fake(script))
        made.append(sup)
        return sup

    yield build
    for sup in made:
        await sup.close()


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, what: Callable[[], object] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not reached in time: {what()}"
        await asyncio.sleep(0.05)


async def published(aredis, ns: str) -> list[dict]:
    entries = await aredis.xrange(f"{ns}:{MONITOR_STATUS.name}")
    return [decode_entry(fields).data for _id, fields in entries]


async def test_a_worker_that_dies_is_restarted_with_backoff_and_reported(make, aredis, settings):
    sup = make(DIES)
    await sup.start([RECORD])
    rt = sup.runtimes[7]
    await wait_until(lambda: rt.restarts >= 3)
    assert rt.errors >= 3
    assert "worker exited with code 3" in (rt.last_error or "")
    assert "the card went away" in (rt.last_error or "")
    states = [s["state"] for s in await published(aredis, settings.bus_namespace)]
    assert "backoff" in states and "running" in states
    # backoff doubles up to the cap
    assert rt.backoff == pytest.approx(settings.restart_backoff_max_s)


async def test_a_stalled_worker_is_killed_restarted_and_reported(make, aredis, settings):
    sup = make(STALLS)
    await sup.start([RECORD])
    rt = sup.runtimes[7]
    first_pid = None
    await wait_until(lambda: rt.alive and rt.state == InputState.RUNNING)
    first_pid = rt.proc.pid if rt.proc else None
    await wait_until(lambda: rt.restarts >= 1 and rt.alive, timeout=20)
    assert rt.proc is not None and rt.proc.pid != first_pid
    statuses = await published(aredis, settings.bus_namespace)
    stalled = [s for s in statuses if s["state"] == "stalled"]
    assert stalled and stalled[0]["last_error"].startswith("stalled: no samples for 1 s")
    assert stalled[0]["running"] is False


async def test_a_configuration_error_fails_without_retrying(make, settings, aredis):
    # Input 7 has a configuration error; input 8, the marker, dies at once and again.
    scripts = {7: FATAL, 8: DIES}
    sup = make(FATAL)
    sup.command = lambda input_id: [sys.executable, "-c", scripts[input_id]]
    await sup.start([RECORD])
    rt = sup.runtimes[7]
    await wait_until(lambda: rt.state == InputState.FAILED, what=rt.status)
    # The barrier instead of a sleep: the marker is restarted only by the supervision loop,
    # which looks at input 7 on the same passes; after its restarts after backoff, the loop
    # has had its chances to restart input 7, and did not.
    marker = await sup.upsert(
        InputRecord(id=8, name="marker", config=RECORD.config, wanted_running=True)
    )
    await wait_until(lambda: marker.restarts >= 2, what=marker.status)
    assert rt.state == InputState.FAILED and rt.restarts == 0
    assert rt.last_error == "cannot open /x.wav: no such file"
    # a new explicit start tries again
    await sup.upsert(RECORD, kick=True)
    await wait_until(lambda: rt.restarts == 1 and rt.state == InputState.FAILED, what=rt.status)


async def test_status_is_published_on_change_only(make, aredis, settings):
    sup = make(HEALTHY)
    await sup.start([RECORD])
    rt = sup.runtimes[7]
    # Each report is applied, then published if it changed anything, before the next one is
    # read: once report n is applied, whatever report n - 1 caused is on the stream.
    report = 800  # samples per report in HEALTHY
    await wait_until(lambda: rt.state == InputState.RUNNING and rt.samples_total >= 2 * report)
    seen = rt.samples_total
    before = len(await published(aredis, settings.bus_namespace))
    # 20 progress reports with a changing rate, and the one after them (a condition, not a
    # sleep).
    await wait_until(lambda: rt.samples_total >= seen + 21 * report)
    after = await published(aredis, settings.bus_namespace)
    assert len(after) == before, [s["state"] for s in after]
    assert after[-1]["running"] is True and after[-1]["signal_present"] is True

    stopped = await sup.upsert(
        InputRecord(id=7, name="fake", config=RECORD.config, wanted_running=False)
    )
    assert stopped.state == InputState.STOPPED and not stopped.alive
    last = (await published(aredis, settings.bus_namespace))[-1]
    assert last["state"] == "stopped" and last["pid"] is None
