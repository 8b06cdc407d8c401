#!/usr/bin/env bash
# The maintainer's pipeline, one run: fetch cmsdist, export the new release tags, check and
# resolve what changed, build every metapackage, publish what the index does not have yet.
#
#   scripts/pipeline.sh                       # everything from CMSSW_12_* on, no upload
#   REPOSITORY_URL=https://upload.pypi.org/legacy/ scripts/pipeline.sh
#
# Settings (environment variables, defaults in brackets):
#   CMSDIST_URL     the cmsdist repository [https://github.com/cms-sw/cmsdist.git]
#   CMSDIST_DIR     the bare clone kept between runs [./cmsdist.git]
#   MATCH           releases to export, a glob; several separated by spaces [CMSSW_1[2-9]_*]
#   ARCH            arches to export, globs separated by spaces [all the release has]
#   ARCH_POLICY     merge (one record per release) or each (one per tag) [merge]
#   LOCKS_DIR       the records and locks [./locks]
#   INDEX_URL       the index check and resolve read [https://pypi.org/simple]
#   REPOSITORY_URL  upload URL; empty: stop after the build [empty]
#   REPOSITORY      or a ~/.pypirc section to upload to (twine reads its URL and credentials) [empty]
#   PUBLISH_INDEX   the simple index that shows the uploads [derived from REPOSITORY_URL]
#   DIST_DIR        built files [./dist]
#   PYTHON          a Python with stackmeta installed [python3]
#
# Credentials: none here. twine finds them itself: trusted publishing (OIDC) in GitHub Actions
# when uploading to PyPI, else TWINE_USERNAME/TWINE_PASSWORD or keyring; .pypirc with REPOSITORY
# (twine reads .pypirc only for a repository given by name).
#
# Exit code: 0 when every step succeeded for every release; 1 when some release failed in
# some step (each step still ran for the others; the summary at the end names the steps).
set -uo pipefail

CMSDIST_URL=${CMSDIST_URL:-https://github.com/cms-sw/cmsdist.git}
CMSDIST_DIR=${CMSDIST_DIR:-cmsdist.git}
MATCH=${MATCH:-CMSSW_1[2-9]_*}
ARCH=${ARCH:-}
ARCH_POLICY=${ARCH_POLICY:-merge}
LOCKS_DIR=${LOCKS_DIR:-locks}
INDEX_URL=${INDEX_URL:-https://pypi.org/simple}
REPOSITORY_URL=${REPOSITORY_URL:-}
REPOSITORY=${REPOSITORY:-}
PUBLISH_INDEX=${PUBLISH_INDEX:-}
DIST_DIR=${DIST_DIR:-dist}
PYTHON=${PYTHON:-python3}

stackmeta() { "$PYTHON" -m stackmeta "$@"; }
say() { printf '== %s\n' "$*" >&2; }
failed=()

# 1. The clone: a full bare clone the first time (no checkout; a --filter=blob:none clone
#    would fetch each missing file on demand, one request per blob: far too slow for a batch
#    over thousands of tags), then only the release tags, moved ones included.
if [ -d "$CMSDIST_DIR" ]; then
  say "fetching release tags into $CMSDIST_DIR"
  git -C "$CMSDIST_DIR" fetch --quiet --force --prune "$CMSDIST_URL" '+refs/tags/REL/*:refs/tags/REL/*' \
    || { echo "error: git fetch from $CMSDIST_URL failed" >&2; exit 1; }
else
  say "cloning $CMSDIST_URL into $CMSDIST_DIR (bare)"
  git clone --quiet --bare "$CMSDIST_URL" "$CMSDIST_DIR" \
    || { echo "error: git clone of $CMSDIST_URL failed" >&2; exit 1; }
fi

# 2. Export every matching tag; records up to date with their tag are skipped.
match_args=()
for m in $MATCH; do match_args+=(--match "$m"); done
for a in $ARCH; do match_args+=(--arch "$a"); done
say "exporting ${MATCH}${ARCH:+ on $ARCH}"
stackmeta export --all --cmsdist "$CMSDIST_DIR" --locks-dir "$LOCKS_DIR" --arch-policy "$ARCH_POLICY" \
  "${match_args[@]}" || failed+=("export")

# 3. Check and resolve the records that have no nearest consistent set yet: the ones just
#    exported with new pins (a record whose pins did not change keeps its sections).
mapfile -t todo < <("$PYTHON" - "$LOCKS_DIR" <<'EOF'
import sys
from pathlib import Path
from stackmeta import record
locks = Path(sys.argv[1])
for name in record.list_records(locks):
    try:
        doc = record.read_document(record.record_path(locks, name))
    except Exception:
        continue
    if "consistent" not in doc:
        print(name)
EOF
)
say "${#todo[@]} records to check and resolve"
for name in "${todo[@]}"; do
  # check: 0 nothing blocks, 1 something blocks (real releases often have conflicts: the
  # resolver answers them), 3 some results missing. Only an error to run it stops this release.
  stackmeta check "$name" --locks-dir "$LOCKS_DIR" --index-url "$INDEX_URL" --quiet >/dev/null
  code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
    failed+=("check $name"); continue
  fi
  stackmeta resolve "$name" --locks-dir "$LOCKS_DIR" --index-url "$INDEX_URL" --quiet >/dev/null \
    || failed+=("resolve $name")
done

# 4. Build every record (offline, byte-reproducible).
say "building every record into $DIST_DIR"
stackmeta build --all --locks-dir "$LOCKS_DIR" --out "$DIST_DIR" --quiet >/dev/null || failed+=("build")

# 5. Publish what the index does not have yet.
if [ -n "$REPOSITORY_URL" ] || [ -n "$REPOSITORY" ]; then
  if [ -n "$REPOSITORY" ]; then where=(--repository "$REPOSITORY"); else where=(--repository-url "$REPOSITORY_URL"); fi
  say "publishing new releases to ${REPOSITORY:-the upload URL}"
  stackmeta publish --new --locks-dir "$LOCKS_DIR" "${where[@]}" \
    ${PUBLISH_INDEX:+--index-url "$PUBLISH_INDEX"} --out "$DIST_DIR" || failed+=("publish")
else
  say "REPOSITORY_URL and REPOSITORY are not set: nothing published"
fi

if [ "${#failed[@]}" -ne 0 ]; then
  echo "pipeline: some releases failed in: ${failed[*]} (see the messages above)" >&2
  exit 1
fi
say "pipeline done"
