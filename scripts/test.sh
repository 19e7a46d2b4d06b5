#!/usr/bin/env bash
# The test command: set everything up (scripts/setup.sh: the project venv .venv), lint, then run the
# whole suite with the venv's interpreter. Works with the stock system Python first on PATH.
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
# as in an activated venv: the gcs-hook console script and the venv's tools first on PATH
export PATH="$PWD/.venv/bin:$PATH"
PY=.venv/bin/python

"$PY" -m ruff check . || exit 1
"$PY" -m ruff format --check . || exit 1

"$PY" -m pytest -n 2 --dist loadfile -p no:cacheprovider -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
