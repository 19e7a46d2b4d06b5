"""Choosing the configuration to recommend from a sweep's results.

Invariant: the choice is a pure function of the results and the budget (deterministic ties).
"""

from __future__ import annotations

from collections.abc import Iterable

from benchmarks.sweep.grid import PointResult

__all__ = ["best_under_budget"]


def best_under_budget(results: Iterable[PointResult], memory_budget: int) -> PointResult | None:
    """The fastest configuration whose memory column (``max_bytes`` plus the block in flight)
    fits ``memory_budget`` (ties: fewer requests, then less memory, then smaller blocks)."""
    fitting = [r for r in results if r.fits(memory_budget)]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda r: (
            round(r.predicted_s, 9),
            r.requests,
            r.config.max_bytes,
            r.config.block_size,
            r.config.max_staleness,
        ),
    )
