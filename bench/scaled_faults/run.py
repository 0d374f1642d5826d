"""Faults across the whole pipeline, the long variant (issue 13): 10,000 alerts from a CAP
folder through the scaled topology (``eas_station.scaled``: compose.yml's services as local
processes behind nginx) while every service is SIGKILLed in turn, Redis is restarted
(append-only) and PostgreSQL is stopped for 30 s. Redis and PostgreSQL are private to the run.

    nice -n 10 uv run --frozen python bench/scaled_faults/run.py                # 10,000, 30 s
    nice -n 10 uv run --frozen python bench/scaled_faults/run.py --alerts 1000 --outage 10

Prints the counts (stored, decided, aired, what each /ws client saw, dead letters, the longest
time a stage stayed behind, what reads answered during the outage); asserts nothing, exits 1 if
a count is wrong. The short variant is tests/integration/test_scaled_faults.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from eas_testkit.faults import FaultPlan, run_faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--outage", type=float, default=30.0, help="PostgreSQL down, seconds")
    parser.add_argument("--aired-every", type=int, default=500, help="every n-th alert airs")
    parser.add_argument("--settle", type=float, default=1800.0, help="bound for the end counts")
    parser.add_argument("--work", type=Path, default=None, help="keep the run's files here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    plan = FaultPlan(
        alerts=args.alerts,
        pg_outage_s=args.outage,
        aired_every=args.aired_every,
        settle_bound_s=args.settle,
    )
    report = asyncio.run(run_faults(plan, args.work, say=lambda line: print(line, flush=True)))
    for line in report.lines():
        print(line)
    ok = (
        report.stored == plan.alerts
        and not report.stored_twice
        and report.decided == plan.alerts
        and not report.decided_twice
        and report.aired == report.relayed_expected
        and not report.aired_twice
        and not report.ws_missing
        and not report.dead_letters
    )
    print("counts: as expected" if ok else "counts: WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
