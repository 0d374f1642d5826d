"""The supervised playout worker does not outlive a station killed with kill -9 (an orphan
would keep holding the outputs, unsupervised and on old settings, beside the worker the next
start makes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import asyncio, sys
    from audio_control.playout.supervisor import WorkerSupervisor
    from audio_control.settings import AudioControlSettings

    async def main():
        child = [sys.executable, "-c", "import time; time.sleep(600)"]
        supervisor = WorkerSupervisor(AudioControlSettings(), child)
        task = asyncio.ensure_future(supervisor.run(asyncio.Event()))
        while supervisor.process is None:
            await asyncio.sleep(0.05)
        print(supervisor.process.pid, flush=True)
        await task

    asyncio.run(main())
    """
)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_worker_dies_with_a_killed_station() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _running(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(worker), "the worker outlived the station that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
        if "worker" in locals() and _running(worker):
            os.kill(worker, signal.SIGKILL)
