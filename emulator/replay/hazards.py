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

  * **stale read**: some returned byte differs from the object's current version at the time
    of the read (or the object is gone). A byte served from an old version that the current
    one kept as its prefix (an append, ``"append": true``) is not stale: it is the same byte;
  * **torn read**: the returned bytes are not the bytes of any one version (e.g. block 0
    cached from the old checkpoint, blocks 1-2 fetched from the new one - TF returns no
    error). Bytes of an old version that an append kept are the new version's bytes too;
  * **error**: the read failed with a status other than OUT_OF_RANGE (e.g. INTERNAL "File
    contents are inconsistent" when an object shrank under a fresh stat-cache entry);
  * **stale stat** (counted apart, not a read hazard): a ``stat`` op answered from the stat
    cache with an older generation (or for an object that is gone) - the size a program then
    reads by (``GFile.read()``, ``read_file_to_string``) is the old one, cache on or off.
  * **torn file / stale file**: one *pass* over a file - the reads of one handle between its
    open and its close, or between two stats of the object - returned bytes that are not all
    of one version / held a stale read. That is what a program sees: a checkpoint restored
    from old block 0 and new blocks 1-2 is torn though no single read spans two versions.
  * **reads not seen** / **tail lag**: a ``read`` op that got other or fewer bytes than the
    current version holds means the program, run with this configuration, may not have seen
    what the fixed trace assumes (``Hazards.assumes_data_not_seen``); a ``tail`` op follows
    what it gets, and ``tail_lag`` says how many versions behind the object's end it fell.

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
    #: passes over a file (see the module docstring) with a stale read / that are torn
    stale_files: int = 0
    torn_files: int = 0
    #: ``read`` ops (not ``tail``) that returned other bytes, or fewer, than the object's
    #: current version holds there: the program may not have seen what the trace assumes
    reads_not_seen: int = 0
    #: ``tail`` ops that ended before the object's current end, and the most versions of the
    #: object a follower was behind after one (how many reloads behind)
    tails_behind: int = 0
    tail_lag: int = 0

    @property
    def any(self) -> bool:
        return bool(self.stale_reads or self.torn_reads or self.errors)

    @property
    def assumes_data_not_seen(self) -> bool:
        """The fixed trace assumes data this configuration may not show the program: a read
        returned other bytes than the current ones, or fewer, or a stat answered an old size."""
        return bool(self.reads_not_seen or self.stale_stats)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stale_reads": self.stale_reads,
            "torn_reads": self.torn_reads,
            "stale_bytes": self.stale_bytes,
            "errors": self.errors,
            "errors_by_code": dict(self.errors_by_code),
            "stale_stats": self.stale_stats,
            "stale_files": self.stale_files,
            "torn_files": self.torn_files,
            "reads_not_seen": self.reads_not_seen,
            "tails_behind": self.tails_behind,
            "tail_lag": self.tail_lag,
            "assumes_data_not_seen": self.assumes_data_not_seen,
        }


Piece = tuple[int | None, int, int]  # (generation, start, end) of returned bytes


@dataclass
class _Pass:
    """One pass over a file: per generation the furthest byte returned, and any stale read."""

    key: tuple[str, str]
    furthest: dict[int, int] = field(default_factory=dict)
    stale: bool = False


