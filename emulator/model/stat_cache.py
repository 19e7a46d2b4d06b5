"""TF's stat cache: an expiring LRU map from a ``gs://`` path to what was learned about it.

Models ``ExpiringLRUCache`` (TF 2.21, ``xla/tsl/platform/cloud/expiring_lru_cache.h``), which
``GcsFileSystem`` uses for object stats (``GCS_STAT_CACHE_MAX_AGE``, default 5 s) and for glob
results (the matching-paths cache, ``GCS_MATCHING_PATHS_CACHE_MAX_AGE``, default 0 = off);
see docs/tf-read-path.md, "Stat cache".

Invariants: an entry is fresh while ``now - inserted <= max_age`` on the injected clock
(integer seconds, like TF's ``NowSeconds``); a stale entry is dropped when looked up;
``max_age == 0`` stores nothing; only successful computes are stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from emulator.model.clock import Clock

__all__ = ["FileStat", "StatCache"]

T = TypeVar("T")


@dataclass(frozen=True)
class FileStat:
    """Result of :meth:`GcsFilesystemModel.stat` (TF's FileStatistics + generation)."""

    length: int
    generation: int
    is_directory: bool = False


class StatCache(Generic[T]):
    """Model of TF's ExpiringLRUCache: entries fresh while ``now - inserted <= max_age``;
    ``max_age == 0`` caches nothing; beyond ``max_entries`` (0 = unbounded) the LRU entry goes.
    Only successful computes are stored; concurrent misses are not coalesced."""

    def __init__(self, max_age: int, max_entries: int, clock: Clock) -> None:
        if max_age < 0 or max_entries < 0:
            raise ValueError("stat cache max_age and max_entries must be >= 0")
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[int, T]] = OrderedDict()  # last = most recent
        self._lock = threading.Lock()

    def _lookup_locked(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock.now() - entry[0] > self.max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def lookup(self, key: str) -> T | None:
        if self.max_age == 0:
            return None
        with self._lock:
            return self._lookup_locked(key)

    def insert(self, key: str, value: T) -> None:
        if self.max_age == 0:
            return
        with self._lock:
            is_new = key not in self._entries
            self._entries[key] = (self._clock.now(), value)
            self._entries.move_to_end(key)
            if is_new and self.max_entries and len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def lookup_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        if self.max_age == 0:
            return compute()
        with self._lock:
            value = self._lookup_locked(key)
        if value is not None:
            return value
        value = compute()
        self.insert(key, value)
        return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
