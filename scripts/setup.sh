#!/usr/bin/env bash
# Installs everything gcs-hook needs on a fresh Debian/Ubuntu machine with Python >= 3.10, as root or
# as a user with sudo:
#   - the C++ headers the native ops compile against (libjsoncpp-dev, g++), with apt when missing;
#   - a project virtual environment `.venv` (PEP 668: a stock Debian/Ubuntu system Python refuses
#     `pip install` outside one), made with `python3 -m venv`; python3-venv is installed with apt
#     when the interpreter cannot make one;
#   - the project itself into it, with TensorFlow, TensorBoard, the test tools and the extras;
#   - ahead of time, the native ops (g++) and numba's kernels (scripts/prebuild.py).
# Run inside an activated virtual environment, it installs there instead and points `.venv` at it,
# so that `.venv/bin/gcs-hook` is always the command. Safe to run again.
# PYTHON=... chooses the interpreter the venv is made from (default: python3 on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
        echo "setup.sh: needs $* from apt-get: run as root, or install sudo" >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if [ ! -f /usr/include/jsoncpp/json/json.h ] || ! command -v g++ >/dev/null 2>&1; then
    apt_install libjsoncpp-dev g++
fi

PYTHON="${PYTHON:-python3}"
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    # already inside a venv: use it, and let .venv name it (unless .venv is a real venv already)
    if [ ! -e .venv ] || [ -L .venv ]; then ln -sfn "$VIRTUAL_ENV" .venv; fi
elif [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    # no venv yet, or a broken one (e.g. made by hand while python3-venv was missing: no pip)
    if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
        ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python${ver}-venv" || apt_install python3-venv
    fi
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi

VPY=.venv/bin/python
# The install is skipped when this venv already holds exactly what pyproject.toml and this script
# ask for (a stamp of both, written after a complete install; the editable install picks up source
# changes by itself). Any change to either file, or a missing package, installs again.
stamp=.venv/.gcs-hook-install-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
    || ! "$VPY" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("gcs_hook", "tensorflow", "tensorboard", "gcsfs", "pytest", "xdist", "ruff", "testcontainers", "dask", "pyarrow")))'; then
    rm -f "$stamp"
    "$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VPY" -m pip install --quiet --disable-pip-version-check -e '.[tf,tensorboard,dev,bench,docker,dask,parquet]'
    echo "$want" > "$stamp"
fi
# ahead of time: the native ops and numba's kernels, so the first `gcs-hook tune` is not cold.
# Skipped when nothing they are built from changed since the last prebuild (a second stamp: the
# install stamp, the native sources and build script, the compiled engine, the prebuild itself).
built=.venv/.gcs-hook-prebuild-stamp
built_want=$( { echo "$want"; cat scripts/prebuild.py gcs_hook/native_build.py gcs_hook/native/* \
    benchmarks/sweep/engine_compiled.py; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$built" 2>/dev/null)" != "$built_want" ]; then
    rm -f "$built"
    "$VPY" scripts/prebuild.py
    echo "$built_want" > "$built"
fi
