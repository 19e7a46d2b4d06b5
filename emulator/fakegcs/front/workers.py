"""Worker threads of the front: a bounded, self-sizing pool that serves requests.

Invariants:
- At most ``limit`` threads exist; a job submitted while all are busy waits in order.
- Idle threads stay ``linger_s`` seconds for the next job, then end (``keep`` always stay once
  started); a job never waits while an idle thread exists.
- A thread that cannot start never loses a job silently: when other threads run, the job
  waits for them; when none does, :meth:`submit` returns the error for the caller to answer.
- :meth:`close` wakes every idle thread; threads end after their current job.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class _Slot:
    """An idle thread's mailbox."""

    __slots__ = ("event", "job")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.job: Callable[[], None] | None = None


class Workers:
    """See the module docstring; ``start`` starts a thread (a seam for tests)."""

    def __init__(
        self,
        start: Callable[[threading.Thread], None],
        limit: int,
        *,
        keep: int = 4,
        linger_s: float = 10.0,
        name: str = "front-worker",
    ) -> None:
        self._start = start
        self.limit = limit
        self.keep = keep
        self.linger_s = linger_s
        self.name = name
        self._lock = threading.Lock()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._idle: list[_Slot] = []
        self._threads: set[threading.Thread] = set()
        self._count = 0
        self._closed = False

    def submit(self, job: Callable[[], None]) -> str | None:
        """Run ``job`` in a worker thread; None, or why no thread can run it (not queued)."""
        with self._lock:
            if self._idle:
                slot = self._idle.pop()
                slot.job = job
                slot.event.set()
                return None
            if len(self._threads) >= self.limit or self._closed:
                self._jobs.append(job)
                return None
            self._count += 1
            t = threading.Thread(
                target=self._work, args=(job,), name=f"{self.name}-{self._count}", daemon=True
            )
            self._threads.add(t)
        try:
            self._start(t)
        except Exception as exc:  # e.g. "can't start new thread"
            with self._lock:
                self._threads.discard(t)
                if not self._threads:
                    return str(exc) or type(exc).__name__
                self._jobs.append(job)  # a running thread will take it
            log.debug("worker thread did not start: %s", exc)
        return None

    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def _work(self, job: Callable[[], None] | None) -> None:
        me = threading.current_thread()
        slot = _Slot()
        while True:
            if job is not None:
                try:
                    job()
                except Exception:  # a job's failure never ends the thread
                    log.debug("front worker job failed", exc_info=True)
                job = None
            with self._lock:
                if self._jobs:
                    job = self._jobs.popleft()
                    continue
                if self._closed:
                    self._threads.discard(me)
                    return
                slot.event.clear()
                slot.job = None
                self._idle.append(slot)
            got = slot.event.wait(self.linger_s)
            with self._lock:
                if slot.job is not None:
                    job = slot.job
                    continue
                if slot in self._idle:
                    self._idle.remove(slot)
                if self._closed or (not got and len(self._threads) > self.keep):
                    self._threads.discard(me)
                    return

    def close(self, timeout: float) -> None:
        """Wake idle threads so they end; wait up to ``timeout`` s for all of them."""
        import time

        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for slot in idle:
            slot.event.set()
        end = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
