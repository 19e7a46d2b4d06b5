"""Running sweep tasks in parallel: local processes (trace by memory map) or dask.distributed.

A task is one engine run: (trace key, config given to the engine, whether the trace is
sampled). The traces are
shared, never pickled per task:

- **Local processes**: each columnar trace is written once to a temporary ``.npz``
  (:func:`emulator.replay.columnar.save_columnar`) unless it already is a memory map of one,
  and every worker maps it read-only (:func:`~emulator.replay.columnar.load_columnar`): one copy
  in the page cache, shared by all workers. JSON-shaped traces (model engine) are handed over at
  fork.
- **dask.distributed**: the traces are scattered once to every worker (``broadcast=True``);
  tasks go in chunks of about four per worker thread.

Each task returns a :class:`TaskOut`: the engine's totals and, when the worker knows the
sampling units, per-unit sums for the error estimate (:mod:`benchmarks.sweep.sampling`).

Invariants: outputs come back in task order; a worker count is at most the cores and the
number of tasks; every temporary file is removed when :func:`execute` returns or raises.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.sweep.grid import PointResult
from emulator.model.cache_config import CacheConfig
from emulator.replay.columnar import ColumnarTrace, load_columnar, save_columnar

__all__ = ["Task", "TaskOut", "execute", "max_workers", "spilled"]


@dataclass(frozen=True)
class Task:
    trace: str  # key into the traces given to execute()
    config: CacheConfig  # what the engine simulates (a miniature config for samples)
    open_gaps: bool = False  # a sampled trace: see simulate_columnar


@dataclass(frozen=True)
class TaskOut:
    result: PointResult
    #: per metric (requests, bytes): (Σy, Σy², Σy·w) over the sampling units; None if unknown
    unit_sums: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None


def max_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def spilled(
    ct: ColumnarTrace, workers: int | None, scheduler: str | None
) -> Iterator[ColumnarTrace]:
    """``ct`` itself, or — when local worker processes will map it anyway — its memory-mapped
    copy in a temporary file, so this process does not hold a private copy next to the shared
    one (the caller drops its reference to ``ct``)."""
    if scheduler or min(workers or max_workers(), max_workers()) <= 1 or getattr(ct, "_path", None):
        yield ct
        return
    with tempfile.TemporaryDirectory(prefix="gcs-hook-sweep-") as tmp:
        path = os.path.join(tmp, "trace.npz")
        save_columnar(ct, path)
        del ct
        yield load_columnar(path)


_W: dict[str, Any] = {}


def _init(traces: Mapping[str, Any], kw: dict[str, Any], units: Any) -> None:
    loaded = {}
    for key, t in traces.items():
        if isinstance(t, str):  # a path: map it
            loaded[key] = load_columnar(t)
        elif isinstance(t, dict) and "_columns" in t:  # scattered columns (dask)
            loaded[key] = ColumnarTrace(**t["_columns"])
        else:
            loaded[key] = t
    _W["traces"], _W["kw"], _W["units"] = loaded, kw, units
    _W["compiled"] = {}


def _unit_sums(obj_reqs: np.ndarray, obj_bytes: np.ndarray) -> Any:
    units = _W["units"]
    if units is None:
        return None
    unit_of, w = units
    out = []
    for y_obj in (obj_reqs, obj_bytes):
        y = np.bincount(unit_of, weights=y_obj, minlength=w.size)
        out.append((float(y.sum()), float((y * y).sum()), float((y * w).sum())))
    return tuple(out)


def _run(tasks: list[Task], engine: str) -> list[TaskOut]:
    from benchmarks.sweep.engine_compiled import simulate_columnar
    from benchmarks.sweep.engine_model import simulate_model
    from benchmarks.sweep.engine_python import compile_ops, simulate_fast

    out = []
    for task in tasks:
        trace = _W["traces"][task.trace]
        if engine == "fast":
            run = simulate_columnar(trace, task.config, open_gaps=task.open_gaps, **_W["kw"])
            out.append(TaskOut(run.result, _unit_sums(run.obj_reqs, run.obj_bytes)))
        elif engine == "python":  # today's pure-Python engine (kept as the reference)
            compiled = _W.setdefault("compiled", {})
            if task.trace not in compiled:
                compiled[task.trace] = compile_ops(trace)
            out.append(TaskOut(simulate_fast(compiled[task.trace], task.config, **_W["kw"])[0]))
        else:
            out.append(TaskOut(simulate_model(trace, task.config, **_W["kw"])[0]))
    return out


def _run_scattered(traces: Any, kw: Any, units: Any, tasks: list[Task], engine: str) -> Any:
    _init(traces, kw, units)
    return _run(tasks, engine)


def execute(
    traces: Mapping[str, Any],
    tasks: Sequence[Task],
    *,
    engine: str,
    kw: dict[str, Any],
    units: tuple[np.ndarray, np.ndarray] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskOut]:
    """Run ``tasks`` over ``traces`` (key → ColumnarTrace, or a trace dict for the model and
    python engines); ``units`` = (unit id per object, weight per unit) for per-unit sums."""
    tasks = list(tasks)
    total = len(tasks)
    if scheduler:
        return _execute_dask(traces, tasks, engine, kw, units, scheduler, progress)
    workers = max(1, min(workers or max_workers(), max_workers(), total or 1))
    if workers == 1 or total <= 2:
        _init(traces, kw, units)
        outs: list[TaskOut] = []
        for i, task in enumerate(tasks):
            outs.extend(_run([task], engine))
            if progress:
                progress(i + 1, total)
        return outs
    with tempfile.TemporaryDirectory(prefix="gcs-hook-sweep-") as tmp:
        shared: dict[str, Any] = {}
        for key, t in traces.items():
            if isinstance(t, ColumnarTrace):
                path = getattr(t, "_path", None)
                if path is None:
                    path = os.path.join(tmp, f"{key}.npz")
                    save_columnar(t, path)
                shared[key] = path
            else:
                shared[key] = t
        nchunks = min(total, workers * 8)
        chunks = [list(range(i, total, nchunks)) for i in range(nchunks)]
        res: list[TaskOut | None] = [None] * total
        done = 0
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(shared, kw, units)) as pool:
            futs = {pool.submit(_run, [tasks[i] for i in idx], engine): idx for idx in chunks}
            for fut in as_completed(futs):
                idx = futs[fut]
                for i, r in zip(idx, fut.result(), strict=True):
                    res[i] = r
                done += len(idx)
                if progress:
                    progress(done, total)
    return [r for r in res if r is not None]


def _execute_dask(
    traces: Mapping[str, Any],
    tasks: list[Task],
    engine: str,
    kw: dict[str, Any],
    units: Any,
    scheduler: str,
    progress: Callable[[int, int], None] | None,
) -> list[TaskOut]:
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError as exc:  # optional dependency
        raise RuntimeError(
            "a dask scheduler was given but dask.distributed is not installed "
            "(pip install 'gcs-hook[dask]')"
        ) from exc

    payload: dict[str, Any] = {}
    for key, t in traces.items():
        if isinstance(t, ColumnarTrace):  # plain arrays: pickled once, protocol 5, no copies
            cols = {c: np.ascontiguousarray(getattr(t, c)) for c in t.columns()}
            payload[key] = {
                "_columns": dict(
                    cols, names=t.names, sizes=np.asarray(t.sizes), seconds=np.asarray(t.seconds),
                    config=t.config, stat_cache_max_age=t.stat_cache_max_age,
                )
            }  # fmt: skip
        else:
            payload[key] = dict(t)
    total = len(tasks)
    with Client(scheduler) as client:
        threads = max(1, sum(client.nthreads().values()))
        nchunks = max(1, min(total, threads * 4))
        chunks = [list(range(i, total, nchunks)) for i in range(nchunks)]
        shared = client.scatter(payload, broadcast=True)
        futs = [
            client.submit(
                _run_scattered, shared, kw, units, [tasks[i] for i in idx], engine, pure=False
            )
            for idx in chunks
        ]
        index = {f.key: idx for f, idx in zip(futs, chunks, strict=True)}
        out: list[TaskOut | None] = [None] * total
        done = 0
        for fut in dask_completed(futs):
            idx = index[fut.key]
            for i, r in zip(idx, fut.result(), strict=True):
                out[i] = r
            done += len(idx)
            if progress:
                progress(done, total)
    return [r for r in out if r is not None]
