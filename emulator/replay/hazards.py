"""What a reader gets when objects change under TF's caches: stale and torn reads, and priced
requests on a virtual clock.

- :class:`PricedTransport` is the size-only transport of the sweeps with two additions:
  every request advances a :class:`~emulator.model.clock.VirtualClock` by its predicted time
  (``cost(kind, body_bytes)`` seconds, the timing model), so the stat-cache age and
  ``max_staleness`` act over a long run as they do in TF; and every media fetch is logged with
  the generation of the object it read and the bytes it carried, priced with the object's size
  *at the time of the request* (objects grow and shrink under ``write``/``overwrite`` ops).
- :class:`HazardCounter` classifies each ``read`` op's returned bytes by the generation they
  came from:

  * **stale read**: some returned byte belongs to a generation older than the object's newest
    generation at the time of the read (or the object is gone);
  * **torn read**: the returned bytes come from two or more generations (e.g. block 0 cached
    from the old checkpoint, blocks 1-2 fetched from the new one - TF returns no error);
  * **error**: the read failed with a status other than OUT_OF_RANGE (e.g. INTERNAL "File
    contents are inconsistent" when an object shrank under a fresh stat-cache entry);
  * **stale stat** (counted apart, not a read hazard): a ``stat`` op answered from the stat
    cache with an older generation (or for an object that is gone) - the size a program then
    reads by (``GFile.read()``, ``read_file_to_string``) is the old one, cache on or off.

Invariants: a block held by the block cache is the one its latest full-block fetch at that
position returned, so its generation is the generation logged for that fetch; a buffered
(cache-off) handle's buffer has the generation of the fetch that last filled it. Counting
never changes which requests the model sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.model.clock import VirtualClock
from emulator.model.gcs_model import BufferedRandomAccessFile, ReadResult
from emulator.model.transport import ObjectStat, SizeOnlyTransport

__all__ = ["METADATA_RESPONSE_BYTES", "Hazards", "HazardCounter", "PricedTransport"]

#: Body size of a metadata or list response (the same as ``benchmarks.sweep.timing``).
METADATA_RESPONSE_BYTES = 200

Cost = Callable[[str, int], float]  # (request kind, response body bytes) -> seconds


class PricedTransport(SizeOnlyTransport):
    """Size-only objects; requests advance ``clock`` by ``cost`` and media fetches are logged
    with their generation."""

    def __init__(
        self, *, clock: VirtualClock | None = None, cost: Cost | None = None, record: bool = False
    ) -> None:
        super().__init__(record=record)
        self.clock = clock
        self.cost = cost
        #: (bucket, name, start, n) -> generation of the latest fetch of exactly that range
        self.fetch_gen: dict[tuple[str, str, int, int], int] = {}
        #: generation and bytes of the latest media fetch (None before the first)
        self.last_fetch: tuple[int, int] | None = None
        self.fetches = 0
        self.media_bytes = 0

    def _tick(self, kind: str, nbytes: int) -> None:
        if self.clock is not None and self.cost is not None:
            self.clock.advance(self.cost(kind, nbytes))

    def generation(self, bucket: str, name: str) -> int | None:
        """The object's current generation, None if it does not exist."""
        entry = self._objects.get((bucket, name))
        return None if entry is None else entry[1]

    def read_range(self, bucket: str, name: str, start: int, n: int) -> Any:
        got = 0
        try:
            got = super().read_range(bucket, name, start, n)
            gen = self._objects[(bucket, name)][1]
            self.fetch_gen[(bucket, name, start, n)] = gen
            self.last_fetch = (gen, got)
            self.fetches += 1
            self.media_bytes += got
            return got
        finally:
            self._tick("media", got)

    def stat(self, bucket: str, name: str) -> ObjectStat:
        try:
            return super().stat(bucket, name)
        finally:
            self._tick("metadata", METADATA_RESPONSE_BYTES)

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]:
        before = self.counts["list"]
        try:
            return super().list_prefix(bucket, prefix, max_results)
        finally:
            for _ in range(self.counts["list"] - before):
                self._tick("list", METADATA_RESPONSE_BYTES)


