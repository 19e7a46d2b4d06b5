"""The pure-Python sweep engine (``engine="python"``, the reference of the compiled one): the
requests TF 2.21 would send for one configuration on one trace.

- :func:`simulate_fast`: a size-only replay specialised for sweeps — no bytes, ops
  pre-compiled to tuples, an ``OrderedDict`` LRU of blocks, a stat cache, the cache-off buffered
  reader, and a virtual clock advanced by the :class:`~benchmarks.sweep.timing.GcsTiming` cost of
  each request (so ``max_staleness`` and the stat cache age see realistic time). It supports the
  ops workloads produce (open/read/close/stat/sleep); traces with overwrite/delete/configure need
  the model engine (it raises ``NotImplementedError`` for them).
- the model engine (:mod:`benchmarks.sweep.engine_model`) is the project's model,
  ``emulator.replay.simulation.simulate``, the reference. Tests check both send the same requests.

Stages: :func:`compile_ops` (ops → tuples, reused across configs), then one :class:`_Replay` per
run, whose methods are the request paths: :meth:`_Replay.stat` (the stat cache),
:meth:`_Replay.read_cached` (cache on), :meth:`_Replay.read_buffered` (cache off).

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

from benchmarks.sweep.grid import PointResult
from benchmarks.sweep.timing import DEFAULT_TIMING, METADATA_RESPONSE_BYTES, GcsTiming
from emulator.model.cache_config import CacheConfig
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE, TF_STAT_CACHE_MAX_AGE

__all__ = ["compile_ops", "fast_engine_covers", "simulate_fast"]


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


def _inputs(
    trace: Mapping[str, Any] | tuple, stat_cache_max_age: int | None
) -> tuple[list[tuple], list[str], list[int], int]:
    """(ops, names, sizes, stat cache age) from a trace dict or a :func:`compile_ops` result."""
    if isinstance(trace, tuple):
        ops, names, sizes = trace
        age = TF_STAT_CACHE_MAX_AGE if stat_cache_max_age is None else stat_cache_max_age
        return ops, names, sizes, age
    ops, names, sizes = compile_ops(trace)
    age = stat_cache_max_age
    if age is None:
        age = trace.get("stat_cache_max_age", TF_STAT_CACHE_MAX_AGE)
        age = TF_STAT_CACHE_MAX_AGE if age is None else int(age)
    return ops, names, sizes, age


class _Replay:
    """The state of one run: virtual clock, counters, stat cache, block LRU, cache-off buffers.

    Invariant: ``cache_size`` is the sum of the lengths in ``lru``; ``lra`` holds the same keys
    in fetch order; ``file_blocks[obj]`` is the set of ``obj``'s cached block indices.
    """

    def __init__(
        self,
        names: list[str],
        sizes: list[int],
        config: CacheConfig,
        timing: GcsTiming,
        age: int,
        buffer_size: int,
        keep_requests: bool,
    ) -> None:
        self.names, self.sizes, self.age = names, sizes, age
        self.fixed = timing.per_request_overhead_s + timing.first_byte_latency_s
        self.bw = float(timing.bandwidth_bytes_per_s)
        self.bs, self.max_bytes = config.block_size, config.max_bytes
        self.stale = config.max_staleness
        self.buffer_size = buffer_size
        self.keep = keep_requests
        self.reqs: list[dict[str, Any]] = []
        self.t = 0.0
        self.n_media = self.n_meta = self.nbytes = 0
        self.handle_obj: dict[int, int] = {}
        # cache-on state
        self.stat_at: dict[int, int] = {}
        self.lru: OrderedDict[tuple[int, int], int] = OrderedDict()  # key -> length; end = recent
        self.lra: OrderedDict[tuple[int, int], int] = OrderedDict()  # key -> fetch time; oldest 1st
        self.file_blocks: dict[int, set[int]] = {}
        self.cache_size = self.peak = 0
        # cache-off state: handle -> [buf_start, buf_len, past_eof]
        self.bufs: dict[int, list] = {}

    def media(self, obj: int, start: int, n: int) -> int:
        size = self.sizes[obj]
        got = 0 if start >= size else min(n, size - start)
        self.n_media += 1
        self.nbytes += got
        self.t += self.fixed + got / self.bw
        if self.keep:
            self.reqs.append(
                {"kind": "media", "object": self.names[obj], "range": [start, start + n - 1]}
            )
        return got

    def stat(self, obj: int) -> None:
        """A stat through the stat cache: a metadata request unless a fresh entry exists."""
        age = self.age
        now = int(self.t)
        at = self.stat_at.get(obj)
        if age <= 0 or at is None or now - at > age:
            self.n_meta += 1
            self.nbytes += METADATA_RESPONSE_BYTES
            self.t += self.fixed + METADATA_RESPONSE_BYTES / self.bw
            if self.keep:
                self.reqs.append({"kind": "metadata", "object": self.names[obj]})
            if age > 0:
                self.stat_at[obj] = int(self.t)

    def drop_key(self, key: tuple[int, int]) -> None:
        self.cache_size -= self.lru.pop(key)
        self.lra.pop(key, None)
        blocks = self.file_blocks.get(key[0])
        if blocks is not None:
            blocks.discard(key[1])

    def remove_file(self, obj: int) -> None:
        for b in list(self.file_blocks.pop(obj, ())):
            self.drop_key((obj, b))

    def drop_stale(self) -> None:
        """Files whose oldest block is older than ``max_staleness`` are dropped whole."""
        now = int(self.t)
        lra = self.lra
        while lra:
            key, ts = next(iter(lra.items()))
            if now - ts <= self.stale:
                break
            self.remove_file(key[0])

    def read_cached(self, obj: int, offset: int, n: int) -> None:
        """A read with the cache on: stat, then the overlapped blocks, in ascending order."""
        self.stat(obj)
        if n == 0:
            return
        if n > self.max_bytes:
            self.media(obj, offset, n)
            return
        if self.stale > 0:
            self.drop_stale()
        bs, lru, lra, file_blocks = self.bs, self.lru, self.lra, self.file_blocks
        sizes, max_bytes, fixed, bw = self.sizes, self.max_bytes, self.fixed, self.bw
        # the hot path: counters in locals, written back once after the loop
        t, n_media, nbytes, cache_size, peak = (
            self.t,
            self.n_media,
            self.nbytes,
            self.cache_size,
            self.peak,
        )
        for b in range(offset // bs, (offset + n - 1) // bs + 1):
            key = (obj, b)
            length = lru.get(key)
            pos = b * bs
            if length is None:
                # miss: one aligned full-block GET
                size = sizes[obj]
                length = 0 if pos >= size else min(bs, size - pos)
                n_media += 1
                nbytes += length
                t += fixed + length / bw
                if self.keep:
                    self.reqs.append(
                        {"kind": "media", "object": self.names[obj], "range": [pos, pos + bs - 1]}
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
        self.t, self.n_media, self.nbytes, self.cache_size, self.peak = (
            t,
            n_media,
            nbytes,
            cache_size,
            peak,
        )

    def read_buffered(self, h: int, obj: int, offset: int, n: int) -> None:
        """A read with the cache off: served from the handle's read-ahead buffer, refilled with
        one ``buffer_size`` GET from the first byte not copied."""
        buf = self.bufs[h]
        if n > self.buffer_size:
            self.media(obj, offset, n)
            return
        start, blen, past_eof = buf
        copied = 0
        if start <= offset < start + blen:
            copied = min(n, start + blen - offset)
        consumed_to_eof = offset + copied >= start + blen and past_eof
        if copied < n and not consumed_to_eof:
            new_start = offset + copied
            got = self.media(obj, new_start, self.buffer_size)
            buf[0], buf[1], buf[2] = new_start, got, got < self.buffer_size
            copied += min(n - copied, got)
        if copied < n:
            buf[2] = False

    def run(self, ops: list[tuple], cache_on: bool) -> None:
        for op in ops:
            code = op[0]
            if code == _READ:
                _, h, offset, n = op
                if cache_on:
                    self.read_cached(self.handle_obj[h], offset, n)
                else:
                    self.read_buffered(h, self.handle_obj[h], offset, n)
            elif code == _OPEN:
                self.handle_obj[op[1]] = op[2]
                self.bufs[op[1]] = [0, 0, False]
            elif code == _CLOSE:
                self.bufs.pop(op[1], None)
            elif code == _STAT:
                self.stat(op[1])
            elif code == _SLEEP:
                self.t += op[1]


def simulate_fast(
    trace: Mapping[str, Any] | tuple,
    config: CacheConfig,
    *,
    timing: GcsTiming = DEFAULT_TIMING,
    stat_cache_max_age: int | None = None,
    buffer_size: int = TF_DEFAULT_BLOCK_SIZE,
    epochs: int = 1,
    keep_requests: bool = False,
) -> tuple[PointResult, list[dict[str, Any]]]:
    """Replay ``trace`` under ``config``; returns (totals, requests if ``keep_requests``).

    ``trace`` may be a trace dict or the result of :func:`compile_ops` (reused across configs).
    """
    ops, names, sizes, age = _inputs(trace, stat_cache_max_age)
    run = _Replay(names, sizes, config, timing, age, buffer_size, keep_requests)
    run.run(ops, config.cache_on)
    result = PointResult(
        config=config,
        requests=run.n_media + run.n_meta,
        media_requests=run.n_media,
        metadata_requests=run.n_meta,
        bytes_fetched=run.nbytes,
        predicted_s=run.t,
        epochs=epochs,
        peak_cache_bytes=run.peak,
    )
    return result, run.reqs
