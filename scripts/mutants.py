"""Make the bugs of issue 17 again, one at a time, and prove the nearest tests now fail.

Each mutant is one exact source edit and the tests nearest to it. For each: the edit is
applied, the tests run, the file is restored (always, even on Ctrl-C); the mutant must be
*killed* (the tests fail). A mutant whose text is no longer in the file is reported as
``gone`` and fails the run too, so a refactor that moves the code updates this list rather
than silently skipping the proof.

    uv run --frozen python scripts/mutants.py            # all six
    uv run --frozen python scripts/mutants.py batch-ack  # one, by name
    uv run --frozen python scripts/mutants.py --list

The broad, tool-driven run over whole modules is ``scripts/mutation.sh`` (cosmic-ray).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "same-state-ignored",
        "relevance ignores the state part of a SAME code (048035 matches a station at 039035)",
        "libs/schemas/src/eas_schemas/same_codes.py",
        "    if alert.state != station.state:\n        return None\n",
        "",
        ("libs/schemas/tests/test_relevance.py",),
    ),
    Mutant(
        "station-statewide-ignored",
        "a station configured with 0SS000 no longer matches its state's counties",
        "libs/schemas/src/eas_schemas/same_codes.py",
        "if alert.is_statewide or station.is_statewide:",
        "if alert.is_statewide:",
        ("libs/schemas/tests/test_relevance.py",),
    ),
    Mutant(
        "batch-ack-before-commit",
        "the consumer's batch path acknowledges a batch before the batch handler commits",
        "libs/servicekit/src/servicekit/consumer.py",
        "        try:\n            rejected = await self.batch_handler(good)\n",
        "        await self.client.xack(self.stream, self.group, *[e for e, _ in good])\n"
        "        try:\n            rejected = await self.batch_handler(good)\n",
        ("libs/servicekit/tests/test_consumer_batch.py",),
    ),
    Mutant(
        "header-lowercase-originator",
        "the SAME header parser accepts a lower-case originator",
        "libs/same/src/eas_same/header.py",
        "if org not in codes.ORIGINATORS:",
        "if org.upper() not in codes.ORIGINATORS:",
        ("libs/same/tests/test_header_case.py",),
    ),
    Mutant(
        "replay-ignores-filter",
        "/ws replay on resume ignores the subscription's filter",
        "services/ws-broadcaster/src/ws_broadcaster/hub.py",
        "if flt is None or flt.matches(event):",
        "if True:",
        ("services/ws-broadcaster/tests/test_hub_replay.py",),
    ),
    Mutant(
        "held-frames-dropped",
        "live frames held back during a replay are dropped",
        "services/ws-broadcaster/src/ws_broadcaster/hub.py",
        "client.pending.extend(held)",
        "del held",
        ("services/ws-broadcaster/tests/test_hub_replay.py",),
    ),
)


def run_tests(tests: tuple[str, ...]) -> tuple[int, list[str]]:
    """pytest's exit code and the tests that failed (-rf lines)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    failed = [
        line.removeprefix("FAILED ").split(" - ")[0]
        for line in done.stdout.splitlines()
        if line.startswith("FAILED ")
    ]
    return done.returncode, failed


def try_mutant(m: Mutant) -> tuple[str, list[str]]:
    path = ROOT / m.path
    original = path.read_text()
    if original.count(m.old) != 1:
        return "gone", []
    path.write_text(original.replace(m.old, m.new))
    try:
        rc, failed = run_tests(m.tests)
    finally:
        path.write_text(original)
    # pytest: 1 = tests failed (killed); 0 = all passed (survived); anything else (no tests
    # collected, usage or internal error) proves nothing.
    return {0: "SURVIVED", 1: "killed"}.get(rc, f"error (pytest exit {rc})"), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {m.bug}")
        return 0
    baseline, _ = run_tests(tuple(sorted({t for m in chosen for t in m.tests})))
    if baseline != 0:
        print(f"the tests fail without any mutant (pytest exit {baseline}): fix them first")
        return 2
    failed = 0
    for m in chosen:
        verdict, killers = try_mutant(m)
        failed += verdict != "killed"
        print(f"{verdict:10} {m.name:28} {m.bug}", flush=True)
        for test in killers:
            print(f"{'':10} fails: {test}")
    print(f"{len(chosen) - failed} of {len(chosen)} mutants killed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
