"""``gcs-hook env`` and the state file through which ``serve`` tells it about the instance.

The state file (0600) holds the instance's pid, front URL, backend endpoint and the variables
a client needs; ``serve`` writes it before printing the exports and removes it on exit.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer

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


def default_state_file() -> Path:
    """Where ``serve`` records the running instance (``$GCS_HOOK_STATE`` overrides)."""
    if os.environ.get("GCS_HOOK_STATE"):
        return Path(os.environ["GCS_HOOK_STATE"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path.home() / ".cache"
    return base / "gcs-hook" / "serve.json"


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
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        fail(f"no running 'gcs-hook serve' found (no state file {path})")
    try:
        state = json.loads(path.read_text())
        pid, url, env = int(state["pid"]), str(state["front_url"]), dict(state["env"])
    except (ValueError, KeyError, TypeError, OSError):
        fail(f"state file {path} is unreadable or corrupt")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        fail(f"'gcs-hook serve' (pid {pid}) from {path} is no longer running")
    except PermissionError:
        pass
    host, _, port = url.removeprefix("http://").partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        fail(f"'gcs-hook serve' front {url} does not answer")
    return {"pid": pid, "front_url": url, "env": env}


def env_cmd(
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="State file written by serve.")
    ] = None,
) -> None:
    """Print the export lines for an already running ``gcs-hook serve``."""
    state = read_state(state_file or default_state_file())
    for line in export_lines(state["env"]):
        typer.echo(line)
