# Sourced by scripts/main and .ci/run: make ./.venv with stackmeta and its test tools.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
py=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
done
[ -n "$py" ] || { echo "error: no python3 (3.11 or later) on PATH: install one" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade 'pip>=25.1'
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
