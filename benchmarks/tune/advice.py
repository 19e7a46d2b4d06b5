"""The recommendation ``gcs-hook tune`` prints, with rules that hold on live files.

:func:`recommend` picks, among the configurations whose memory column (``max_bytes`` plus the
block in flight, :attr:`PointResult.memory_bytes`) fits the memory budget:

1. only safe configurations - every read returned the current version's bytes (bytes an
   append kept count as current), no pass over a file was torn, no read failed - unless
   ``allow_stale`` (if none is safe, the fastest overall, flagged in the note);
2. the fastest predicted time ``t_best``; every configuration within ``tie`` (5 %) of it is a
   near tie;
3. among near ties the one needing the least memory: smaller ``max_bytes``, then smaller
   blocks (TF allocates a whole block per fetch), then no staleness, then faster.

:func:`results_json` is the ``--json`` document: one object per configuration.

Invariant: the recommendation is always one of ``results`` (or None when nothing fits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.sweep.cost import DEFAULT_PRICES, PriceTable
from benchmarks.sweep.grid import PointResult
from benchmarks.tune.bucket_timing import cost_usd

__all__ = ["TIE_FRACTION", "recommend", "results_json"]

TIE_FRACTION = 0.05


def recommend(
    results: Sequence[PointResult],
    memory_budget: int,
    *,
    allow_stale: bool = False,
    tie: float = TIE_FRACTION,
) -> tuple[PointResult | None, str]:
    """(recommended result, a note saying what was excluded)."""
    fitting = [r for r in results if r.fits(memory_budget)]
    if not fitting:
        return None, "no configuration fits the memory budget"
    note = ""
    pool = fitting
    if not allow_stale:
        safe = [r for r in fitting if not r.hazardous]
        excluded = len(fitting) - len(safe)
        if safe:
            pool = safe
            if excluded:
                note = (
                    f"{excluded} configuration(s) with stale/torn reads or files or errors "
                    "excluded (--allow-stale to consider them)"
                )
        else:
            note = "every configuration reads stale or torn data or fails: none is safe"
    stale_stats = min(r.stale_stats for r in fitting)
    if stale_stats:
        note = (note + "; " if note else "") + (
            f"TF's stat cache answered {stale_stats} stat(s) with an old size in every "
            "configuration: set GCS_STAT_CACHE_MAX_AGE=0 before importing TF for files "
            "that change"
        )
    if best_unseen := [r for r in pool if r.assumes_data_not_seen and r.config.cache_on]:
        note = (note + "; " if note else "") + (
            f"{len(best_unseen)} configuration(s) flagged assumes_data_not_seen: their reads "
            "got older or fewer bytes than the recording, so the program may read differently "
            "with them and their numbers are not exact"
        )
    t_best = min(r.predicted_s for r in pool)
    near = [r for r in pool if r.predicted_s <= t_best * (1 + tie) + 1e-12]
    best = min(
        near,
        key=lambda r: (
            r.config.max_bytes,
            r.config.block_size,
            r.config.max_staleness,
            r.predicted_s,
            r.requests,
        ),
    )
    return best, note


def results_json(
    results: Sequence[PointResult],
    best: PointResult | None = None,
    *,
    exact: bool = True,
    prices: PriceTable = DEFAULT_PRICES,
) -> list[dict[str, Any]]:
    """One JSON object per configuration: ``config`` (None = cache off), media ``requests``,
    ``metadata_requests``, media ``bytes_fetched``, ``predicted_seconds``, hazards
    (``stale_reads``, ``torn_reads``, ``errors``, ``stale_stats``, ``stale_files``,
    ``torn_files``), ``assumes_data_not_seen`` (+ ``reads_not_seen``, ``tail_lag``: how many
    versions behind a ``tail`` follower fell), memory, ``cost_usd`` (all epochs, at
    ``prices``); ``exact`` False when
    the sweep sampled (the numbers are then estimates, see ``tune --exact``)."""
    out = []
    for r in results:
        c = r.config
        out.append(
            {
                "config": c.as_dict() if c.cache_on else None,
                "requests": r.media_requests,
                "metadata_requests": r.metadata_requests,
                "bytes_fetched": r.media_bytes_fetched,
                "predicted_seconds": round(r.predicted_s, 6),
                "cost_usd": round(cost_usd(r, prices), 8),
                "stale_reads": r.stale_reads,
                "torn_reads": r.torn_reads,
                "errors": r.errors,
                "stale_stats": r.stale_stats,
                "stale_files": r.stale_files,
                "torn_files": r.torn_files,
                "assumes_data_not_seen": r.assumes_data_not_seen,
                "reads_not_seen": r.reads_not_seen,
                "tail_lag": r.tail_lag,
                "memory_bytes": r.memory_bytes,
                "recommended": best is not None and r.config == best.config,
                "exact": exact,
            }
        )
    return out
