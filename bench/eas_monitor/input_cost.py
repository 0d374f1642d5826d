"""CPU cost of one monitored input: a real eas-monitor worker process decoding a real-time
paced 22.05 kHz input (a looped WAV: SAME message, then program-like audio and noise).

Prints the worker's CPU time over wall time, measured from /proc after start-up (imports and
the first second are excluded: they are paid once, not per second of monitoring).

    uv run --frozen python bench/eas_monitor/input_cost.py [--seconds 20] [--redis URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import redis

from eas_monitor.inputs import FileConfig
from eas_monitor.protocol import WorkerSettings, WorkerSpec
from eas_monitor.settings import EasMonitorSettings
from eas_same import generate, write_wav

RATE = 22050
HEADER = "ZCZC-WXR-TOR-039035-039093+0030-1181322-KCLE/NWS-"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def make_input(path: Path) -> None:
    rng = np.random.default_rng(7)
    msg = generate(HEADER, RATE, attention=8.0)
    t = np.arange(RATE * 12) / RATE
    program = 0.2 * np.sin(2 * np.pi * 440 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    program += rng.normal(0, 0.02, len(t))
    write_wav(path, np.concatenate([msg, program]).astype(np.float32), RATE)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--redis", default=os.environ.get("EAS_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "input.wav"
        make_input(wav)
        settings = EasMonitorSettings(redis_url=args.redis, bus_namespace=ns, data_dir=Path(tmp))
        spec = WorkerSpec(
            input_id=1,
            name="bench",
            config=FileConfig(path=str(wav), loop=True, realtime=True),
            settings=WorkerSettings.from_settings(settings),
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "eas_monitor.worker", "--input-id", "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(spec.model_dump_json())
        proc.stdin.close()
        for line in proc.stdout:  # wait for audio to flow
            if json.loads(line).get("state") == "running":
                break
        startup_s = time.monotonic() - started
        startup_cpu = cpu_seconds(proc.pid)
        time.sleep(1.0)
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        last: dict[str, object] = {}
        deadline = wall0 + args.seconds
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("t") == "progress":
                last = msg
            if time.monotonic() >= deadline:
                break
        cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
        proc.terminate()
        proc.wait(timeout=10)
        client = redis.Redis.from_url(args.redis, decode_responses=True)
        headers = sum(
            1 for _i, f in client.xrange(f"{ns}:same.events") if f.get("type") == "same.header"
        )
        levels = client.xlen(f"{ns}:audio.metrics")
        for key in client.scan_iter(match=f"{ns}:*"):
            client.delete(key)
    share = (cpu1 - cpu0) / (wall1 - wall0)
    print(f"worker start-up: {startup_s:.2f} s wall, {startup_cpu:.2f} s CPU (imports, once)")
    print(
        f"monitoring: {wall1 - wall0:.1f} s wall, {cpu1 - cpu0:.3f} s CPU -> "
        f"{100 * share:.2f} % of one core (target < 5 %)"
    )
    print(
        f"input rate {last.get('samples_per_s')} samples/s; same.header events: {headers}; "
        f"audio.metrics level events: {levels} ({levels / (wall1 - started):.2f}/s)"
    )
    return 0 if share < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
