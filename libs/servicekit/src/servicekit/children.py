"""Child processes that must not outlive the process that started them.

A station killed with ``kill -9`` (or by the OOM killer) does not run its shutdown: an embedded
Redis or a supervised playout worker it started would keep running, unsupervised, beside the
copies the next start makes (a second Redis on the same files; a playout worker holding the
outputs with the old settings while the new one stands by)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the child when ``parent`` dies
    (Linux ``PR_SET_PDEATHSIG``); None where there is no such call. The kernel watches the
    *thread* that forks: start such children from the main thread (asyncio's loop does)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody to outlive
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
