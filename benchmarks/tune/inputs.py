"""Inputs of the ``gcs-hook tune`` sweep: which configurations (:func:`config_grid`), which engine
covers a trace (:func:`choose_engine`), and the model check of a synthesized trace against a
recording (:func:`same_reads`). Kept apart from :mod:`benchmarks.tune.pipeline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.sweep.grid import default_grid
from emulator.model.cache_config import CacheConfig

__all__ = ["choose_engine", "config_grid", "read_ops", "same_reads"]


def config_grid(opts: Any) -> list[CacheConfig]:
    """``--configs`` exactly (plus the default grid with ``with_grid``), else the grid."""
    if not opts.configs:
        return default_grid(opts.memory_budget, quick=opts.quick)
    grid = list(dict.fromkeys(opts.configs))
    if opts.with_grid:
        grid += [c for c in default_grid(opts.memory_budget, quick=opts.quick) if c not in grid]
    return grid


def choose_engine(trace: Mapping[str, Any]) -> tuple[str, str]:
    """("fast", "") when the compiled engine covers the trace, else ("model", why)."""
    from benchmarks.sweep import fast_engine_covers

    if fast_engine_covers(trace):
        return "fast", ""
    kinds = sorted({o.get("op") for o in trace.get("ops", [])} - _FAST_OPS)
    return "model", f"ops {', '.join(kinds)}" if kinds else "missing objects"


_FAST_OPS = {"open", "read", "close", "stat", "sleep"}


def same_reads(rec: Any, synthesized: Mapping[str, Any]) -> bool:
    """Does the synthesized trace make TF's recorded reads? Read ops compared one to one; for
    traces with ``tail`` ops (reads that depend on what earlier reads returned), the requests
    the model sends for it with the recording settings against the recorded requests."""
    if not any(op["op"] == "tail" for op in synthesized["ops"]):
        return read_ops(rec.trace) == read_ops(synthesized)
    from benchmarks.record.settings import RECORDING_CONFIG
    from emulator.replay.simulation import simulate

    sim = simulate(  # live workloads record with TF's stat cache off (PROGRAM_RECORDING_ENV)
        synthesized, RECORDING_CONFIG, buffer_size=0, record_requests=True, stat_cache_max_age=0
    )
    predicted = [r for r in sim.requests or [] if r["kind"] in ("media", "metadata")]
    recorded = [r for r in rec.requests if r["kind"] in ("media", "metadata")]
    return predicted == recorded


def read_ops(trace: Mapping[str, Any]) -> list[tuple]:
    handle_obj = {o["handle"]: o["object"] for o in trace["ops"] if o["op"] == "open"}
    return [
        (o["op"], o.get("object") or handle_obj.get(o.get("handle")), o.get("offset"), o.get("n"))
        for o in trace["ops"]
        if o["op"] in ("read", "stat")
    ]
