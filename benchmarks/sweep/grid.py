"""The points of a sweep: what one costs (:class:`PointResult`), and the default grid of
:class:`~emulator.model.cache_config.CacheConfig` points (the one config type, re-exported here).

Invariants: :func:`default_grid`
starts with cache off ``(0, 0, 0)`` and never holds a point with ``0 < max_bytes < block_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.sweep.timing import METADATA_RESPONSE_BYTES
from emulator.model.cache_config import CacheConfig
from gcs_hook.units import KiB, MiB

__all__ = [
    "CacheConfig",
    "PointResult",
    "default_grid",
]


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
    #: hazards (model engine only; the fast engine runs only traces where objects never change)
    stale_reads: int = 0
    torn_reads: int = 0
    errors: int = 0
    #: stat ops answered with an older generation's size (the stat cache; cache on or off)
    stale_stats: int = 0
    #: media bytes alone (None: bytes_fetched minus the metadata responses)
    media_bytes: int | None = None
    #: passes over a file that held a stale read / returned bytes of more than one version
    stale_files: int = 0
    torn_files: int = 0
    #: read ops that got other or fewer bytes than the current version holds (the fixed
    #: trace assumes data the program may not see with this configuration)
    reads_not_seen: int = 0
    #: tail ops that ended behind the object's end; most versions behind after one
    tails_behind: int = 0
    tail_lag: int = 0

    @property
    def media_bytes_fetched(self) -> int:
        """Bytes of object data fetched (what a ledger's media responses carry)."""
        if self.media_bytes is not None:
            return self.media_bytes
        return self.bytes_fetched - METADATA_RESPONSE_BYTES * self.metadata_requests

    @property
    def hazardous(self) -> bool:
        """Some read returned bytes other than the current version's, a file pass was torn,
        or a read failed (bytes an append kept are current bytes: not a hazard)."""
        return bool(self.stale_reads or self.torn_reads or self.torn_files or self.errors)

    @property
    def assumes_data_not_seen(self) -> bool:
        """The prediction replays fixed reads that this configuration may not let the program
        make: some read got other or fewer bytes than current, or a stat an old size."""
        return bool(self.reads_not_seen or self.stale_stats)

    @property
    def memory_bytes(self) -> int:
        """Memory the config really needs: max_bytes plus the blocks in flight (a block is
        allocated whole for each fetch before it is added and evicted; one reader at a time
        puts one block in flight). Cache off: the read-ahead buffer of each open handle is
        not counted here."""
        if not self.config.cache_on:
            return 0
        return self.config.max_bytes + self.config.block_size

    def fits(self, memory_budget: int) -> bool:
        """Whether the memory column (:attr:`memory_bytes`) is within ``memory_budget``."""
        return self.memory_bytes <= memory_budget

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
            bytes_fetched=self.media_bytes_fetched,  # media bytes, as in tune --json
            predicted_s=round(self.predicted_s, 6),
            epoch_s=round(self.epoch_s, 6),
            requests_per_epoch=self.requests_per_epoch,
            epochs=self.epochs,
            peak_cache_bytes=self.peak_cache_bytes,
            stale_reads=self.stale_reads,
            torn_reads=self.torn_reads,
            errors=self.errors,
            stale_stats=self.stale_stats,
            stale_files=self.stale_files,
            torn_files=self.torn_files,
            assumes_data_not_seen=self.assumes_data_not_seen,
            tail_lag=self.tail_lag,
            memory_bytes=self.memory_bytes,
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
    and ×4 steps from 16 MiB up to the budget, plus the budget less the largest block (the
    largest cache every block size fits in); max_staleness 0 (never stale) and, unless quick,
    60 s and 600 s; and for every block size, max_bytes = 2, 4 and 8 blocks. Every point's
    memory column (``max_bytes`` plus the block in flight) is within the budget. Points where
    0 < max_bytes < block_size (every block evicted at once) are left out.
    """
    if memory_budget < 0:
        raise ValueError("memory budget must be >= 0")
    blocks = _pow2_range(256 * KiB, 256 * MiB, 4 if quick else 2)
    maxes = [0] + [m for m in _pow2_range(16 * MiB, memory_budget, 4) if m <= memory_budget]
    top = memory_budget - blocks[-1]
    if top >= 16 * MiB and top not in maxes:
        maxes.append(top)
        maxes.sort()
    stales = [0] if quick else [0, 60, 600]
    grid = [CacheConfig(0, 0, 0)]  # cache off: block size and staleness do not matter
    seen = set(grid)
    for s in stales:
        for m in maxes:
            for b in blocks:
                if 0 < m < b or m == 0 or m + b > memory_budget:
                    continue
                grid.append(CacheConfig(b, m, s))
                seen.add(grid[-1])
        # small caches: max_bytes = 2, 4 and 8 blocks of every block size
        for b in blocks:
            for k in (2, 4, 8):
                c = CacheConfig(b, k * b, s)
                if (k + 1) * b <= memory_budget and c not in seen:
                    grid.append(c)
                    seen.add(c)
    return grid
