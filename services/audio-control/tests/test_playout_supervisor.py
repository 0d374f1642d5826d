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

import pytest

from servicekit.children import alive

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_worker_dies_with_a_killed_station() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker), "the worker outlived the station that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
        if "worker" in locals() and alive(worker):
            os.kill(worker, signal.SIGKILL)
