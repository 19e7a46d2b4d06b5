#!/usr/bin/env bash
# Installs everything gcs-hook needs on a fresh Debian/Ubuntu machine with Python >= 3.10:
# the C++ headers the native ops compile against (libjsoncpp-dev), then the project itself with
# TensorFlow, the test tools and the benchmark extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/include/jsoncpp/json/json.h ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libjsoncpp-dev g++ >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[tf,tensorboard,dev,bench,docker,dask]'
