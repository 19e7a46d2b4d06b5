#!/usr/bin/env bash
# The test command: set everything up, lint, then run the whole suite.
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false

python3 -m ruff check . || exit 1
python3 -m ruff format --check . || exit 1

python3 -m pytest -n 2 --dist loadfile -p no:cacheprovider -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
