"""The engines that price one configuration on one trace: the requests TF 2.21 would send.

- ``"fast"`` (:func:`simulate_fast`): a size-only replay specialised for sweeps — no bytes, ops
  pre-compiled to tuples, an ``OrderedDict`` LRU of blocks, a stat cache, the cache-off buffered
  reader, and a virtual clock advanced by the :class:`~benchmarks.sweep.timing.GcsTiming` cost of
  each request (so ``max_staleness`` and the stat cache age see realistic time). It supports the
  ops workloads produce (open/read/close/stat/sleep); traces with overwrite/delete/configure need
  the model engine (it raises ``NotImplementedError`` for them).
- ``"model"`` (:func:`simulate_model`): the project's model, ``emulator.replay.simulation.simulate``,
  the reference. Tests check both engines send the same requests.

Semantics (docs/tf-read-path.md): with the cache on (block_size > 0 and max_bytes > 0) each read
stats through the stat cache, then fetches every overlapped block as a full aligned range GET in
ascending order (a short block ends the read; an offset at/after the end of a block's data is
EOF), a read larger than max_bytes bypasses the cache with one exact GET; LRU eviction while
``cache_size > max_bytes``, after each block is fetched or hit, except when that block is short
and a later block of the same file is cached (TF's INTERNAL "Block cache contents are
inconsistent": the read fails there, before the trim); a file whose oldest block is older than ``max_staleness`` seconds is
dropped whole. With the cache off, each handle has a read-ahead buffer of ``buffer_size`` bytes —
TF's filesystem block size from its construction (64 MiB by default), not the swept block_size,
because ``ResetFileBlockCache`` does not change it.

Invariant: results are deterministic for a given (trace, config, timing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from benchmarks.sweep.grid import TF_DEFAULT_BUFFER, TF_STAT_CACHE_MAX_AGE, CacheConfig, PointResult
from benchmarks.sweep.timing import DEFAULT_TIMING, METADATA_RESPONSE_BYTES, GcsTiming

__all__ = ["compile_ops", "fast_engine_covers", "simulate_fast", "simulate_model"]


def fast_engine_covers(trace: Any) -> bool:
    """Whether the fast engines compute ``trace`` exactly (else use the model engine)."""
    if not isinstance(trace, Mapping):  # a ColumnarTrace holds only ops the engines cover
        return True
    objects = trace.get("objects") or {}
    for op in trace.get("ops") or []:
        kind = op.get("op")
        if kind in ("open", "stat"):
            if op.get("object") not in objects:
                return False
        elif kind not in ("read", "close", "sleep"):
            return False
    return True


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
                    else:
                        lru.move_to_end(key)
                    if length < bs and max(file_blocks[obj]) > b:
                        # TF's UpdateLRU: a short block with a later block of the same file
                        # cached is INTERNAL "Block cache contents are inconsistent": the read
                        # fails before Trim
                        break
                    while cache_size > max_bytes and lru:
                        old_key, old_len = lru.popitem(last=False)
                        cache_size -= old_len
                        lra.pop(old_key, None)
                        file_blocks[old_key[0]].discard(old_key[1])
                    if cache_size > peak:
                        peak = cache_size
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
    """The same as :func:`simulate_fast`, computed by ``emulator.replay.simulation.simulate``;
    covers every trace (write/overwrite/delete/configure, growing and shrinking objects).

    A cache-off ``config`` is given to the model as ``(buffer_size, 0, max_staleness)``: the
    model, like TF at start-up, uses the configured block size as the read-ahead buffer.

    Each request advances the model's virtual clock by its ``timing`` cost (as in the fast
    engine), so stat-cache expiry and ``max_staleness`` see the time requests take; bytes are
    priced with the object's size when each request is sent. The result also carries the
    hazard counts (stale and torn reads, errors; :mod:`emulator.replay.hazards`).
    """
    from emulator.replay.simulation import simulate  # C1's size-only model

    kw: dict[str, Any] = {}
    if stat_cache_max_age is not None:
        kw["stat_cache_max_age"] = stat_cache_max_age
    model_config = config if config.cache_on else CacheConfig(buffer_size, 0, config.max_staleness)

    def cost(kind: str, nbytes: int) -> float:
        return timing.request_seconds(nbytes)

    sim = simulate(
        dict(trace),
        model_config.as_dict(),
        record_requests=keep_requests,
        cost=cost,
        count_hazards=True,
        **kw,
    )
    counts = sim.requests_by_kind
    meta = counts.get("metadata", 0)
    media = counts.get("media", 0)
    other = sum(counts.values()) - meta - media
    media_bytes = int(sim.extra["media_bytes"])
    hz = sim.extra["hazards"]
    result = PointResult(
        config=config,
        requests=media + meta + other,
        media_requests=media,
        metadata_requests=meta,
        bytes_fetched=media_bytes + METADATA_RESPONSE_BYTES * (meta + other),
        predicted_s=sim.virtual_seconds,
        epochs=epochs,
        peak_cache_bytes=int(getattr(sim, "peak_cache_bytes", 0) or 0),
        stale_reads=hz.stale_reads,
        torn_reads=hz.torn_reads,
        errors=hz.errors,
        stale_stats=hz.stale_stats,
        media_bytes=media_bytes,
        stale_files=hz.stale_files,
        torn_files=hz.torn_files,
        reads_not_seen=hz.reads_not_seen,
        tails_behind=hz.tails_behind,
        tail_lag=hz.tail_lag,
    )
    requests = list(_requests_of(sim)) if keep_requests else []
    return result, requests


def _requests_of(sim: Any) -> list[dict[str, Any]]:
    reqs = sim.get("requests") if isinstance(sim, Mapping) else getattr(sim, "requests", None)
    if reqs is None:
        raise TypeError("emulator.replay.simulation.simulate returned no 'requests'")
    return [r if isinstance(r, Mapping) else r.as_trace_request() for r in reqs]
