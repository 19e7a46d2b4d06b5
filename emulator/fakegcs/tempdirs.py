"""Private temporary directories that name their owner, and removal of dead runs' leftovers.

Invariants: every directory made here is 0700 and holds ``owner.pid``; only directories of the
current user, named ``gcs-hook-*``, holding an ``owner.pid`` whose process is gone, are ever
removed by :func:`remove_dead_leftovers`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def make_owned_tempdir(prefix: str, workdir: str | os.PathLike | None = None) -> str:
    """A private (0700) temporary directory holding ``owner.pid`` (this process's pid)."""
    d = tempfile.mkdtemp(prefix=prefix, dir=workdir)
    os.chmod(d, 0o700)
    with open(os.path.join(d, "owner.pid"), "w") as f:
        f.write(str(os.getpid()))
    return d


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_leftovers(workdir: str | os.PathLike | None = None) -> list[str]:
    """Remove ``gcs-hook-*`` temporary directories (ours: same uid) whose owner pid is gone.

    Leftovers of runs killed without a chance to clean up (SIGKILL, power loss): backend logs,
    CA directories with their leaf key. Directories without ``owner.pid`` are left alone.
    Returns the directories removed.
    """
    base = Path(workdir or tempfile.gettempdir())
    removed: list[str] = []
    try:
        candidates = list(base.glob("gcs-hook-*"))
    except OSError:
        return removed
    for d in candidates:
        try:
            if not d.is_dir() or d.is_symlink() or d.stat().st_uid != os.getuid():
                continue
            pid = int((d / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed
