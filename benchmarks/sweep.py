"""Sweeps of the block cache (block_size × max_bytes × max_staleness) over a trace, in parallel.

The pieces live in their own modules and are re-exported here:

- :mod:`benchmarks.sweep_grid`: :class:`CacheConfig`, :class:`PointResult`, :func:`default_grid`;
- :mod:`benchmarks.sweep_engines`: the engines (:func:`simulate_fast`, :func:`simulate_model`);
- :mod:`benchmarks.sweep_choice`: :func:`best_under_budget`.

This module runs a sweep: :func:`run_sweep` spreads the configurations over local processes or
a ``dask.distributed`` cluster.

Invariant: the sweep returns one :class:`PointResult` per configuration, in the order given, equal
whatever the number of workers or the scheduler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from benchmarks.gcs_timing import DEFAULT_TIMING, GcsTiming
from benchmarks.sweep_choice import best_under_budget
from benchmarks.sweep_engines import compile_ops, simulate_fast, simulate_model
from benchmarks.sweep_grid import (
    TF_DEFAULT_BUFFER,
    TF_STAT_CACHE_MAX_AGE,
    CacheConfig,
    PointResult,
    default_grid,
)

__all__ = [
    "TF_DEFAULT_BUFFER",
    "TF_STAT_CACHE_MAX_AGE",
    "best_under_budget",
    "compile_ops",
    "CacheConfig",
    "PointResult",
    "default_grid",
    "run_sweep",
    "simulate_fast",
    "simulate_model",
]


_W: dict[str, Any] = {}


def _init_worker(trace: Mapping[str, Any], kw: dict[str, Any], engine: str = "fast") -> None:
    # only the fast engine compiles: it raises NotImplementedError on traces the model engine
    # covers (write/overwrite/delete/configure), which would break the process pool
    _W["compiled"] = compile_ops(trace) if engine == "fast" else None
    _W["trace"] = trace
    _W["kw"] = kw


def _run_chunk(configs: list[CacheConfig], engine: str) -> list[PointResult]:
    out = []
    for c in configs:
        if engine == "fast":
            res, _ = simulate_fast(_W["compiled"], c, **_W["kw"])
        else:
            res, _ = simulate_model(_W["trace"], c, **_W["kw"])
        out.append(res)
    return out


def run_sweep(
    trace: Mapping[str, Any],
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
    """Run every configuration over ``trace``; results in the order of ``configs``.

    ``workers`` processes (default: local cores) each compile the trace once and take chunks of
    configurations; ``progress(done, total)`` is called as chunks finish. ``scheduler``: a
    ``dask.distributed`` scheduler address — used only if dask is installed.
    """
    if engine not in ("fast", "model"):
        raise ValueError(f"engine must be 'fast' or 'model', got {engine!r}")
    if engine == "fast":
        compile_ops(trace)  # fail early, in this process, on unsupported ops
    age = stat_cache_max_age
    if age is None:
        age = trace.get("stat_cache_max_age")
    age = TF_STAT_CACHE_MAX_AGE if age is None else int(age)
    kw = {"timing": timing, "epochs": epochs, "stat_cache_max_age": age}
    configs = list(configs)
    total = len(configs)
    if scheduler:
        return _run_dask(trace, configs, kw, engine, scheduler, progress)
    workers = max(1, min(workers or os.cpu_count() or 1, total or 1))
    if workers == 1 or total <= 2:
        _init_worker(trace, kw, engine)
        results = []
        for i, c in enumerate(configs):
            results.extend(_run_chunk([c], engine))
            if progress:
                progress(i + 1, total)
        return results
    nchunks = min(total, workers * 8)
    chunks = [list(range(i, total, nchunks)) for i in range(nchunks)]
    out: list[PointResult | None] = [None] * total
    done = 0
    with ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=(trace, kw, engine)
    ) as pool:
        futs = {pool.submit(_run_chunk, [configs[i] for i in idx], engine): idx for idx in chunks}
        for fut in as_completed(futs):
            idx = futs[fut]
            for i, res in zip(idx, fut.result(), strict=True):
                out[i] = res
            done += len(idx)
            if progress:
                progress(done, total)
    return [r for r in out if r is not None]


def _dask_chunk(
    trace: Mapping[str, Any], configs: list[CacheConfig], kw: dict[str, Any], engine: str
) -> list[PointResult]:
    _init_worker(trace, kw, engine)
    return _run_chunk(configs, engine)


def _run_dask(
    trace: Mapping[str, Any],
    configs: list[CacheConfig],
    kw: dict[str, Any],
    engine: str,
    scheduler: str,
    progress: Callable[[int, int], None] | None,
) -> list[PointResult]:
    """The sweep on a ``dask.distributed`` cluster: the trace is scattered once to every
    worker, configurations go in chunks (about 4 per worker thread)."""
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError as exc:  # optional dependency
        raise RuntimeError(
            "a dask scheduler was given but dask.distributed is not installed "
            "(pip install 'gcs-hook[dask]')"
        ) from exc

    total = len(configs)
    with Client(scheduler) as client:
        threads = max(1, sum(client.nthreads().values()))
        nchunks = max(1, min(total, threads * 4))
        chunks = [list(range(i, total, nchunks)) for i in range(nchunks)]
        shared = client.scatter(dict(trace), broadcast=True)
        futs = [
            client.submit(_dask_chunk, shared, [configs[i] for i in idx], kw, engine, pure=False)
            for idx in chunks
        ]
        index = {f.key: idx for f, idx in zip(futs, chunks, strict=True)}
        out: list[PointResult | None] = [None] * total
        done = 0
        for fut in dask_completed(futs):
            idx = index[fut.key]
            for i, res in zip(idx, fut.result(), strict=True):
                out[i] = res
            done += len(idx)
            if progress:
                progress(done, total)
    return [r for r in out if r is not None]
