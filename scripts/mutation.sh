#!/usr/bin/env bash
# Mutation testing (cosmic-ray) of the code where a bug the tests miss puts a wrong alert on
# air, misses one or loses one: SAME/UGC relevance (libs/schemas), the SAME header parser and
# encoder (libs/same), the consumer and token security (libs/servicekit), the relay rules
# (audio-control). One session per scripts/mutation/<name>.toml, each with its nearest tests.
#
#   scripts/mutation.sh                       # every session (hours on 2 cores: not for CI)
#   scripts/mutation.sh schemas servicekit-security
#
# It mutates a copy of the working tree under var/mutation/tree (your files are never
# touched, and tests in your tree keep running while it works): that copy's src folders go
# first on PYTHONPATH, ahead of the editable installs. Sessions are kept in var/mutation/ and
# resumed if the run is interrupted (delete the .sqlite to start one over). For each session
# it prints cosmic-ray's summary; the surviving mutants are listed in var/mutation/<name>.txt.
# For the handful of named bugs of issue 17 and a fast yes/no, see scripts/mutants.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${MUTATION_DIR:-$ROOT/var/mutation}
TREE=$WORK/tree
mkdir -p "$WORK"

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for cfg in scripts/mutation/*.toml; do names+=("$(basename "$cfg" .toml)"); done
fi

# A fresh copy of what is in the working tree now (tracked and new files, not ignored ones).
rm -rf "$TREE"
mkdir -p "$TREE"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$TREE"
src_path=""
for src in "$TREE"/libs/*/src "$TREE"/services/*/src "$TREE"/deploy/*/src; do
  src_path="${src_path:+$src_path:}$src"
done
export PYTHONPATH="$src_path"
# Only the pytest plugins a session names (-p ...) are loaded: the autoloaded ones
# (hypothesis, schemathesis, testcontainers) cost seconds per mutant and are not needed.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
cr() { (cd "$TREE" && uv run --frozen --group mutation --project "$ROOT" "$@"); }

where=$(cr python -c 'import eas_schemas, sys; print(eas_schemas.__file__)')
case "$where" in
  "$TREE"/*) ;;
  *) echo "the copy's sources are not the ones imported ($where): refusing to run" >&2; exit 2 ;;
esac

status=0
for name in "${names[@]}"; do
  cfg=$ROOT/scripts/mutation/$name.toml
  [ -f "$cfg" ] || { echo "no session $name (scripts/mutation/$name.toml)" >&2; exit 2; }
  session=$WORK/$name.sqlite
  echo "== $name"
  if [ ! -f "$session" ]; then
    cr cosmic-ray init "$cfg" "$session"
    cr cr-filter-pragma "$session"
    cr cr-filter-operators "$session" "$cfg"
  fi
  if ! cr cosmic-ray baseline "$cfg" >/dev/null 2>&1; then
    echo "$name: the tests fail without any mutant; fix them first" >&2
    status=1
    continue
  fi
  cr cosmic-ray exec "$cfg" "$session"
  cr cr-report "$session" --surviving-only --show-diff >"$WORK/$name.txt"
  # cosmic-ray's own percentage counts skipped (filtered) mutants as run; this one does not.
  cr python - "$session" "$name" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "select worker_outcome, test_outcome, count(*) from work_results group by 1, 2"
).fetchall()
run = sum(n for w, _, n in rows if w != "SKIPPED")
survived = sum(n for w, t, n in rows if w != "SKIPPED" and t == "SURVIVED")
skipped = sum(n for w, _, n in rows if w == "SKIPPED")
score = 100 * (run - survived) / max(run, 1)
print(f"{sys.argv[2]}: {run} mutants run, {run - survived} killed, {survived} survived "
      f"({score:.1f}% killed); {skipped} skipped")
PY
done
exit $status
