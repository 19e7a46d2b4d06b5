"""Sweeps of the block cache (block_size × max_bytes × max_staleness) over a trace, in parallel.

The pieces live in their own modules and are re-exported here:

- :mod:`emulator.model.cache_config`: :class:`CacheConfig`, the one config type (validated there);
- :mod:`benchmarks.sweep.grid`: :class:`PointResult`, :func:`default_grid`;
- one module per engine, each ``(trace, CacheConfig, timing=…) -> PointResult``:
  :mod:`benchmarks.sweep.engine_compiled` (``"fast"``: :func:`simulate_columnar`, the exact compiled
  columnar engine sweeps use), :mod:`benchmarks.sweep.engine_python` (``"python"``:
  :func:`simulate_fast`, the pure-Python reference, :func:`compile_ops`,
  :func:`fast_engine_covers`) and :mod:`benchmarks.sweep.engine_model` (``"model"``:
  :func:`simulate_model`, the project's model, every trace);
- :mod:`benchmarks.sweep.timing`: :class:`~benchmarks.sweep.timing.GcsTiming`, seconds per request;
- :mod:`benchmarks.sweep.parallel`: tasks over local processes (trace by memory map) or dask;
- :mod:`benchmarks.sweep.choice`: :func:`best_under_budget`.

This module runs an exact sweep (:func:`run_sweep`); sampled sweeps are
:func:`benchmarks.sweep.sampling.run_sampled_sweep`.

Invariant: the sweep returns one :class:`PointResult` per configuration, in the order given, equal
whatever the number of workers or the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchmarks.sweep.choice import best_under_budget
from benchmarks.sweep.grid import PointResult, default_grid
from benchmarks.sweep.parallel import Task, execute
from benchmarks.sweep.timing import DEFAULT_TIMING, GcsTiming
from emulator.model.cache_config import CacheConfig
from emulator.replay.columnar import ColumnarTrace, to_dict
from gcs_hook.lazy import lazy_getattr
from gcs_hook.tf_defaults import TF_STAT_CACHE_MAX_AGE

if TYPE_CHECKING:
    from benchmarks.sweep.engine_compiled import fast_engine_covers, simulate_columnar
    from benchmarks.sweep.engine_model import simulate_model
    from benchmarks.sweep.engine_python import compile_ops, simulate_fast

#: the engines' names, imported on first use (the compiled engine loads numba: a command that
#: only parses its options, or fails on them, never pays for it)
__getattr__ = lazy_getattr(
    __name__,
    {
        "fast_engine_covers": "benchmarks.sweep.engine_compiled",
        "simulate_columnar": "benchmarks.sweep.engine_compiled",
        "to_columnar": "benchmarks.sweep.engine_compiled",
        "simulate_model": "benchmarks.sweep.engine_model",
        "compile_ops": "benchmarks.sweep.engine_python",
        "simulate_fast": "benchmarks.sweep.engine_python",
    },
)


__all__ = [
    "best_under_budget",
    "compile_ops",
    "CacheConfig",
    "PointResult",
    "default_grid",
    "fast_engine_covers",
    "run_sweep",
    "simulate_columnar",
    "simulate_fast",
    "simulate_model",
]


def run_sweep(
    trace: Mapping[str, Any] | ColumnarTrace,
    configs: Sequence[CacheConfig],
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    epochs: int = 1,
    stat_cache_max_age: int | None = None,
    engine: str = "fast",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str | None = None,
) -> list[PointResult]:
    """Run every configuration over ``trace`` exactly; results in the order of ``configs``.

    ``engine``: ``"fast"`` (the compiled columnar engine, :mod:`benchmarks.sweep.engine_compiled`;
    ``NotImplementedError`` for traces it does not cover, see :func:`fast_engine_covers`),
    ``"python"`` (the pure-Python :func:`simulate_fast`, the reference), or ``"model"``.
    ``workers`` processes (default and at most: the cores) map the trace and take chunks of
    configurations; ``progress(done, total)`` is called as chunks finish. ``scheduler``: a
    ``dask.distributed`` scheduler address (the trace is scattered once).
    """
    if engine not in ("fast", "python", "model"):
        raise ValueError(f"engine must be 'fast', 'python' or 'model', got {engine!r}")
    if engine == "fast":
        from benchmarks.sweep.engine_compiled import to_columnar

        trace = to_columnar(trace)  # fails early, in this process, on unsupported ops
    elif isinstance(trace, ColumnarTrace):
        trace = to_dict(trace)
    elif engine == "python":
        from benchmarks.sweep.engine_python import compile_ops

        compile_ops(trace)  # fail early
    age = stat_cache_max_age
    if age is None:
        age = _trace_age(trace)
    age = TF_STAT_CACHE_MAX_AGE if age is None else int(age)
    kw = {"timing": timing, "epochs": epochs, "stat_cache_max_age": age}
    tasks = [Task("trace", c) for c in configs]
    outs = execute(
        {"trace": trace}, tasks, engine=engine, kw=kw, workers=workers, scheduler=scheduler,
        progress=progress,
    )  # fmt: skip
    return [o.result for o in outs]


def _trace_age(trace: Mapping[str, Any] | ColumnarTrace) -> int | None:
    """The trace's own ``stat_cache_max_age`` (None: TF's default)."""
    if isinstance(trace, ColumnarTrace):
        return trace.stat_cache_max_age
    return trace.get("stat_cache_max_age")
