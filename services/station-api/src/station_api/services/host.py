"""Resources of the machine station-api runs on, and dependency health with latency.

Deliberately absent: process lists, command lines, environment variables, user names, network
addresses. Those carry secrets (database URLs with passwords, keys passed as arguments) and
nothing here needs them.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import psutil


def host_snapshot(disk_paths: list[str]) -> dict[str, Any]:
    """Blocking (psutil reads /proc); call it in a worker thread."""
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    boot = psutil.boot_time()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    disks = []
    for path in disk_paths:
        try:
            usage = psutil.disk_usage(path)
        except OSError:
            continue
        disks.append(
            {
                "path": path,
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "free_bytes": usage.free,
                "percent": usage.percent,
            }
        )
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "cpu": {
            "count": psutil.cpu_count() or 0,
            # Since the previous call (station-api calls it at start), never blocking.
            "percent": psutil.cpu_percent(interval=None),
            "load_average": load,
        },
        "memory": {
            "total_bytes": memory.total,
            "available_bytes": memory.available,
            "percent": memory.percent,
            "swap_total_bytes": swap.total,
            "swap_percent": swap.percent,
        },
        "disks": disks,
        "boot_time": datetime.fromtimestamp(boot, UTC).isoformat(),
        "uptime_s": round(time.time() - boot, 1),
    }


async def probe_latency(
    name: str, probe: Callable[[], Awaitable[Any]], timeout_s: float = 2.0
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout=timeout_s)
    except Exception as exc:
        return {
            "name": name,
            "ok": False,
            "latency_ms": None,
            # The type only: messages of driver errors can include the connection URL.
            "error": type(exc).__name__,
        }
    return {
        "name": name,
        "ok": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "error": None,
    }