class HazardCounter:
    """Wraps each read op of :func:`emulator.replay.simulation.run_trace` (``read(f, op)``)."""

    def __init__(self, transport: PricedTransport, fs: Any) -> None:
        self.transport = transport
        self.fs = fs
        self.hazards = Hazards()
        self._buffer_gen: dict[int, int | None] = {}  # id(buffered handle) -> generation
        self._codes: Counter[str] = Counter()
        #: (bucket, name, generation) -> the version's content description (a TraceObject)
        self._versions: dict[tuple[str, str, int], Any] = {}
        #: (bucket, name) -> generations written, in order
        self._history: dict[tuple[str, str], list[int]] = {}
        self._passes: dict[int, _Pass] = {}  # id(handle) -> its current pass

    # -- what the trace wrote -------------------------------------------------------------

    def wrote(self, name: str, obj: Any) -> None:
        """Version ``obj`` (an :class:`emulator.replay.objects.TraceObject`) of ``name`` is now
        the object's current version (call right after it was stored)."""
        bucket, _, path = name.partition("/")
        gen = self.transport.generation(bucket, path)
        if gen is not None:
            self._versions[(bucket, path, gen)] = obj
            self._history.setdefault((bucket, path), []).append(gen)

    def _prefix(self, key: tuple[str, str], gen: int, other: int) -> int:
        """Leading bytes generations ``gen`` and ``other`` of object ``key`` share."""
        from emulator.replay.objects import common_prefix

        a = self._versions.get((*key, gen))
        b = self._versions.get((*key, other))
        if a is None or b is None:
            return 0
        return common_prefix(a, b)

    def _consistent(self, key: tuple[str, str], furthest: dict[int, int]) -> bool:
        """Whether bytes returned from these generations (up to ``furthest[g]``) are all the
        bytes of one version."""
        if len(furthest) <= 1:
            return True
        return any(
            all(g == v or hi <= self._prefix(key, g, v) for g, hi in furthest.items())
            for v in furthest
        )

    # -- reads ----------------------------------------------------------------------------

    def read(self, f: Any, offset: int, n: int, *, follow: bool = False) -> ReadResult:
        """Perform and classify one read; ``follow``: a read of a ``tail`` op."""
        tr = self.transport
        fetches_before = tr.fetches
        if isinstance(f, BufferedRandomAccessFile):
            old_start, old_len = f._buffer_start, f._buffer_len
            old_gen = self._buffer_gen.get(id(f))
            result = f.read(offset, n)
            pieces = self._buffered_pieces(f, offset, n, result, old_start, old_len, old_gen)
            if tr.fetches > fetches_before and n <= f.buffer_size and tr.last_fetch:
                self._buffer_gen[id(f)] = tr.last_fetch[0]
        else:
            result = f.read(offset, n)
            pieces = self._cached_pieces(f, offset, n, result, fetches_before)
        self._count(f, offset, n, result, pieces, follow)
        return result

    def tail_done(self, f: Any, position: int) -> None:
        """A ``tail`` op on ``f`` ended at ``position``: how far behind the object it is."""
        key = (f.bucket, f.object)
        current = self.transport.generation(*key)
        obj = self._versions.get((*key, current)) if current is not None else None
        if obj is None or position >= obj.size:
            return
        self.hazards.tails_behind += 1
        behind = 0
        for gen in reversed(self._history.get(key, [])):
            version = self._versions.get((*key, gen))
            if version is None or version.size <= position:
                break
            behind += 1
        self.hazards.tail_lag = max(self.hazards.tail_lag, behind)

    def stat(self, name: str, st: Any) -> None:
        """A successful ``stat`` op of ``name`` ("bucket/path") that returned ``st``; it ends
        the current pass over the object of every open handle."""
        bucket, _, obj = name.partition("/")
        for hid, p in list(self._passes.items()):
            if p.key == (bucket, obj):
                self._end_pass(hid)
        if getattr(st, "is_directory", False):
            return
        current = self.transport.generation(bucket, obj)
        if current is None or st.generation < current:
            self.hazards.stale_stats += 1

    def forget(self, f: Any) -> None:
        """``f`` was closed: its pass ends."""
        self._buffer_gen.pop(id(f), None)
        self._end_pass(id(f))

    def finish(self) -> None:
        """The run ended: the passes of handles still open end."""
        for hid in list(self._passes):
            self._end_pass(hid)

    def _end_pass(self, hid: int) -> None:
        p = self._passes.pop(hid, None)
        if p is None:
            return
        if p.stale:
            self.hazards.stale_files += 1
        if not self._consistent(p.key, p.furthest):
            self.hazards.torn_files += 1

    # -- classification -------------------------------------------------------------------

    def _buffered_pieces(
        self,
        f: Any,
        offset: int,
        n: int,
        result: ReadResult,
        old_start: int,
        old_len: int,
        old_gen: int | None,
    ) -> list[Piece]:
        """Where the returned bytes of a cache-off handle came from."""
        got = result.returned
        if got == 0:
            return []
        tr = self.transport
        fresh = tr.last_fetch[0] if tr.last_fetch else None
        if n > f.buffer_size:
            return [(fresh, offset, offset + got)]
        out: list[Piece] = []
        from_old = 0
        if old_start <= offset < old_start + old_len:
            from_old = min(got, old_start + old_len - offset)
            out.append((old_gen, offset, offset + from_old))
        if got > from_old:
            out.append((fresh, offset + from_old, offset + got))
        return out

    def _cached_pieces(
        self, f: Any, offset: int, n: int, result: ReadResult, fetches_before: int
    ) -> list[Piece]:
        """Where the returned bytes of a block-cache handle came from."""
        got = result.returned
        if got == 0:
            return []
        tr = self.transport
        cache = self.fs.block_cache
        bs = cache.block_size
        if n > cache.max_bytes or not cache.enabled:
            fresh = tr.last_fetch if tr.fetches > fetches_before else None
            return [(fresh[0] if fresh else None, offset, offset + got)]
        out: list[Piece] = []
        end = offset + got
        pos = offset - offset % bs
        while pos < end:
            lo, hi = max(pos, offset), min(pos + bs, end)
            out.append((tr.fetch_gen.get((f.bucket, f.object, pos, bs)), lo, hi))
            pos += bs
        return out

    def _count(
        self, f: Any, offset: int, n: int, result: ReadResult, pieces: list[Piece], follow: bool
    ) -> None:
        hz = self.hazards
        code = result.code
        failed = code is not None and code != "OUT_OF_RANGE"
        if failed:
            hz.errors += 1
            self._codes[code] += 1
            hz.errors_by_code = dict(self._codes)
        key = (f.bucket, f.object)
        current = self.transport.generation(*key)
        stale = 0
        furthest: dict[int, int] = {}
        for gen, lo, hi in pieces:
            if gen is None:
                continue
            furthest[gen] = max(furthest.get(gen, 0), hi)
            if current is None:
                stale += hi - lo
            elif gen != current:
                same = self._prefix(key, gen, current)
                if hi > same:
                    stale += hi - max(lo, same)
        if stale:
            hz.stale_reads += 1
            hz.stale_bytes += stale
        if not self._consistent(key, furthest):
            hz.torn_reads += 1
        p = self._passes.get(id(f))
        if p is None or p.key != key:
            p = self._passes[id(f)] = _Pass(key)
        for gen, hi in furthest.items():
            p.furthest[gen] = max(p.furthest.get(gen, 0), hi)
        p.stale = p.stale or bool(stale)
        if follow or failed:
            return
        obj = self._versions.get((*key, current)) if current is not None else None
        expect = 0 if obj is None else max(0, min(n, obj.size - offset))
        if stale or result.returned != expect:
            hz.reads_not_seen += 1
