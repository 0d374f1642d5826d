#!/bin/sh
# Ingest A/B: another checkout (BASE, e.g. `git worktree add /tmp/base e75a429` with
# `uv sync --frozen --all-packages --group bench` done in it) against this one, alternated
# base/ours PAIRS times with the same command, so drift of a shared machine hits both alike.
# Run it under the benchmark lock:  flock /work/bench.lock bench/alerts_api/ingest_ab.sh /tmp/base 3
# The two runs share ingest.py's database name: never run two of these at once.
set -u
BASE=${1:?usage: ingest_ab.sh BASE_TREE [PAIRS] [N]}
PAIRS=${2:-3}
N=${3:-5000}
OURS=$(cd "$(dirname "$0")/../.." && pwd)
date -u
i=1
while [ "$i" -le "$PAIRS" ]; do
  for tree in "$BASE" "$OURS"; do
    echo "=== pair $i: $tree ($(git -C "$tree" rev-parse --short HEAD)), $(uptime)"
    (cd "$tree" && uv run --frozen python bench/alerts_api/ingest.py -n "$N" --variants normal 2>&1 |
      grep -E '^\| (variant|normal)|^machine:')
  done
  i=$((i + 1))
done
date -u
