"""``gcs-hook env`` and the state files through which ``serve`` tells it about instances.

Invariants:
- One state file per instance: by default ``<state dir>/serve-<pid>.json`` (state dir:
  ``$XDG_RUNTIME_DIR/gcs-hook`` or ``~/.cache/gcs-hook``); ``--state-file`` or
  ``$GCS_HOOK_STATE`` name one explicitly, and ``serve`` refuses a file that a live instance
  owns. The file (0600) holds the pid, front URL, backend endpoint and the client variables;
  it is written atomically (a private temporary next to it, removed on failure) before the
  exports are printed and removed on exit.
- State files whose owner pid is gone are removed by the next ``serve`` or ``env``.
- ``env`` prints exports only for an instance that is alive: its pid exists and its front
  accepts a connection and its backend answers ``GET /storage/v1/b`` within 2 s (asked
  directly, so the check never shows in the ledger).
  Without a state file named, it uses the only live instance, and refuses to guess among many.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import socket
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from emulator.fakegcs.tempdirs import pid_alive
from gcs_hook.cli.errors import fail

EXPORT_KEYS = (
    "https_proxy",
    "HTTPS_PROXY",
    "CURL_CA_BUNDLE",
    "NO_GCE_CHECK",
    "GOOGLE_AUTH_TOKEN_FOR_TESTING",
    "STORAGE_EMULATOR_HOST",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT",
)


def state_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path.home() / ".cache"
    return base / "gcs-hook"


def default_state_file(pid: int | None = None) -> Path:
    """Where ``serve`` (process ``pid``, default this one) records itself.

    ``$GCS_HOOK_STATE`` overrides it.
    """
    if os.environ.get("GCS_HOOK_STATE"):
        return Path(os.environ["GCS_HOOK_STATE"])
    return state_dir() / f"serve-{pid or os.getpid()}.json"


def state_owner(path: Path) -> int | None:
    """The pid recorded in state file ``path`` (``None`` if absent or unreadable)."""
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_instances() -> list[Path]:
    """Default-location state files of live instances; those of dead ones are removed."""
    alive = []
    for p in sorted(state_dir().glob("serve-*.json")):
        pid = state_owner(p)
        if pid is not None and pid_alive(pid):
            alive.append(p)
        elif pid is not None:
            with contextlib.suppress(OSError):
                p.unlink()
    return alive


def check_state_target(path: Path) -> None:
    """``fail`` unless ``serve`` may write its state to ``path``."""
    if path.is_dir():
        fail(f"--state-file {path} is a directory; name a file")
    if path.exists():
        pid = state_owner(path)
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            fail(f"--state-file {path} belongs to a running 'gcs-hook serve' (pid {pid})")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        fail(f"--state-file {path}: cannot create it under {parent}")


def export_lines(env: dict[str, str]) -> list[str]:
    """``export K=V`` lines (shell-quoted) for the variables a client process needs."""
    return [f"export {k}={shlex.quote(env[k])}" for k in EXPORT_KEYS if k in env]


def write_state(path: Path, emu: Any, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "front_url": emu.front.url,
        "backend_endpoint": emu.backend.endpoint,
        "backend_kind": emu.backend.kind,
        "env": {k: env[k] for k in EXPORT_KEYS if k in env},
        "started": time.time(),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: 0600
            json.dump(state, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_state(path: Path) -> None:
    """Remove ``path`` if this process owns it."""
    with contextlib.suppress(OSError):
        if state_owner(path) == os.getpid():
            path.unlink()


def read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        fail(f"no running 'gcs-hook serve' found (no state file {path})")
    try:
        state = json.loads(path.read_text())
        pid, url, env = int(state["pid"]), str(state["front_url"]), dict(state["env"])
    except (ValueError, KeyError, TypeError, OSError):
        fail(f"state file {path} is unreadable or corrupt")
    if not pid_alive(pid):
        fail(f"'gcs-hook serve' (pid {pid}) from {path} is no longer running")
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except (OSError, ValueError):
        fail(f"'gcs-hook serve' (pid {pid}) front {url} does not answer")
    backend = str(state.get("backend_endpoint", ""))
    if backend.startswith("http://"):  # asked directly, so the check is not in the ledger
        bhost, _, bport = backend.removeprefix("http://").partition(":")
        try:
            conn = http.client.HTTPConnection(bhost, int(bport or 80), timeout=2)
            conn.request("GET", "/storage/v1/b")
            status = conn.getresponse().status
            conn.close()
        except (OSError, ValueError, http.client.HTTPException):
            status = 0
        if not 200 <= status < 500:
            fail(f"'gcs-hook serve' (pid {pid}): its backend {backend} does not answer")
    return {"pid": pid, "front_url": url, "env": env}


def find_state_file() -> Path:
    """The state file of the one live instance (``fail`` if there is none or several)."""
    if os.environ.get("GCS_HOOK_STATE"):
        return Path(os.environ["GCS_HOOK_STATE"])
    alive = live_instances()
    if not alive:
        fail(f"no running 'gcs-hook serve' found (no live state file in {state_dir()})")
    if len(alive) > 1:
        pids = ", ".join(str(state_owner(p)) for p in alive)
        fail(f"several 'gcs-hook serve' instances are running (pids {pids}); pass --state-file")
    return alive[0]


def env_cmd(
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="State file written by serve.")
    ] = None,
) -> None:
    """Print the export lines for an already running ``gcs-hook serve``."""
    state = read_state(state_file or find_state_file())
    for line in export_lines(state["env"]):
        typer.echo(line)
