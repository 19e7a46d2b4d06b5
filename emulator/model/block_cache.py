"""Model of TensorFlow's ``RamFileBlockCache`` (xla/tsl/platform/cloud/ram_file_block_cache.cc).

Semantics (TF 2.21; see docs/tf-read-path.md, "Block cache"):

- Enabled iff ``block_size > 0 and max_bytes > 0``. A read with ``n == 0`` returns at once; a
  read on a disabled cache, or with ``n > max_bytes``, passes straight to the fetcher as one
  unaligned ``(offset, n)`` fetch and caches nothing.
- Otherwise every block overlapping ``[offset, offset + n)`` is visited in ascending order; a
  missing block is fetched as a full ``block_size`` fetch at its aligned offset. A block shorter
  than ``block_size`` marks end-of-file and ends the read. ``offset`` at or past the end of the
  first block's data raises OUT_OF_RANGE with nothing returned.
- One LRU over all files, keyed ``(filename, block_offset)``. After each block is fetched or hit
  it moves to the most-recently-used end and blocks are evicted from the least-recently-used end
  while ``cache_size > max_bytes`` (strict ``>``). ``cache_size`` counts the block
  *capacities* TensorFlow accounts: a fetched block its real length, and - TF's own accounting
  quirk, kept on purpose - an errored block, or a block evicted while still being fetched,
  ``block_size`` when it is removed although nothing was added for it (TF's size_t arithmetic
  wraps modulo 2**64, and so does this model's counter; :meth:`held_bytes` is the real amount).
- Staleness (``max_staleness > 0`` seconds): a FINISHED block older than ``max_staleness``
  found by a lookup drops *all blocks of its file*; the background prune of TF (every second,
  dropping whole files while the least-recently-*added* block is stale) is modelled by a
  prune that runs at the start of each public call whenever the clock's second has changed -
  the same at request level, and deterministic under a :class:`~emulator.model.clock.VirtualClock`.
  With a :class:`~emulator.model.clock.RealClock` a daemon thread also prunes once a second, so stale
  memory is freed between calls (stopped by :meth:`close` or when the cache is collected).
- File signatures (GCS generations): a changed signature drops the file's blocks; the
  signature map survives :meth:`flush` and :meth:`remove_file`.
- Thread-safe. Concurrent readers of one missing block cause one fetch; the others wait. A
  failed fetch raises in the fetching reader and leaves the block in ERROR; a waiter (or the
  next reader) then fetches it again itself, as TF does.

Payloads are ``bytes`` (byte-moving model) or ``int`` byte counts (``size_only=True``: the
fetcher returns counts and ``read`` returns a count; see :mod:`emulator.model.payload`); a cache
only ever sees one kind.

Length: one class for TF's one file, with every invariant stated here in the header as
``ram_file_block_cache.h`` does; splitting the class would split its lock discipline.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields

from emulator.model.clock import Clock, RealClock
from emulator.model.errors import InternalError, OutOfRangeError
from emulator.model.payload import Payload, payload_concat, payload_len, payload_slice

__all__ = [
    "BlockCache",
    "CacheStats",
    "Fetcher",
    "Payload",
    "payload_concat",
    "payload_len",
    "payload_slice",
]

Fetcher = Callable[[str, int, int], Payload]

_MASK64 = (1 << 64) - 1

# Block states (RamFileBlockCache::FetchState).
_CREATED, _FETCHING, _FINISHED, _ERROR = 0, 1, 2, 3
_FETCH_WAIT_S = 60.0


@dataclass
class CacheStats:
    """Counters of one or more block caches (all monotonically increasing).

    - ``requests``: ``read`` calls; ``bypasses``: of those, pass-through reads (cache off or
      ``n > max_bytes``).
    - ``hits`` / ``misses``: block visits served without / with a fetch by this reader.
    - ``fetches``: fetcher calls (block fetches + pass-through fetches, failed ones included);
      ``fetch_errors``: of those, the ones that raised.
    - ``bytes_fetched``: bytes the fetcher returned; ``bytes_served``: bytes ``read`` returned
      (including the partial data of an OUT_OF_RANGE).
    - ``evictions``: blocks removed because ``cache_size > max_bytes``.
    - ``stale_drops``: blocks removed for staleness (lookup or prune).
    - ``invalidations``: blocks removed because a file signature changed or ``remove_file``.
    """

    requests: int = 0
    bypasses: int = 0
    hits: int = 0
    misses: int = 0
    fetches: int = 0
    fetch_errors: int = 0
    bytes_fetched: int = 0
    bytes_served: int = 0
    evictions: int = 0
    stale_drops: int = 0
    invalidations: int = 0

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _prune_loop(ref: weakref.ref[BlockCache], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        cache = ref()
        if cache is None:
            return
        with cache._mu:
            cache._prune_locked()
        del cache


class _Block:
    """One cached block. ``capacity`` mirrors TF's ``data.capacity()`` accounting."""

    __slots__ = ("data", "size", "state", "timestamp", "capacity", "evicted", "waiters")

    def __init__(self, now: int) -> None:
        self.data: Payload = b""
        self.size = 0
        self.state = _CREATED
        self.timestamp = now
        self.capacity = 0
        self.evicted = False
        self.waiters: threading.Condition | None = None


