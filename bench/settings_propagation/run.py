"""How fast a settings change reaches alerts-api and a running poller (target: 1 s).

Runs the integration test `tests/integration/test_settings_reach_services.py` (station-api,
alerts-api and a pollers runner on one Redis and one database, two PUT /api/settings each)
``--runs`` times and collects the latencies it prints: from the PUT's response to the moment
each service had applied the new version. The test only checks that the change arrives and
does what it should; the number belongs here, where a slow machine is a result, not a failure.

    uv run --frozen python bench/settings_propagation/run.py             # 5 runs
    uv run --frozen python bench/settings_propagation/run.py --runs 20

Prints numbers; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/integration/test_settings_reach_services.py"
LINE = re.compile(r"settings propagation v\d+ (?P<service>[\w-]+): (?P<ms>[\d.]+) ms after the PUT")
TARGET_MS = 1000.0


def one_run() -> list[tuple[str, float]]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-4000:])
        raise SystemExit(f"the test failed (pytest exit {done.returncode}); no numbers")
    return [(m["service"], float(m["ms"])) for m in LINE.finditer(done.stdout)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[float]] = defaultdict(list)
    for i in range(args.runs):
        for service, ms in one_run():
            samples[service].append(ms)
        print(f"run {i + 1}/{args.runs} done", flush=True)
    print(f"\n{'service':12} {'n':>3} {'median ms':>10} {'max ms':>8} {'over 1 s':>9}")
    for service, values in sorted(samples.items()):
        over = sum(v > TARGET_MS for v in values)
        print(
            f"{service:12} {len(values):3d} {statistics.median(values):10.1f} "
            f"{max(values):8.1f} {over:9d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
