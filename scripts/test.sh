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

# The container backend's tests (-m docker) need an engine: use a reachable one, else start a private
# one with scripts/docker-engine.sh where that can work (root with dockerd or apt-get), stopped at
# exit; otherwise they skip, each with the reason (gcs-hook doctor: "container tests").
engine_was_up=""
bash scripts/docker-engine.sh status 2>/dev/null && engine_was_up=1
if "$PY" -c 'from emulator.fakegcs.backend import docker_engine_error as e; raise SystemExit(e() is not None)' \
    || { [ "$(id -u)" = "0" ] && { command -v dockerd || command -v apt-get; } >/dev/null 2>&1; }; then
    if exports=$(bash scripts/docker-engine.sh start); then
        eval "$exports"
        [ -n "$engine_was_up" ] || trap 'bash scripts/docker-engine.sh stop' EXIT
    else
        echo "test.sh: no Docker engine could be started: the docker-marked tests skip" >&2
    fi
else
    echo "test.sh: no Docker engine and not root with apt-get: the docker-marked tests skip" >&2
fi

# GCS_HOOK_TEST_WORKERS: xdist workers (default: cores + 1; many tests wait on TF subprocesses,
# sleeps and sockets, so one more worker than cores keeps both cores busy: measured on 2 cores,
# 371 s with 3 workers against about 410 s with 2)
workers="${GCS_HOOK_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}"
"$PY" -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder -p no:cacheprovider -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