class BlockCache:
    """RamFileBlockCache model. See the module docstring for the invariants."""

    def __init__(
        self,
        block_size: int,
        max_bytes: int,
        max_staleness: int,
        fetcher: Fetcher,
        clock: Clock | None = None,
        *,
        size_only: bool = False,
    ) -> None:
        for name, value in (
            ("block_size", block_size),
            ("max_bytes", max_bytes),
            ("max_staleness", max_staleness),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not callable(fetcher):
            raise TypeError("fetcher must be callable (filename, offset, n) -> bytes | int")
        self.block_size = block_size
        self.max_bytes = max_bytes
        self.max_staleness = max_staleness
        self._fetcher = fetcher
        self._clock: Clock = clock if clock is not None else RealClock()
        self._mu = threading.Lock()
        # key -> block, in LRU order (first = least recently used).
        self._map: OrderedDict[tuple[str, int], _Block] = OrderedDict()
        # Least-recently-added order (first = oldest added/fetched); kept only with staleness.
        self._lra: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._files: dict[str, set[int]] = {}
        self._signatures: dict[str, int] = {}
        self._cache_size = 0
        self._last_prune = self._clock.now()
        self._size_only = size_only
        self.stats = CacheStats()
        self._stop_pruning: threading.Event | None = None
        if max_staleness > 0 and isinstance(self._clock, RealClock):
            # Like TF's "TF_prune_FBC" thread: frees stale files' memory between calls. Request-
            # level behaviour does not depend on it (every call prunes first anyway).
            self._stop_pruning = threading.Event()
            threading.Thread(
                target=_prune_loop,
                args=(weakref.ref(self), self._stop_pruning),
                name="model_prune_FBC",
                daemon=True,
            ).start()

    def close(self) -> None:
        """Stop the background prune thread, if any (also happens when the cache is collected)."""
        if self._stop_pruning is not None:
            self._stop_pruning.set()

    def __del__(self) -> None:
        stop = getattr(self, "_stop_pruning", None)
        if stop is not None:
            stop.set()

    # -- public API ---------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """TF's ``IsCacheEnabled()``: ``block_size > 0 and max_bytes > 0``."""
        return self.block_size > 0 and self.max_bytes > 0

    def read(self, filename: str, offset: int, n: int) -> Payload:
        """Read up to ``n`` bytes at ``offset`` (fewer only at end of file).

        Raises a :class:`~emulator.model.errors.GcsError` from the fetcher, OUT_OF_RANGE when
        ``offset`` is at/after the end of file (nothing returned), or INTERNAL when a short
        block is followed by a cached later block of the same file.
        """
        if offset < 0 or n < 0:
            raise ValueError(f"offset and n must be >= 0, got offset={offset} n={n}")
        stats = self.stats
        if self.max_staleness:
            self._maybe_prune()
        stats.requests += 1
        if n == 0:
            return 0 if self._size_only else b""
        if n > self.max_bytes or not self.enabled:
            stats.bypasses += 1
            stats.fetches += 1
            try:
                data = self._fetcher(filename, offset, n)
            except BaseException:
                stats.fetch_errors += 1
                raise
            got = payload_len(data)
            stats.bytes_fetched += got
            stats.bytes_served += got
            return data
        bs = self.block_size
        start = offset - offset % bs
        end = offset + n
        finish = end - end % bs
        if finish < end:
            finish += bs
        parts: list[Payload] = []
        total = 0
        size_only = self._size_only
        limit = self.max_staleness
        mu = self._mu
        blocks = self._map
        for pos in range(start, finish, bs):
            key = (filename, pos)
            # Fast path: a fresh fetched block - Lookup + UpdateLRU under one lock acquisition.
            with mu:
                block = blocks.get(key)
                hit = (
                    block is not None
                    and block.state == _FINISHED
                    and (not limit or self._clock.now() - block.timestamp <= limit)
                )
                if hit:
                    stats.hits += 1
                    blocks.move_to_end(key)
                    if block.size < bs and max(self._files[filename]) > pos:
                        raise InternalError("Block cache contents are inconsistent.")
                    if self._cache_size > self.max_bytes:
                        self._trim_locked()
            if not hit:
                block = self._lookup(key)
                if block.state == _FINISHED:
                    stats.hits += 1
                else:
                    self._maybe_fetch(key, block)
                self._update_lru(key, block)
            size = block.size
            if offset >= pos + size:
                stats.bytes_served += total
                raise OutOfRangeError(
                    f"EOF at offset {offset} in file {filename} at position {pos} "
                    f"with data size {size}",
                    partial=payload_concat(parts, size_only),
                )
            lo = offset - pos if offset > pos else 0
            hi = end - pos if pos + size > end else size
            if lo < hi:
                if not size_only:
                    parts.append(block.data[lo:hi])  # type: ignore[index]
                total += hi - lo
            if size < bs:
                break
        stats.bytes_served += total
        if self._size_only:
            return total
        return payload_concat(parts, False) if parts else b""

    def validate_and_update_file_signature(self, filename: str, signature: int) -> bool:
        """True if ``signature`` matches the recorded one (or none was recorded, then record it).

        A different signature drops all blocks of ``filename``, records the new one, and returns
        False.
        """
        with self._mu:
            if self.max_staleness:
                self._prune_locked()
            old = self._signatures.get(filename)
            if old is None:
                self._signatures[filename] = signature
                return True
            if old == signature:
                return True
            self.stats.invalidations += self._remove_file_locked(filename)
            self._signatures[filename] = signature
            return False

    def remove_file(self, filename: str) -> None:
        """Drop every block of exactly ``filename`` (the signature stays recorded)."""
        with self._mu:
            self.stats.invalidations += self._remove_file_locked(filename)

    def flush(self) -> None:
        """Drop every block (signatures stay recorded); ``cache_size()`` becomes 0."""
        with self._mu:
            for block in self._map.values():
                block.evicted = True
            self._map.clear()
            self._lra.clear()
            self._files.clear()
            self._cache_size = 0

    def cache_size(self) -> int:
        """TF's ``CacheSize()``: accounted bytes (see the module docstring)."""
        with self._mu:
            if self.max_staleness:
                self._prune_locked()
            return self._cache_size

    def held_bytes(self) -> int:
        """Bytes of data actually held by fetched blocks (equals ``cache_size()`` unless a
        fetch failed and TF's accounting quirk applied)."""
        with self._mu:
            return sum(b.size for b in self._map.values() if b.state == _FINISHED)

    def cached_blocks(self) -> list[tuple[str, int, int]]:
        """``(filename, offset, length)`` of fetched blocks, least recently used first."""
        with self._mu:
            return [(k[0], k[1], b.size) for k, b in self._map.items() if b.state == _FINISHED]

    def signature(self, filename: str) -> int | None:
        with self._mu:
            return self._signatures.get(filename)

    def __repr__(self) -> str:
        return (
            f"BlockCache(block_size={self.block_size}, max_bytes={self.max_bytes}, "
            f"max_staleness={self.max_staleness}, blocks={len(self._map)})"
        )

    # -- internals ----------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        if self._clock.now() != self._last_prune:
            with self._mu:
                self._prune_locked()

    def _prune_locked(self) -> None:
        """TF's Prune(): drop whole files while the least-recently-added block is stale."""
        now = self._clock.now()
        if now == self._last_prune:
            return
        self._last_prune = now
        lra = self._lra
        limit = self.max_staleness
        while lra:
            key = next(iter(lra))
            if now - self._map[key].timestamp <= limit:
                break
            self.stats.stale_drops += self._remove_file_locked(key[0])

    def _lookup(self, key: tuple[str, int]) -> _Block:
        with self._mu:
            block = self._map.get(key)
            if block is not None:
                if (
                    block.state != _FINISHED
                    or not self.max_staleness
                    or self._clock.now() - block.timestamp <= self.max_staleness
                ):
                    return block
                self.stats.stale_drops += self._remove_file_locked(key[0])
            block = _Block(self._clock.now())
            self._map[key] = block
            if self.max_staleness:
                self._lra[key] = None
            positions = self._files.get(key[0])
            if positions is None:
                self._files[key[0]] = {key[1]}
            else:
                positions.add(key[1])
            return block

    def _maybe_fetch(self, key: tuple[str, int], block: _Block) -> None:
        mu = self._mu
        stats = self.stats
        while True:
            with mu:
                state = block.state
                if state == _FINISHED:
                    stats.hits += 1
                    return
                if state == _FETCHING:
                    if block.waiters is None:
                        block.waiters = threading.Condition(mu)
                    block.waiters.wait(_FETCH_WAIT_S)
                    if block.state == _FINISHED:
                        stats.hits += 1
                        return
                    continue
                block.state = _FETCHING
                # TF resizes the block's buffer to block_size before fetching.
                block.capacity = self.block_size
                stats.misses += 1
                stats.fetches += 1
            try:
                data = self._fetcher(key[0], key[1], self.block_size)
            except BaseException:
                with mu:
                    stats.fetch_errors += 1
                    block.state = _ERROR
                    if block.waiters is not None:
                        block.waiters.notify_all()
                raise
            size = payload_len(data)
            with mu:
                block.data = data
                block.size = size
                block.capacity = size
                block.state = _FINISHED
                stats.bytes_fetched += size
                if block.waiters is not None:
                    block.waiters.notify_all()
                if not block.evicted:
                    self._cache_size = (self._cache_size + size) & _MASK64
                    if self.max_staleness:
                        self._lra.move_to_end(key)
                    block.timestamp = self._clock.now()
            return

    def _update_lru(self, key: tuple[str, int], block: _Block) -> None:
        with self._mu:
            if block.evicted:
                return
            self._map.move_to_end(key)
            if block.size < self.block_size and max(self._files[key[0]]) > key[1]:
                raise InternalError("Block cache contents are inconsistent.")
            if self._cache_size > self.max_bytes:
                self._trim_locked()

    def _trim_locked(self) -> None:
        while self._map and self._cache_size > self.max_bytes:
            key = next(iter(self._map))
            self._remove_block_locked(key)
            self.stats.evictions += 1

    def _remove_block_locked(self, key: tuple[str, int]) -> None:
        block = self._map.pop(key)
        block.evicted = True
        if self.max_staleness:
            self._lra.pop(key, None)
        positions = self._files[key[0]]
        positions.discard(key[1])
        if not positions:
            del self._files[key[0]]
        self._cache_size = (self._cache_size - block.capacity) & _MASK64

    def _remove_file_locked(self, filename: str) -> int:
        positions = self._files.get(filename)
        if not positions:
            return 0
        count = 0
        for pos in sorted(positions):
            self._remove_block_locked((filename, pos))
            count += 1
        return count
