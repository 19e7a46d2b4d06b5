"""The exact columnar engine: :func:`simulate_fast`'s semantics over a columnar trace, compiled.

Same requests, bytes, clock and peak as :func:`benchmarks.sweep.engine_python.simulate_fast` (and so
as the model engine, ``emulator.replay.simulation``), proven by property tests
(``tests/tune/test_sweep_compiled.py``). Why it is fast:

- **Columns, not objects.** The trace is :class:`emulator.replay.columnar.ColumnarTrace`
  (25 bytes per op, memory-mappable); the engine's own state is dense arrays: per cached block
  (``base[obj] + block``, sized by the largest read end of each object; 28 bytes) its length,
  LRU links, fetch-order (staleness) links and fetch time; per object the stat time; per handle
  the cache-off buffer. No per-read allocation.
- **Per-block work.** With the cache on, once a read that touches one block ``b`` of object
  ``o`` sends no request, every following read that also touches only ``o``'s block ``b``
  (no other op in between) changes nothing: the clock did not move, so the stat check and the
  staleness check give the same answer, ``b`` is still cached (checked) and already the most
  recently used block, and the cache is within ``max_bytes`` (trimmed by the first read).
  The engine skips such runs in a tight scan instead of redoing the per-read work. The skip
  needs no precondition on the config: if the stat age is 0 every read sends a metadata
  request and no run is ever skipped.
- **Compiled.** The loop is one ``numba.njit`` function (``cache=True``: compiled once per
  machine, ~2 s, then loaded from ``__pycache__``). Numba was chosen over Cython or a C
  extension because it needs no compiler at install time, is a wheel on PyPI, and keeps the
  engine readable Python that mirrors :func:`~benchmarks.sweep.engine_python.simulate_fast` line for
  line; over vectorized numpy because an LRU is inherently sequential.

Length: a little over 400 lines because the kernel is one compiled loop on purpose (splitting
it into jitted helpers costs calls in the hot path and hides the line-for-line correspondence
with the reference).

Scope (the fast engines' convention): open/read/close/stat/sleep of named objects; anything else
raises ``NotImplementedError`` (:func:`fast_engine_covers` says up front).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from benchmarks.sweep.engine_python import fast_engine_covers
from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.timing import DEFAULT_TIMING, METADATA_RESPONSE_BYTES, GcsTiming
from emulator.model.cache_config import CacheConfig
from emulator.replay.columnar import ColumnarTrace, from_dict
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE, TF_STAT_CACHE_MAX_AGE

__all__ = ["EngineRun", "fast_engine_covers", "simulate_columnar", "to_columnar"]

_OPEN, _READ, _CLOSE, _STAT, _SLEEP = range(5)
# indices of the int64 totals array
_T_MEDIA, _T_META, _T_BYTES, _T_PEAK, _T_NLOG, _T_STEPS = range(6)


def to_columnar(trace: Mapping[str, Any] | ColumnarTrace) -> ColumnarTrace:
    """``trace`` as columns (``NotImplementedError`` outside the fast engines' scope)."""
    return trace if isinstance(trace, ColumnarTrace) else from_dict(trace)


@njit(cache=True, nogil=True)
def _kernel(  # noqa: C901 - one loop on purpose: it is the compiled hot path
    kind, obj, handle, offset, n, seconds, sizes, n_handles,
    bs, max_bytes, stale, cache_on, age, fixed, bw, buffer_size, meta_bytes,
    base, nblk, obj_reqs, obj_bytes, log, totals, open_gaps,
):  # fmt: skip
    """Replay the columns; returns the clock. ``totals`` gets media, metadata, bytes, peak, log
    length and loop steps; ``obj_reqs``/``obj_bytes`` per-object counts; ``log`` (if it has
    rows) one row per request: kind (0 metadata, 1 media), object, first byte, last byte."""
    t = 0.0
    n_media = 0
    n_meta = 0
    nbytes = 0
    nlog = 0
    log_cap = log.shape[0]
    steps = 0
    n_obj = sizes.shape[0]
    stat_at = np.full(n_obj, -1, np.int64)
    # cache-on state, one slot per (object, block); sentinel slot nblk heads both lists
    # 28 bytes per slot: int32 links (slots < 2**31) and fetch times (whole seconds)
    blen = np.full(nblk + 1, -1, np.int64)  # -1: not cached
    lru_prev = np.empty(nblk + 1, np.int32)
    lru_next = np.empty(nblk + 1, np.int32)
    fifo_prev = np.empty(nblk + 1, np.int32)
    fifo_next = np.empty(nblk + 1, np.int32)
    fetched_at = np.zeros(nblk + 1, np.int32)
    head = nblk
    lru_prev[head] = head
    lru_next[head] = head
    fifo_prev[head] = head
    fifo_next[head] = head
    cache_size = 0
    peak = 0
    # cache-off state per handle
    buf_start = np.zeros(n_handles, np.int64)
    buf_len = np.zeros(n_handles, np.int64)
    buf_eof = np.zeros(n_handles, np.bool_)
    n_ops = kind.shape[0]
    # sampled traces: time of the opens left out (``n`` of an open), at the mean open period
    period_start = 0.0
    periods = 0
    period_total = 0.0
    i = 0
    while i < n_ops:
        steps += 1
        k = kind[i]
        if k == _READ:
            o = obj[i]
            off = offset[i]
            ln = n[i]
            size = sizes[o]
            if cache_on:
                before = n_media + n_meta
                now = np.int64(t)
                at = stat_at[o]
                if age <= 0 or at < 0 or now - at > age:
                    n_meta += 1
                    nbytes += meta_bytes
                    obj_reqs[o] += 1
                    obj_bytes[o] += meta_bytes
                    t += fixed + meta_bytes / bw
                    if nlog < log_cap:
                        log[nlog, 0] = 0
                        log[nlog, 1] = o
                        log[nlog, 2] = -1
                        log[nlog, 3] = -1
                    nlog += 1
                    if age > 0:
                        stat_at[o] = np.int64(t)
                if ln == 0:
                    i += 1
                    continue
                if ln > max_bytes:
                    got = 0 if off >= size else min(ln, size - off)
                    n_media += 1
                    nbytes += got
                    obj_reqs[o] += 1
                    obj_bytes[o] += got
                    t += fixed + got / bw
                    if nlog < log_cap:
                        log[nlog, 0] = 1
                        log[nlog, 1] = o
                        log[nlog, 2] = off
                        log[nlog, 3] = off + ln - 1
                    nlog += 1
                    i += 1
                    continue
                if stale > 0:
                    now = np.int64(t)
                    while fifo_next[head] != head:
                        s0 = fifo_next[head]
                        if now - fetched_at[s0] <= stale:
                            break
                        fo = np.searchsorted(base, s0, side="right") - 1  # s0's object
                        for s in range(base[fo], base[fo + 1]):
                            if blen[s] >= 0:
                                cache_size -= blen[s]
                                blen[s] = -1
                                lru_next[lru_prev[s]] = lru_next[s]
                                lru_prev[lru_next[s]] = lru_prev[s]
                                fifo_next[fifo_prev[s]] = fifo_next[s]
                                fifo_prev[fifo_next[s]] = fifo_prev[s]
                first = off // bs
                last = (off + ln - 1) // bs
                for b in range(first, last + 1):
                    s = base[o] + b
                    length = blen[s]
                    pos = b * bs
                    if length < 0:
                        length = 0 if pos >= size else min(bs, size - pos)
                        n_media += 1
                        nbytes += length
                        obj_reqs[o] += 1
                        obj_bytes[o] += length
                        t += fixed + length / bw
                        if nlog < log_cap:
                            log[nlog, 0] = 1
                            log[nlog, 1] = o
                            log[nlog, 2] = pos
                            log[nlog, 3] = pos + bs - 1
                        nlog += 1
                        blen[s] = length
                        # append at the MRU end of the LRU and at the end of the fetch order
                        lru_prev[s] = lru_prev[head]
                        lru_next[s] = head
                        lru_next[lru_prev[head]] = s
                        lru_prev[head] = s
                        fifo_prev[s] = fifo_prev[head]
                        fifo_next[s] = head
                        fifo_next[fifo_prev[head]] = s
                        fifo_prev[head] = s
                        fetched_at[s] = np.int64(t)
                        cache_size += length
                    else:
                        # hit: move to the MRU end
                        if lru_prev[head] != s:
                            lru_next[lru_prev[s]] = lru_next[s]
                            lru_prev[lru_next[s]] = lru_prev[s]
                            lru_prev[s] = lru_prev[head]
                            lru_next[s] = head
                            lru_next[lru_prev[head]] = s
                            lru_prev[head] = s
                    if length < bs:
                        # TF's UpdateLRU: a short block with a later block of the same file
                        # cached fails the read (INTERNAL "inconsistent") before the trim
                        later = False
                        for s2 in range(s + 1, base[o + 1]):
                            if blen[s2] >= 0:
                                later = True
                                break
                        if later:
                            break
                    while cache_size > max_bytes and lru_next[head] != head:
                        v = lru_next[head]
                        cache_size -= blen[v]
                        blen[v] = -1
                        lru_next[head] = lru_next[v]
                        lru_prev[lru_next[v]] = head
                        fifo_next[fifo_prev[v]] = fifo_next[v]
                        fifo_prev[fifo_next[v]] = fifo_prev[v]
                    if cache_size > peak:
                        peak = cache_size
                    if off >= pos + length or length < bs:
                        break
                i += 1
                if first == last and n_media + n_meta == before and blen[base[o] + first] >= 0:
                    # run collapse: the following single-block reads of the same block are no-ops
                    while i < n_ops and kind[i] == _READ and obj[i] == o:
                        ln2 = n[i]
                        if ln2 <= 0 or ln2 > max_bytes:
                            break
                        if offset[i] // bs != first or (offset[i] + ln2 - 1) // bs != first:
                            break
                        i += 1
                continue
            # cache off: the handle's read-ahead buffer
            h = handle[i]
            i += 1
            if ln > buffer_size:
                got = 0 if off >= size else min(ln, size - off)
                n_media += 1
                nbytes += got
                obj_reqs[o] += 1
                obj_bytes[o] += got
                t += fixed + got / bw
                if nlog < log_cap:
                    log[nlog, 0] = 1
                    log[nlog, 1] = o
                    log[nlog, 2] = off
                    log[nlog, 3] = off + ln - 1
                nlog += 1
                continue
            start = buf_start[h]
            blen_h = buf_len[h]
            copied = 0
            if start <= off < start + blen_h:
                copied = min(ln, start + blen_h - off)
            consumed_to_eof = off + copied >= start + blen_h and buf_eof[h]
            if copied < ln and not consumed_to_eof:
                new_start = off + copied
                got = 0 if new_start >= size else min(buffer_size, size - new_start)
                n_media += 1
                nbytes += got
                obj_reqs[o] += 1
                obj_bytes[o] += got
                t += fixed + got / bw
                if nlog < log_cap:
                    log[nlog, 0] = 1
                    log[nlog, 1] = o
                    log[nlog, 2] = new_start
                    log[nlog, 3] = new_start + buffer_size - 1
                nlog += 1
                buf_start[h] = new_start
                buf_len[h] = got
                buf_eof[h] = got < buffer_size
                copied += min(ln - copied, got)
            if copied < ln:
                buf_eof[h] = False
            continue
        if k == _OPEN:
            if open_gaps:
                if periods > 0 or t > 0.0:
                    periods += 1
                    period_total += t - period_start
                if periods > 0 and n[i] > 0:
                    t += n[i] * (period_total / periods)
                period_start = t
            h = handle[i]
            buf_start[h] = 0
            buf_len[h] = 0
            buf_eof[h] = False
        elif k == _STAT:
            o = obj[i]
            now = np.int64(t)
            at = stat_at[o]
            if age <= 0 or at < 0 or now - at > age:
                n_meta += 1
                nbytes += meta_bytes
                obj_reqs[o] += 1
                obj_bytes[o] += meta_bytes
                t += fixed + meta_bytes / bw
                if nlog < log_cap:
                    log[nlog, 0] = 0
                    log[nlog, 1] = o
                    log[nlog, 2] = -1
                    log[nlog, 3] = -1
                nlog += 1
                if age > 0:
                    stat_at[o] = np.int64(t)
        elif k == _SLEEP:
            t += seconds[offset[i]]
        i += 1
    totals[_T_MEDIA] = n_media
    totals[_T_META] = n_meta
    totals[_T_BYTES] = nbytes
    totals[_T_PEAK] = peak
    totals[_T_NLOG] = nlog
    totals[_T_STEPS] = steps
    return t


class EngineRun:
    """One run's totals plus per-object requests and bytes, metadata included (for sampling's
    error estimate)."""

    __slots__ = ("result", "obj_reqs", "obj_bytes", "steps", "requests")

    def __init__(self, result, obj_reqs, obj_bytes, steps, requests) -> None:
        self.result: PointResult = result
        self.obj_reqs: np.ndarray = obj_reqs
        self.obj_bytes: np.ndarray = obj_bytes
        self.steps: int = steps
        self.requests: list[dict[str, Any]] = requests


def _block_layout(ct: ColumnarTrace, bs: int) -> tuple[np.ndarray, int]:
    """Per object the first block slot (``base``, length objects + 1) and the slot count;
    memoized on the trace object (its columns are never changed in place)."""
    memo = ct.__dict__.setdefault("_layouts", {})
    hit = memo.get(bs)
    if hit is not None:
        return hit
    ends = ct.__dict__.get("_max_read_end")
    if ends is None:
        ends = ct.__dict__["_max_read_end"] = ct.max_read_end()
    nb = np.where(ends > 0, (ends - 1) // bs + 1, 0)
    base = np.zeros(len(nb) + 1, np.int64)
    np.cumsum(nb, out=base[1:])
    memo[bs] = (base, int(base[-1]))
    return memo[bs]


def simulate_columnar(
    trace: Mapping[str, Any] | ColumnarTrace,
    config: CacheConfig,
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    stat_cache_max_age: int | None = None,
    buffer_size: int = TF_DEFAULT_BLOCK_SIZE,
    epochs: int = 1,
    keep_requests: bool = False,
    open_gaps: bool = False,
) -> EngineRun:
    """Replay ``trace`` under ``config`` in the compiled engine.

    ``open_gaps`` (sampled traces, :mod:`benchmarks.sweep.sampling`): the ``n`` of an open op
    counts the opens that sampling left out before it; the clock advances by that many times
    the mean time between opens so far, so that stat-cache and staleness expiry see the time
    the left-out files would have taken.
    """
    ct = to_columnar(trace)
    age = stat_cache_max_age
    if age is None:
        age = ct.stat_cache_max_age
    age = TF_STAT_CACHE_MAX_AGE if age is None else int(age)
    cache_on = config.cache_on
    bs = config.block_size if cache_on else 1
    if cache_on:
        base, nblk = _block_layout(ct, bs)
    else:
        base, nblk = np.zeros(len(ct.names) + 1, np.int64), 0
    n_obj = len(ct.names)
    obj_reqs = np.zeros(n_obj, np.int64)
    obj_bytes = np.zeros(n_obj, np.int64)
    log = np.zeros((_log_capacity(ct, bs, cache_on) if keep_requests else 0, 4), np.int64)
    totals = np.zeros(6, np.int64)
    fixed = timing.per_request_overhead_s + timing.first_byte_latency_s
    bw = float(timing.bandwidth_bytes_per_s)
    t = _kernel(
        ct.kind, ct.obj, ct.handle, ct.offset, ct.n, ct.seconds, ct.sizes,
        max(1, ct.n_handles), bs, config.max_bytes, config.max_staleness, cache_on, age,
        fixed, bw, buffer_size, METADATA_RESPONSE_BYTES, base, nblk, obj_reqs, obj_bytes,
        log, totals, open_gaps,
    )  # fmt: skip
    n_media, n_meta, nbytes, peak, nlog, steps = (int(x) for x in totals)
    requests: list[dict[str, Any]] = []
    if keep_requests:
        if nlog > log.shape[0]:
            raise AssertionError("request log capacity exceeded")
        for kind, o, a, b in log[:nlog].tolist():
            if kind == 0:
                requests.append({"kind": "metadata", "object": ct.names[o]})
            else:
                requests.append({"kind": "media", "object": ct.names[o], "range": [a, b]})
    result = PointResult(
        config=config,
        requests=n_media + n_meta,
        media_requests=n_media,
        metadata_requests=n_meta,
        bytes_fetched=nbytes,
        predicted_s=float(t),
        epochs=epochs,
        peak_cache_bytes=peak,
    )
    return EngineRun(result, obj_reqs, obj_bytes, steps, requests)


def _log_capacity(ct: ColumnarTrace, bs: int, cache_on: bool) -> int:
    """An upper bound on the requests of one run (a metadata request per read or stat, plus
    every block a read spans)."""
    reads = ct.kind == 1
    spans = 1
    if cache_on and reads.any():
        n = ct.n[reads]
        off = ct.offset[reads]
        spans_arr = np.where(n > 0, (off + n - 1) // bs - off // bs + 1, 0)
        spans = int(spans_arr.sum())
    else:
        spans = int(reads.sum())
    return int(reads.sum() + (ct.kind == 3).sum() + spans + 1)
