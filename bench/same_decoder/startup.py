"""Start-up of a one-shot ``eas-same decode``: a 19 s recording decoded as a whole process
(interpreter, imports, decoder set-up, decode), against ``python -c 'import numpy'`` in the
same environment.

Run: uv run --frozen python bench/same_decoder/startup.py [--runs N]

The two commands run in turn (A B A B ...) so a drift in the machine's speed hits both; the
figures are medians of wall and CPU (user + system of the finished child, from getrusage)
seconds, and the ratio is the median of the per-pair ratios. Target (issue 10): at most 3x.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from eas_same.encoder import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import machine

HEADER = "ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -"
RATE = 22050
SECONDS = 19.0


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stdout.decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    exe = shutil.which("eas-same", path=str(Path(sys.executable).parent))
    decode_cmd = [exe] if exe else [sys.executable, "-m", "eas_same.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tor-19s.wav"
        x = generate(HEADER, RATE, attention=8.0)
        x = np.concatenate([x, np.zeros(round(SECONDS * RATE) - len(x), dtype=x.dtype)])
        sf.write(path, x, RATE, subtype="PCM_16")
        a_cmd = [*decode_cmd, "decode", str(path)]
        b_cmd = [sys.executable, "-c", "import numpy"]
        out = _timed(a_cmd)[2]  # warm-up (page cache, .pyc), and the decode must be right
        if out.splitlines() != [HEADER, "NNNN"]:
            print(f"wrong decode: {out!r}", file=sys.stderr)
            return 1
        _timed(b_cmd)
        a: list[tuple[float, float]] = []
        b: list[tuple[float, float]] = []
        for _ in range(args.runs):
            a.append(_timed(a_cmd)[:2])
            b.append(_timed(b_cmd)[:2])
    med = statistics.median
    rows = [("eas-same decode (19 s file)", a), ("python -c 'import numpy'", b)]
    print(machine())
    print(f"{args.runs} paired runs, medians; recording {SECONDS:.0f} s at {RATE} Hz")
    print(f"{'command':<30} {'wall s':>8} {'cpu s':>8}")
    for name, runs in rows:
        print(f"{name:<30} {med(w for w, _ in runs):8.3f} {med(c for _, c in runs):8.3f}")
    wall_ratio = med(x[0] / y[0] for x, y in zip(a, b, strict=True))
    cpu_ratio = med(x[1] / y[1] for x, y in zip(a, b, strict=True))
    print(f"decode / import numpy: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
