"""Sweeps of the block cache (block_size × max_bytes × max_staleness) over a trace, in parallel.

Two engines compute, for one trace and one configuration, the requests TF 2.21 would send:

- ``"fast"`` (:func:`simulate_fast`): a size-only replay specialised for sweeps — no bytes, ops
  pre-compiled to tuples, an ``OrderedDict`` LRU of blocks, a stat cache, the cache-off buffered
  reader, and a virtual clock advanced by the :class:`~benchmarks.gcs_timing.GcsTiming` cost of
  each request (so ``max_staleness`` and the stat cache age see realistic time). It supports the
  ops workloads produce (open/read/close/stat/sleep); traces with overwrite/delete/configure need
  the model engine.
- ``"model"`` (:func:`simulate_model`): the project's model, ``emulator.replay.simulation.simulate``
  (C1's size-only model), the reference. Tests check both engines send the same requests.

Semantics follow docs/tf-read-path.md ("Block cache"): with the cache on (block_size > 0 and
max_bytes > 0) each read stats through the stat cache, then fetches every overlapped block as a
full aligned range GET in ascending order (a short block ends the read; an offset at/after the
end of a block's data is EOF), a read larger than max_bytes bypasses the cache with one exact GET;
LRU eviction while ``cache_size > max_bytes``; a file whose oldest block is older than
``max_staleness`` seconds is dropped whole. With the cache off, each handle has a read-ahead
buffer of ``buffer_size`` bytes — TF's filesystem block size from its construction (64 MiB by
default), not the swept block_size, because ``ResetFileBlockCache`` does not change it.

Invariants: results are deterministic for a given (trace, config, timing); the sweep returns one
:class:`PointResult` per configuration, in the order given.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from benchmarks.gcs_timing import DEFAULT_TIMING, METADATA_RESPONSE_BYTES, GcsTiming
from emulator.replay import trace as trace_mod

__all__ = [
    "TF_DEFAULT_BUFFER",
    "best_under_budget",
    "compile_ops",
    "CacheConfig",
    "PointResult",
    "default_grid",
    "run_sweep",
    "simulate_fast",
    "simulate_model",
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


# --------------------------------------------------------------------------- fast engine

_OPEN, _READ, _CLOSE, _STAT, _SLEEP = range(5)


def compile_ops(trace: Mapping[str, Any]) -> tuple[list[tuple], list[str], list[int]]:
    """Ops as tuples with objects/handles as small ints: (ops, object names, object sizes)."""
    names = list(trace.get("objects") or {})
    index = {n: i for i, n in enumerate(names)}
    sizes = [int(trace["objects"][n]) for n in names]
    handles: dict[str, int] = {}
    out: list[tuple] = []
    for op in trace.get("ops") or []:
        kind = op.get("op")
        if kind == "open":
            obj = op["object"]
            if obj not in index:
                raise NotImplementedError(
                    f"the fast engine does not model missing objects ({obj!r}); use engine='model'"
                )
            h = handles.setdefault(op["handle"], len(handles))
            out.append((_OPEN, h, index[obj]))
        elif kind == "read":
            out.append((_READ, handles[op["handle"]], int(op["offset"]), int(op["n"])))
        elif kind == "close":
            out.append((_CLOSE, handles[op["handle"]]))
        elif kind == "stat":
            if op["object"] not in index:
                raise NotImplementedError("the fast engine does not model missing objects")
            out.append((_STAT, index[op["object"]]))
        elif kind == "sleep":
            out.append((_SLEEP, float(op["seconds"])))
        else:
            raise NotImplementedError(
                f"the fast engine does not model {kind!r} ops; use engine='model'"
            )
    return out, names, sizes


def simulate_fast(
    trace: Mapping[str, Any] | tuple,
    config: CacheConfig,
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    stat_cache_max_age: int | None = None,
    buffer_size: int = TF_DEFAULT_BUFFER,
    epochs: int = 1,
    keep_requests: bool = False,
) -> tuple[PointResult, list[dict[str, Any]]]:
    """Replay ``trace`` under ``config``; returns (totals, requests if ``keep_requests``).

    ``trace`` may be a trace dict or the result of :func:`compile_ops` (reused across configs).
    """
    if isinstance(trace, tuple):
        ops, names, sizes = trace
        age = TF_STAT_CACHE_MAX_AGE if stat_cache_max_age is None else stat_cache_max_age
    else:
        ops, names, sizes = compile_ops(trace)
        age = stat_cache_max_age
        if age is None:
            age = trace.get("stat_cache_max_age", TF_STAT_CACHE_MAX_AGE)
            age = TF_STAT_CACHE_MAX_AGE if age is None else int(age)

    fixed = timing.per_request_overhead_s + timing.first_byte_latency_s
    bw = float(timing.bandwidth_bytes_per_s)
    bs, max_bytes, stale = config.block_size, config.max_bytes, config.max_staleness
    cache_on = config.cache_on
    reqs: list[dict[str, Any]] = []
    t = 0.0
    n_media = n_meta = 0
    nbytes = 0
    handle_obj: dict[int, int] = {}
    # cache-on state
    stat_at: dict[int, int] = {}
    lru: OrderedDict[tuple[int, int], int] = OrderedDict()  # key -> block length; end = recent
    lra: OrderedDict[tuple[int, int], int] = OrderedDict()  # key -> fetch time; first = oldest
    file_blocks: dict[int, set[int]] = {}
    cache_size = peak = 0
    # cache-off state: handle -> [buf_start, buf_len, past_eof]
    bufs: dict[int, list] = {}

    def media(obj: int, start: int, n: int) -> int:
        nonlocal t, n_media, nbytes
        size = sizes[obj]
        got = 0 if start >= size else min(n, size - start)
        n_media += 1
        nbytes += got
        t += fixed + got / bw
        if keep_requests:
            reqs.append({"kind": "media", "object": names[obj], "range": [start, start + n - 1]})
        return got

    def drop_key(key: tuple[int, int]) -> None:
        nonlocal cache_size
        cache_size -= lru.pop(key)
        lra.pop(key, None)
        blocks = file_blocks.get(key[0])
        if blocks is not None:
            blocks.discard(key[1])

    def remove_file(obj: int) -> None:
        for b in list(file_blocks.pop(obj, ())):
            drop_key((obj, b))

    for op in ops:
        code = op[0]
        if code == _READ:
            _, h, offset, n = op
            obj = handle_obj[h]
            if cache_on:
                now = int(t)
                at = stat_at.get(obj)
                if age <= 0 or at is None or now - at > age:
                    n_meta += 1
                    nbytes += METADATA_RESPONSE_BYTES
                    t += fixed + METADATA_RESPONSE_BYTES / bw
                    if keep_requests:
                        reqs.append({"kind": "metadata", "object": names[obj]})
                    if age > 0:
                        stat_at[obj] = int(t)
                if n == 0:
                    continue
                if n > max_bytes:
                    media(obj, offset, n)
                    continue
                if stale > 0:
                    now = int(t)
                    while lra:
                        key, ts = next(iter(lra.items()))
                        if now - ts <= stale:
                            break
                        remove_file(key[0])
                first = offset // bs
                last = (offset + n - 1) // bs
                for b in range(first, last + 1):
                    key = (obj, b)
                    length = lru.get(key)
                    pos = b * bs
                    if length is None:
                        # miss: one aligned full-block GET (inlined media() — the hot path)
                        size = sizes[obj]
                        length = 0 if pos >= size else min(bs, size - pos)
                        n_media += 1
                        nbytes += length
                        t += fixed + length / bw
                        if keep_requests:
                            reqs.append(
                                {
                                    "kind": "media",
                                    "object": names[obj],
                                    "range": [pos, pos + bs - 1],
                                }
                            )
                        lru[key] = length
                        lra[key] = int(t)
                        blocks = file_blocks.get(obj)
                        if blocks is None:
                            blocks = file_blocks[obj] = set()
                        blocks.add(b)
                        cache_size += length
                        while cache_size > max_bytes and lru:
                            old_key, old_len = lru.popitem(last=False)
                            cache_size -= old_len
                            lra.pop(old_key, None)
                            file_blocks[old_key[0]].discard(old_key[1])
                        if cache_size > peak:
                            peak = cache_size
                    else:
                        lru.move_to_end(key)
                    if offset >= pos + length or length < bs:
                        break
            else:
                buf = bufs[h]
                if n > buffer_size:
                    media(obj, offset, n)
                    continue
                start, blen, past_eof = buf
                copied = 0
                if start <= offset < start + blen:
                    copied = min(n, start + blen - offset)
                consumed_to_eof = offset + copied >= start + blen and past_eof
                if copied < n and not consumed_to_eof:
                    new_start = offset + copied
                    got = media(obj, new_start, buffer_size)
                    buf[0], buf[1], buf[2] = new_start, got, got < buffer_size
                    copied += min(n - copied, got)
                if copied < n:
                    buf[2] = False
        elif code == _OPEN:
            handle_obj[op[1]] = op[2]
            bufs[op[1]] = [0, 0, False]
        elif code == _CLOSE:
            bufs.pop(op[1], None)
        elif code == _STAT:
            obj = op[1]
            now = int(t)
            at = stat_at.get(obj)
            if age <= 0 or at is None or now - at > age:
                n_meta += 1
                nbytes += METADATA_RESPONSE_BYTES
                t += fixed + METADATA_RESPONSE_BYTES / bw
                if keep_requests:
                    reqs.append({"kind": "metadata", "object": names[obj]})
                if age > 0:
                    stat_at[obj] = int(t)
        elif code == _SLEEP:
            t += op[1]
    result = PointResult(
        config=config,
        requests=n_media + n_meta,
        media_requests=n_media,
        metadata_requests=n_meta,
        bytes_fetched=nbytes,
        predicted_s=t,
        epochs=epochs,
        peak_cache_bytes=peak,
    )
    return result, reqs


# --------------------------------------------------------------------------- model engine


def simulate_model(
    trace: Mapping[str, Any],
    config: CacheConfig,
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    stat_cache_max_age: int | None = None,
    buffer_size: int = TF_DEFAULT_BUFFER,
    epochs: int = 1,
    keep_requests: bool = False,
) -> tuple[PointResult, list[dict[str, Any]]]:
    """The same as :func:`simulate_fast`, computed by ``emulator.replay.simulation.simulate``.

    A cache-off ``config`` is given to the model as ``(buffer_size, 0, max_staleness)``: the
    model, like TF at start-up, uses the configured block size as the read-ahead buffer.

    The model's request list is priced with ``timing`` afterwards (its virtual clock does not
    advance with request time, so staleness/stat-age effects can differ from the fast engine
    when requests take long).
    """
    from emulator.replay.simulation import simulate  # C1's size-only model

    kw: dict[str, Any] = {}
    if stat_cache_max_age is not None:
        kw["stat_cache_max_age"] = stat_cache_max_age
    model_config = config if config.cache_on else CacheConfig(buffer_size, 0, config.max_staleness)
    sim = simulate(dict(trace), model_config.as_dict(), record_requests=True, **kw)
    requests = list(_requests_of(sim))
    cost = timing.cost(requests, trace["objects"])
    peak = int(getattr(sim, "peak_cache_bytes", 0) or 0)
    result = PointResult(
        config=config,
        requests=cost.requests,
        media_requests=cost.media_requests,
        metadata_requests=cost.metadata_requests,
        bytes_fetched=cost.bytes_fetched,
        predicted_s=cost.seconds,
        epochs=epochs,
        peak_cache_bytes=peak,
    )
    return result, (requests if keep_requests else [])


def _requests_of(sim: Any) -> list[dict[str, Any]]:
    reqs = sim.get("requests") if isinstance(sim, Mapping) else getattr(sim, "requests", None)
    if reqs is None:
        raise TypeError("emulator.replay.simulation.simulate returned no 'requests'")
    return [r if isinstance(r, Mapping) else r.as_trace_request() for r in reqs]


# --------------------------------------------------------------------------- grid + sweep


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


_W: dict[str, Any] = {}


def _init_worker(trace: Mapping[str, Any], kw: dict[str, Any]) -> None:
    _W["compiled"] = compile_ops(trace)
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
        _init_worker(trace, kw)
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
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(trace, kw)) as pool:
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
    _init_worker(trace, kw)
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


def best_under_budget(results: Iterable[PointResult], memory_budget: int) -> PointResult | None:
    """The fastest configuration whose max_bytes fits ``memory_budget`` (ties: fewer requests,
    then less memory, then smaller blocks)."""
    fitting = [r for r in results if r.config.max_bytes <= memory_budget]
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
