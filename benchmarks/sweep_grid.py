"""The points of a sweep: :class:`CacheConfig`, what one costs (:class:`PointResult`), and the
default grid.

Invariants: a :class:`CacheConfig` holds non-negative ints in BlockCacheParams units (bytes,
bytes, seconds); the cache is on iff ``block_size > 0 and max_bytes > 0``; :func:`default_grid`
starts with cache off ``(0, 0, 0)`` and never holds a point with ``0 < max_bytes < block_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.replay import trace as trace_mod

__all__ = [
    "TF_DEFAULT_BUFFER",
    "TF_STAT_CACHE_MAX_AGE",
    "CacheConfig",
    "PointResult",
    "default_grid",
]

KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
#: TF 2.21's default filesystem block size = the cache-off read-ahead buffer.
TF_DEFAULT_BUFFER = 64 * MiB
#: TF's default stat cache max age (seconds).
TF_STAT_CACHE_MAX_AGE = 5


@dataclass(frozen=True, order=True)
class CacheConfig(trace_mod.CacheConfig):
    """One point of the grid, in BlockCacheParams units: bytes, bytes, seconds.

    The trace format's :class:`emulator.replay.trace.CacheConfig` (same fields, ``as_dict``), plus
    validation, ordering and :attr:`cache_on`.
    """

    def __post_init__(self) -> None:
        for name in ("block_size", "max_bytes", "max_staleness"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")

    @property
    def cache_on(self) -> bool:
        return self.block_size > 0 and self.max_bytes > 0


@dataclass(frozen=True)
class PointResult:
    """What one configuration costs on the trace."""

    config: CacheConfig
    requests: int
    media_requests: int
    metadata_requests: int
    bytes_fetched: int
    predicted_s: float
    epochs: int
    peak_cache_bytes: int

    @property
    def epoch_s(self) -> float:
        return self.predicted_s / max(1, self.epochs)

    @property
    def requests_per_epoch(self) -> float:
        return self.requests / max(1, self.epochs)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = self.config.as_dict()
        row.update(
            requests=self.requests,
            media_requests=self.media_requests,
            metadata_requests=self.metadata_requests,
            bytes_fetched=self.bytes_fetched,
            predicted_s=round(self.predicted_s, 6),
            epoch_s=round(self.epoch_s, 6),
            requests_per_epoch=self.requests_per_epoch,
            epochs=self.epochs,
            peak_cache_bytes=self.peak_cache_bytes,
        )
        return row


def _pow2_range(lo: int, hi: int, step: int = 2) -> list[int]:
    out, v = [], lo
    while v <= hi:
        out.append(v)
        v *= step
    return out


def default_grid(memory_budget: int, *, quick: bool = False) -> list[CacheConfig]:
    """The default grid under ``memory_budget`` bytes; the first point is cache off ``(0, 0, 0)``.

    block_size 256 KiB … 256 MiB (×4 steps when quick, ×2 otherwise); max_bytes 0 (cache off)
    and ×4 steps from 16 MiB up to the budget, plus the budget itself; max_staleness 0 (never
    stale) and, unless quick, 60 s and 600 s. Points where 0 < max_bytes < block_size (every
    block evicted at once) are left out.
    """
    if memory_budget < 0:
        raise ValueError("memory budget must be >= 0")
    blocks = _pow2_range(256 * KiB, 256 * MiB, 4 if quick else 2)
    maxes = [0] + [m for m in _pow2_range(16 * MiB, memory_budget, 4) if m <= memory_budget]
    if memory_budget > 0 and memory_budget not in maxes:
        maxes.append(memory_budget)
    stales = [0] if quick else [0, 60, 600]
    grid = [CacheConfig(0, 0, 0)]  # cache off: block size and staleness do not matter
    for s in stales:
        for m in maxes:
            for b in blocks:
                if 0 < m < b or m == 0:
                    continue
                grid.append(CacheConfig(b, m, s))
    return grid
