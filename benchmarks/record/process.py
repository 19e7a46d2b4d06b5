"""The recorded program as a process group: started in a session of its own, and ended whole.

:func:`run_limited` starts ``cmd`` with ``start_new_session=True`` (its process group id is
its pid; the terminal's Ctrl-C reaches ``record``, which stops the group), waits for it or
stops it at a limit, and then ends every process left in the group: the program's background
children never outlive ``record``. Stopping is SIGTERM to the group (or the signal that stopped
``record``: Ctrl-C reaches the program as SIGINT), then SIGKILL to the group after
:data:`STOP_GRACE_S`.

Invariants: when :func:`run_limited` returns or raises (a stop signal in the main thread
included), no process of the program's group is left running; a child that moved itself to
another session (``setsid``, a daemon) is out of reach by design. The program is reaped with
``os.waitpid`` (:func:`_reap`), never through ``Popen.poll``/``wait``: a stop signal's handler
raises wherever the main thread is, and raised inside ``Popen.poll`` between its lock's
acquire and ``try`` it would leave that lock held, so a later ``wait()`` would hang forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["STOP_GRACE_S", "end_group", "run_limited"]

#: Seconds between SIGTERM and SIGKILL when a limit or a signal stops the program.
STOP_GRACE_S = 5.0


def run_limited(
    cmd: Sequence[str],
    env: dict[str, str],
    count: Callable[[], int] = lambda: 0,
    *,
    max_seconds: float | None = None,
    max_requests: int | None = None,
    poll_s: float = 0.05,
    stdout: Any = None,
) -> tuple[int, float, str | None]:
    """Run ``cmd``; stop it at a limit. Returns (exit code, seconds, what stopped it or None).

    ``count()`` is the number of requests so far; ``stdout`` is the program's (default: ours).
    FileNotFoundError if ``cmd[0]`` is missing.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), env=env, start_new_session=True, stdout=stdout)
    stopped_by: str | None = None
    try:
        while not _reap(proc):
            if max_seconds is not None and time.monotonic() - t0 >= max_seconds:
                stopped_by = "max-seconds"
            elif max_requests is not None and count() >= max_requests:
                stopped_by = "max-requests"
            if stopped_by is not None:
                break
            time.sleep(poll_s)
    except BaseException as exc:  # a stop signal (StopRequested carries its number) or worse
        end_group(proc, first=getattr(exc, "signum", signal.SIGTERM))
        raise
    end_group(proc)  # a limit, or the program's leftover children
    _reap(proc, block=True)
    assert proc.returncode is not None
    return proc.returncode, time.monotonic() - t0, stopped_by


def _reap(proc: subprocess.Popen, *, block: bool = False) -> bool:
    """Whether ``proc`` has exited, reaping it (``block``: wait for it) with ``os.waitpid``
    and setting ``proc.returncode``, without Popen's internal lock (see the module docstring)."""
    if proc.returncode is not None:
        return True
    try:
        pid, status = os.waitpid(proc.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # reaped already, by a poll a signal cut short: as Popen does
        proc.returncode = 0
        return True
    if pid == 0:
        return False
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(
    proc: subprocess.Popen, grace_s: float = STOP_GRACE_S, *, first: int = signal.SIGTERM
) -> None:
    """Send ``first`` (SIGTERM; the signal ``record`` got, when one stopped it) to the process
    group of ``proc`` (its pid), SIGKILL it after ``grace_s``; reaps ``proc``. Returns once the
    group is empty, or ``proc`` is reaped and the group was killed."""
    pgid = proc.pid
    if not _reap(proc) or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, first)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if _reap(proc) and not _group_alive(pgid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    _reap(proc, block=True)
    deadline = time.monotonic() + 1.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)  # orphans killed: their new parent reaps them
