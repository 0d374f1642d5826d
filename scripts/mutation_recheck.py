"""Run a session's surviving mutants again, against the tests as they are now.

A session (scripts/mutation.sh NAME) tests each mutant once, with the tests of the tree it
copied when it started. Tests written afterwards to kill its survivors only count once those
survivors are run again; a whole new session would repeat hours of mutants already killed.

    uv run --frozen python scripts/mutation_recheck.py prepare same-encoder
    MUTATION_DIR=$PWD/var/mutation-recheck scripts/mutation.sh same-encoder
    uv run --frozen python scripts/mutation_recheck.py merge same-encoder

(Set MUTATION_RECHECK_DIR, and MUTATION_DIR to the same, to recheck two sessions at once.)
``prepare`` copies var/mutation/NAME.sqlite to var/mutation-recheck/ keeping only the
survivors, as not yet run (a session still running may go on meanwhile); mutation.sh then runs
just those, on a fresh copy of the tree. ``merge`` writes their new outcomes back into the
session, so its report and score are those of the current tests.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "var" / "mutation"
# Sessions rechecked side by side each need their own folder (each run copies its own tree).
RECHECK = Path(os.environ.get("MUTATION_RECHECK_DIR", ROOT / "var" / "mutation-recheck"))


def prepare(name: str) -> None:
    RECHECK.mkdir(parents=True, exist_ok=True)
    target = RECHECK / f"{name}.sqlite"
    source = sqlite3.connect(MAIN / f"{name}.sqlite", timeout=60)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)  # consistent even while the session writes
    source.close()
    with copy:
        survivors = [
            r[0]
            for r in copy.execute("select job_id from work_results where test_outcome = 'SURVIVED'")
        ]
        copy.execute("create temp table keep (job_id varchar primary key)")
        copy.executemany("insert into keep values (?)", [(j,) for j in survivors])
        copy.execute("delete from work_results")
        copy.execute("delete from mutation_specs where job_id not in (select job_id from keep)")
        copy.execute("delete from work_items where job_id not in (select job_id from keep)")
    copy.close()
    print(f"{name}: {len(survivors)} survivors to run again in {target}")


def merge(name: str) -> None:
    recheck = sqlite3.connect(RECHECK / f"{name}.sqlite")
    rows = recheck.execute(
        "select worker_outcome, output, test_outcome, diff, job_id from work_results"
    ).fetchall()
    recheck.close()
    main = sqlite3.connect(MAIN / f"{name}.sqlite", timeout=60)
    with main:
        main.executemany(
            "update work_results set worker_outcome = ?, output = ?, test_outcome = ?, diff = ? "
            "where job_id = ?",
            rows,
        )
    main.close()
    killed = sum(1 for r in rows if r[2] == "KILLED")
    print(f"{name}: {len(rows)} survivors run again, {killed} now killed")


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("prepare", "merge"):
        print(__doc__, file=sys.stderr)
        return 2
    action, name = sys.argv[1], sys.argv[2]
    if not (MAIN / f"{name}.sqlite").exists():
        print(f"no session {name} in {MAIN}", file=sys.stderr)
        return 2
    {"prepare": prepare, "merge": merge}[action](name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