@dataclass
class Hazards:
    """Counts over the read ops of one run (see the module docstring)."""

    stale_reads: int = 0
    torn_reads: int = 0
    stale_bytes: int = 0
    errors: int = 0
    stale_stats: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.stale_reads or self.torn_reads or self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stale_reads": self.stale_reads,
            "torn_reads": self.torn_reads,
            "stale_bytes": self.stale_bytes,
            "errors": self.errors,
            "errors_by_code": dict(self.errors_by_code),
            "stale_stats": self.stale_stats,
        }


class HazardCounter:
    """Wraps each read op of :func:`emulator.replay.simulation.run_trace` (``read(f, op)``)."""

    def __init__(self, transport: PricedTransport, fs: Any) -> None:
        self.transport = transport
        self.fs = fs
        self.hazards = Hazards()
        self._buffer_gen: dict[int, int | None] = {}  # id(buffered handle) -> generation
        self._codes: Counter[str] = Counter()

    def read(self, f: Any, offset: int, n: int) -> ReadResult:
        tr = self.transport
        fetches_before = tr.fetches
        if isinstance(f, BufferedRandomAccessFile):
            old_start, old_len = f._buffer_start, f._buffer_len
            old_gen = self._buffer_gen.get(id(f))
            result = f.read(offset, n)
            gens = self._buffered_gens(f, offset, n, result, old_start, old_len, old_gen)
            if tr.fetches > fetches_before and n <= f.buffer_size and tr.last_fetch:
                self._buffer_gen[id(f)] = tr.last_fetch[0]
        else:
            result = f.read(offset, n)
            gens = self._cached_gens(f, offset, n, result, fetches_before)
        self._count(f, result, gens)
        return result

    def stat(self, name: str, st: Any) -> None:
        """A successful ``stat`` op of ``name`` ("bucket/path") that returned ``st``."""
        if getattr(st, "is_directory", False):
            return
        bucket, _, obj = name.partition("/")
        current = self.transport.generation(bucket, obj)
        if current is None or st.generation < current:
            self.hazards.stale_stats += 1

    def forget(self, f: Any) -> None:
        self._buffer_gen.pop(id(f), None)

    # -- classification -------------------------------------------------------------------

    def _buffered_gens(
        self,
        f: Any,
        offset: int,
        n: int,
        result: ReadResult,
        old_start: int,
        old_len: int,
        old_gen: int | None,
    ) -> dict[int | None, int]:
        """generation -> bytes of the returned data, for a cache-off handle."""
        got = result.returned
        if got == 0:
            return {}
        tr = self.transport
        if n > f.buffer_size:
            return {tr.last_fetch[0] if tr.last_fetch else None: got}
        out: dict[int | None, int] = {}
        from_old = 0
        if old_start <= offset < old_start + old_len:
            from_old = min(got, old_start + old_len - offset)
            out[old_gen] = from_old
        rest = got - from_old
        if rest > 0:
            gen = tr.last_fetch[0] if tr.last_fetch else None
            out[gen] = out.get(gen, 0) + rest
        return out

    def _cached_gens(
        self, f: Any, offset: int, n: int, result: ReadResult, fetches_before: int
    ) -> dict[int | None, int]:
        """generation -> bytes of the returned data, for a block-cache handle."""
        got = result.returned
        if got == 0:
            return {}
        tr = self.transport
        cache = self.fs.block_cache
        bs = cache.block_size
        if n > cache.max_bytes or not cache.enabled:
            fresh = tr.last_fetch if tr.fetches > fetches_before else None
            return {fresh[0] if fresh else None: got}
        out: dict[int | None, int] = {}
        end = offset + got
        pos = offset - offset % bs
        while pos < end:
            lo, hi = max(pos, offset), min(pos + bs, end)
            gen = tr.fetch_gen.get((f.bucket, f.object, pos, bs))
            out[gen] = out.get(gen, 0) + (hi - lo)
            pos += bs
        return out

    def _count(self, f: Any, result: ReadResult, gens: dict[int | None, int]) -> None:
        hz = self.hazards
        code = result.code
        if code is not None and code != "OUT_OF_RANGE":
            hz.errors += 1
            self._codes[code] += 1
            hz.errors_by_code = dict(self._codes)
        if not gens:
            return
        current = self.transport.generation(f.bucket, f.object)
        known = {g: b for g, b in gens.items() if g is not None}
        stale = sum(b for g, b in known.items() if current is None or g < current)
        if stale:
            hz.stale_reads += 1
            hz.stale_bytes += stale
        if len(known) > 1:
            hz.torn_reads += 1
