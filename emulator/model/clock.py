"""Clocks for the model: TensorFlow reads time as integer seconds (``Env::NowSeconds``).

``Clock.now()`` returns whole seconds; ``Clock.sleep(seconds)`` waits (real clock) or advances
time (virtual clock). The virtual clock never goes backwards and is thread-safe, so a
simulation is deterministic: time moves only when the simulation says so.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> int:
        """Current time in whole seconds (like ``Env::NowSeconds``)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class RealClock:
    """Wall-clock seconds since the epoch, as TensorFlow's default Env reports them."""

    def now(self) -> int:
        return int(time.time())

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "RealClock()"


class VirtualClock:
    """Simulated time. ``now()`` is ``floor(t)``; only :meth:`advance`/:meth:`sleep` move it.

    Invariant: ``t`` is finite and never decreases.
    """

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start) or start < 0:
            raise ValueError(f"VirtualClock start must be a finite number >= 0, got {start!r}")
        self._t = float(start)
        self._lock = threading.Lock()

    @property
    def time(self) -> float:
        """Current virtual time in (fractional) seconds."""
        return self._t

    def now(self) -> int:
        return int(self._t)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (ValueError if negative or not finite)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"can only advance by a finite number >= 0, got {seconds!r}")
        with self._lock:
            self._t += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"VirtualClock(t={self._t})"
