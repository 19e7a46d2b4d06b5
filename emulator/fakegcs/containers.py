"""Ownership labels on the container backend's containers, and the sweep of dead owners' ones.

Testcontainers' reaper (Ryuk) is an image that cannot be pulled everywhere, so it is disabled;
instead every container :class:`emulator.fakegcs.backend.ContainerBackend` starts carries
:func:`owner_labels` (the owning process: host name, pid and the kernel's start time of that pid)
and is removed by its owner on every exit path it gets to run (close, exceptions, interpreter
exit). What a SIGKILLed owner left behind is removed by :func:`sweep_orphans`, which the next
container backend runs before it starts one.

Invariants: only containers labelled :data:`LABEL_BACKEND` are ever touched; one is removed
only when it names this host and its owner process is gone (no such pid, or a pid whose start
time differs: a reused pid). Containers of live owners, of other hosts or unlabelled are left.
"""

from __future__ import annotations

import os
import socket
from typing import Any

LABEL_BACKEND = "org.gcs-hook.backend"
LABEL_HOST = "org.gcs-hook.owner-host"
LABEL_PID = "org.gcs-hook.owner-pid"
LABEL_START = "org.gcs-hook.owner-start"


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or
    ``None`` when there is no such process (or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def owner_labels(pid: int | None = None) -> dict[str, str]:
    """The labels naming process ``pid`` (default: this one) as a container's owner."""
    pid = os.getpid() if pid is None else pid
    return {
        LABEL_BACKEND: "fake-gcs-server",
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(pid),
        LABEL_START: process_start(pid) or "",
    }


def owner_gone(labels: dict[str, str]) -> bool:
    """Whether the owner named by ``labels`` is a process of this host that no longer runs."""
    if labels.get(LABEL_BACKEND) is None or labels.get(LABEL_HOST) != socket.gethostname():
        return False
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    start = process_start(pid)
    return start is None or start != labels.get(LABEL_START)


def sweep_orphans(client: Any) -> list[str]:
    """Remove (forcibly) the labelled containers whose owner is gone; returns their ids.

    ``client`` is a ``docker.DockerClient``. Errors removing one container (already gone,
    engine busy) are skipped: the next sweep tries again.
    """
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": LABEL_BACKEND}):
        if not owner_gone(container.labels or {}):
            continue
        try:
            container.remove(force=True, v=True)
        except Exception:  # docker raises NotFound/APIError/...: leave it for the next sweep
            continue
        removed.append(container.id)
    return removed
