#!/usr/bin/env bash
# Regenerate what locks/ commits, from a clone of cmsdist (one command, resumable):
#
#   scripts/locks.sh                                   # CMSDIST=cmsdist.git
#   CMSDIST=/tmp/cmsdist.git scripts/locks.sh          # e.g. git clone --bare ../shared/cmsdist.bundle
#   RESOLVE=all scripts/locks.sh                       # check and resolve the main set again
#
# 1. locks/all/: the constraints lock of every release tag of the clone (one per release, its
#    arches merged; both stacks where a release ships Python 2 and Python 3 packages: the
#    other one is <release>-py2.txt), written by `stackmeta export --all --python both
#    --locks-only`. No records: `stackmeta export RELEASE --cmsdist ...` recomputes one.
#    `stackmeta history` and `stackmeta which` read these.
# 2. locks/*.json (+ .txt, .nearest.txt): the records of the main set, the releases the main
#    job (scripts/main: `stackmeta build`) builds: the newest full release (no _preN, no
#    flavour; a _patchN counts) of every cycle from CMSSW_10_6 on, from the clone, both
#    stacks; and the four releases of ../shared/cmsdist-excerpts (CMSSW_9_3_0, CMSSW_10_6_0,
#    CMSSW_10_6_0-py2, CMSSW_14_0_0), from the excerpts.
# 3. `stackmeta check` and `stackmeta resolve` against INDEX_URL (the real PyPI) of each record
#    of the main set that has no nearest consistent set yet (RESOLVE=all: of every one).
#
# Settings (environment variables, defaults in brackets):
#   CMSDIST    the cmsdist clone (bare or not) [./cmsdist.git]
#   EXCERPTS   the excerpt folders [../shared/cmsdist-excerpts]
#   SINCE      the first cycle of the main set, major.minor [10.6]
#   LOCKS_DIR  [./locks]
#   INDEX_URL  [https://pypi.org/simple]
#   RESOLVE    missing (records without a nearest set) or all [missing]
#   PYTHON     a Python with stackmeta installed [.venv/bin/python, else python3]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CMSDIST=${CMSDIST:-cmsdist.git}
EXCERPTS=${EXCERPTS:-../shared/cmsdist-excerpts}
SINCE=${SINCE:-10.6}
LOCKS_DIR=${LOCKS_DIR:-locks}
INDEX_URL=${INDEX_URL:-https://pypi.org/simple}
RESOLVE=${RESOLVE:-missing}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

stackmeta() { "$PYTHON" -m stackmeta "$@"; }
say() { printf '== %s\n' "$*" >&2; }
failed=()

[ -d "$CMSDIST" ] || { echo "error: no cmsdist clone at $CMSDIST: set CMSDIST (git clone --bare ../shared/cmsdist.bundle cmsdist.git)" >&2; exit 2; }

say "1. every release's lock into $LOCKS_DIR/all"
stackmeta export --all --cmsdist "$CMSDIST" --locks-dir "$LOCKS_DIR/all" --python both --locks-only \
  || failed+=("export --all")

say "2. the main set's records into $LOCKS_DIR"
mapfile -t main < <("$PYTHON" - "$CMSDIST" "$SINCE" <<'EOF'
import sys
from pathlib import Path
from stackmeta.manifest.cmsdist import Opened
from stackmeta.release import newest_full
major, minor = (int(x) for x in sys.argv[2].split("."))
with Opened(Path(sys.argv[1])) as opened:
    print("\n".join(newest_full({rel for rel, _ in opened.available()}, since=(major, minor))))
EOF
)
[ "${#main[@]}" -gt 0 ] || { echo "error: no full release from CMSSW_${SINCE/./_} on in $CMSDIST" >&2; exit 1; }
say "main set: ${main[*]}"
match_args=()
for r in "${main[@]}"; do match_args+=(--match "$r"); done
stackmeta export --all --cmsdist "$CMSDIST" --locks-dir "$LOCKS_DIR" --python both "${match_args[@]}" \
  || failed+=("export main set")
if [ -d "$EXCERPTS" ]; then
  stackmeta export --all --cmsdist "$EXCERPTS" --locks-dir "$LOCKS_DIR" --python both || failed+=("export excerpts")
else
  say "no $EXCERPTS: the four excerpt releases are kept as they are"
fi

say "3. check and resolve against $INDEX_URL ($RESOLVE)"
mapfile -t todo < <("$PYTHON" - "$LOCKS_DIR" "$RESOLVE" <<'EOF'
import sys
from pathlib import Path
from stackmeta import record
locks = Path(sys.argv[1])
for name in record.list_records(locks):
    doc = record.read_document(record.record_path(locks, name))
    if sys.argv[2] == "all" or "consistent" not in doc:
        print(name)
EOF
)
for name in "${todo[@]}"; do
  say "check and resolve $name"
  stackmeta check "$name" --locks-dir "$LOCKS_DIR" --index-url "$INDEX_URL" --quiet >/dev/null
  code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 1 ] && [ "$code" -ne 3 ]; then failed+=("check $name"); continue; fi
  stackmeta resolve "$name" --locks-dir "$LOCKS_DIR" --index-url "$INDEX_URL" --quiet >/dev/null \
    || failed+=("resolve $name")
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
say "done: $(ls "$LOCKS_DIR"/all/*.txt | wc -l) locks in $LOCKS_DIR/all, $(ls "$LOCKS_DIR"/*.json | wc -l) records in $LOCKS_DIR"
