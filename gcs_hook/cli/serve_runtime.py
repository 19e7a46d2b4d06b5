"""The runtime of ``gcs-hook serve``: signals, the watch loop, and exits that leave nothing behind.

Invariants:
- SIGINT, SIGTERM and SIGHUP are handled from the very start (before the backend starts and
  before ``--data`` seeding): each raises :class:`StopRequested` in the main thread, so every
  ``finally`` runs and key material and state files are removed. Once stopping has begun, more
  signals are ignored, so a second Ctrl-C cannot cut the cleanup short.
- The cleanup is bounded (the front waits at most ~1 s for stuck connections, the backend is
  killed 0.5 s after SIGTERM). An ``atexit`` hook closes the emulator too, for exit paths that
  skip ``finally`` blocks (``sys.exit`` from a thread does not, but an unexpected
  ``os._exit`` would skip both; SIGKILL cannot be caught at all — leftovers of such runs are
  removed by the next start: :func:`emulator.fakegcs.tempdirs.remove_dead_leftovers`).
- While serving, the backend is checked every ``WATCH_S`` seconds; if it died, its log tail goes
  to stderr and ``serve`` exits with code 1.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import time
from typing import Any

import typer

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WATCH_S = 0.5


class StopRequested(BaseException):
    """A stop signal arrived (BaseException: library code must not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class StopSignals:
    """While active (a context manager), a stop signal raises :class:`StopRequested` once.

    The signal is also remembered (:attr:`requested`): Python ignores exceptions raised in some
    places (at-fork callbacks run by ``subprocess``, ``__del__`` methods), so loops that can
    run for long (seeding, :func:`watch`) call :meth:`check`, which raises it again. Call
    :meth:`quiet` when the cleanup starts: from then on stop signals are ignored, so a second
    Ctrl-C (or a signal arriving during a normal exit) cannot cut the cleanup short. Leaving the
    ``with`` block restores the previous handlers.
    """

    def __init__(self) -> None:
        self._quiet = False
        self._raised = False
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        if self._quiet or self.requested is not None:
            return
        self.requested = signum
        self._raised = True
        raise StopRequested(signum)

    def check(self) -> None:
        """Raise :class:`StopRequested` if a stop signal arrived and was swallowed."""
        if self.requested is not None and not self._quiet:
            self._quiet = True
            raise StopRequested(self.requested)

    def quiet(self) -> None:
        self._quiet = True

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._quiet = True
        for sig, h in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, h)


def close_at_exit(emu: Any) -> None:
    """Make sure ``emu`` is closed when the interpreter exits, whatever the path."""
    atexit.register(emu.close)


def watch(emu: Any, duration: float, console: Any, signals: StopSignals) -> None:
    """Serve until ``duration`` s passed (0: forever) or a signal; exit 1 if the backend dies."""
    from emulator.fakegcs.backend import BackendError

    end = time.monotonic() + duration if duration > 0 else None
    while True:
        signals.check()
        left = WATCH_S if end is None else min(WATCH_S, end - time.monotonic())
        if left <= 0:
            return
        time.sleep(left)
        try:
            emu.backend.check_alive()
        except BackendError as exc:
            first, _, tail = str(exc).partition("\n")
            console.print(f"gcs-hook: error: the backend died: {first}", markup=False)
            if tail:
                console.print(tail, markup=False)
            raise typer.Exit(1) from None
