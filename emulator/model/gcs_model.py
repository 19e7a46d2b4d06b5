"""Model of the request-shaping parts of TensorFlow's GCS filesystem (TF 2.21,
xla/tsl/platform/cloud/gcs_file_system.cc), on top of :class:`~emulator.model.block_cache.BlockCache`.

Semantics (see /work/shared/docs/tf-gcs-semantics.md §2-§3, tf-gcs-notes.md "Observed"):

- Opening a file sends nothing. Whether a handle reads through the block cache or through a
  per-handle read-ahead buffer is decided at open time from ``cache_enabled``.
- Cached read = stat through the stat cache (a metadata request on a miss; failed stats are
  not cached) → file-signature (generation) check → block-cache read; fewer than ``n`` bytes
  → OUT_OF_RANGE carrying the partial data. The stat happens even for ``n == 0``.
- Buffered read (cache off): buffer of the filesystem's ORIGINAL block size (not changed by
  :meth:`GcsFilesystemModel.reset_block_cache`), refilled from the requested offset
  (unaligned), no stat; ``n > buffer`` reads go straight to GCS.
- Every data fetch is one ranged GET; a short answer while the stat cache holds a fresh entry
  saying the object is longer → INTERNAL "File contents are inconsistent"; 416 → 0 bytes; an
  error whose body (``GcsError.body_bytes``) is larger than the fetch's ``n`` →
  FAILED_PRECONDITION (TF's curl buffer overflows before the status is looked at).
- Each ``read`` is retried as a whole on UNAVAILABLE / DEADLINE_EXCEEDED / UNKNOWN up to
  ``max_retries`` times, then ABORTED; sleeping goes through an injectable ``sleep``.
- :meth:`reset_block_cache` = ``ResetFileBlockCache``: a new empty cache (signatures too),
  the stat cache kept; already-open cached handles use the new cache on their next read.
- :meth:`stat` of a missing object = metadata GET + a one-result list request, then NOT_FOUND.
"""

from __future__ import annotations

import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from emulator.model.block_cache import (
    BlockCache,
    CacheStats,
    Payload,
    payload_len,
    payload_slice,
)
from emulator.model.clock import Clock, RealClock, VirtualClock
from emulator.model.errors import (
    RETRIABLE_CODES,
    AbortedError,
    FailedPreconditionError,
    GcsError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
)
from emulator.model.transport import ObjectStat, Transport

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FileStat",
    "GcsFilesystemModel",
    "RandomAccessFileModel",
    "ReadResult",
    "RetryConfig",
    "StatCache",
    "cache_params",
    "parse_gcs_path",
]

MiB = 1024 * 1024
#: TF 2.21 defaults (non-libtpu build): 64 MiB blocks, cache off, no staleness.
DEFAULT_BLOCK_SIZE = 64 * MiB
DEFAULT_STAT_CACHE_MAX_AGE = 5
DEFAULT_STAT_CACHE_MAX_ENTRIES = 1024


def cache_params(params: Any) -> tuple[int, int, int]:
    """``(block_size, max_bytes, max_staleness)`` from ``None`` (TF 2.21 defaults), a mapping,
    or any object with those attributes (e.g. ``gcs_hook.BlockCacheParams``).

    ValueError for a missing/negative/non-integer value.
    """
    if params is None:
        return (DEFAULT_BLOCK_SIZE, 0, 0)
    values = []
    for name in ("block_size", "max_bytes", "max_staleness"):
        if isinstance(params, dict):
            if name not in params:
                raise ValueError(f"cache config lacks {name!r}: {params!r}")
            value = params[name]
        elif hasattr(params, name):
            value = getattr(params, name)
        else:
            raise ValueError(f"cache config {params!r} has no attribute {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"cache config {name} must be an integer >= 0, got {value!r}")
        values.append(value)
    return (values[0], values[1], values[2])


def parse_gcs_path(path: str) -> tuple[str, str, str]:
    """``(filename, bucket, object)`` for ``gs://bucket/object`` or ``bucket/object``.

    ``filename`` is the ``gs://`` form TF keys its caches with. INVALID_ARGUMENT (like TF's
    ParseGcsPath) for a wrong scheme, an empty/"." bucket or an empty object name.
    """
    if not isinstance(path, str):
        raise InvalidArgumentError(f"GCS path must be a string, got {type(path).__name__}")
    if "://" in path:
        scheme, rest = path.split("://", 1)
        if scheme != "gs":
            raise InvalidArgumentError(f"GCS path doesn't start with 'gs://': {path}")
    else:
        rest = path
    bucket, _, obj = rest.partition("/")
    if not bucket or bucket == ".":
        raise InvalidArgumentError(f"GCS path doesn't contain a bucket name: {path}")
    obj = obj[1:] if obj.startswith("/") else obj
    if not obj:
        raise InvalidArgumentError(f"GCS path doesn't contain an object name: {path}")
    return (f"gs://{bucket}/{obj}", bucket, obj)


@dataclass(frozen=True)
class FileStat:
    """Result of :meth:`GcsFilesystemModel.stat` (TF's FileStatistics + generation)."""

    length: int
    generation: int
    is_directory: bool = False


@dataclass(frozen=True)
class RetryConfig:
    """TF's RetryConfig for GCS (defaults: 1 s initial delay, 32 s cap, 10 retries)."""

    init_delay_us: int = 1_000_000
    max_delay_us: int = 32_000_000
    max_retries: int = 10

    def __post_init__(self) -> None:
        for name in ("init_delay_us", "max_delay_us", "max_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"RetryConfig.{name} must be an integer >= 0, got {value!r}")


@dataclass(frozen=True)
class ReadResult:
    """One ``read``: the data handed back (bytes, or a count in size-only mode) and the error
    (``None`` if OK). Partial data that comes with an OUT_OF_RANGE is in ``data``."""

    data: Payload
    error: GcsError | None = None

    @property
    def returned(self) -> int:
        return payload_len(self.data)

    @property
    def code(self) -> str | None:
        return None if self.error is None else self.error.code

    def unwrap(self) -> Payload:
        """The data if OK, else raise the error."""
        if self.error is not None:
            raise self.error
        return self.data


T = TypeVar("T")


class StatCache(Generic[T]):
    """Model of TF's ExpiringLRUCache: entries fresh while ``now - inserted <= max_age``;
    ``max_age == 0`` caches nothing; beyond ``max_entries`` (0 = unbounded) the LRU entry goes.
    Only successful computes are stored; concurrent misses are not coalesced."""

    def __init__(self, max_age: int, max_entries: int, clock: Clock) -> None:
        if max_age < 0 or max_entries < 0:
            raise ValueError("stat cache max_age and max_entries must be >= 0")
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[int, T]] = OrderedDict()  # last = most recent
        self._lock = threading.Lock()

    def _lookup_locked(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock.now() - entry[0] > self.max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def lookup(self, key: str) -> T | None:
        if self.max_age == 0:
            return None
        with self._lock:
            return self._lookup_locked(key)

    def insert(self, key: str, value: T) -> None:
        if self.max_age == 0:
            return
        with self._lock:
            is_new = key not in self._entries
            self._entries[key] = (self._clock.now(), value)
            self._entries.move_to_end(key)
            if is_new and self.max_entries and len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def lookup_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        if self.max_age == 0:
            return compute()
        with self._lock:
            value = self._lookup_locked(key)
        if value is not None:
            return value
        value = compute()
        self.insert(key, value)
        return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class _SharedLock:
    """Readers-writer lock (TF's ``block_cache_lock_``: reads shared, reset exclusive).
    Writers are preferred: once one waits, new readers wait too."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_shared(self) -> None:
        with self._mutex:  # fast path: plain lock, no Condition machinery
            if not self._writer and not self._writers_waiting:
                self._readers += 1
                return
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_shared(self) -> None:
        with self._mutex:
            self._readers -= 1
            if self._readers == 0 and self._writers_waiting:
                self._cond.notify_all()

    def acquire_exclusive(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_exclusive(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class RandomAccessFileModel:
    """A TF RandomAccessFile on ``gs://``: ``read(offset, n) -> ReadResult``, retried like
    TF's RetryingRandomAccessFile. Thread-safe."""

    kind = "abstract"

    def __init__(self, fs: GcsFilesystemModel, filename: str, bucket: str, obj: str) -> None:
        self._fs = fs
        self.name = filename
        self.bucket = bucket
        self.object = obj

    def read(self, offset: int, n: int) -> ReadResult:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        fs = self._fs
        retry = fs.retry
        attempt = 0
        while True:
            result = self._read_once(offset, n)
            err = result.error
            if err is None or err.code not in RETRIABLE_CODES:
                return result
            if attempt >= retry.max_retries:
                return ReadResult(result.data, fs._retries_exhausted(err))
            fs._retry_sleep(attempt)
            attempt += 1

    def _read_once(self, offset: int, n: int) -> ReadResult:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release (TF's destructor sends nothing)."""

    def __enter__(self) -> RandomAccessFileModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CachedRandomAccessFile(RandomAccessFileModel):
    """TF's GcsRandomAccessFile (cache enabled at open)."""

    kind = "cached"

    def _read_once(self, offset: int, n: int) -> ReadResult:
        fs = self._fs
        empty = fs._empty
        fs._cache_lock.acquire_shared()
        try:
            try:
                stat = fs._stat_object(self.name, self.bucket, self.object)
                cache = fs.block_cache
                cache.validate_and_update_file_signature(self.name, stat.generation)
                data = cache.read(self.name, offset, n)
            except GcsError as e:
                return ReadResult(empty, e)
            got = payload_len(data)
            if got < n:
                return ReadResult(
                    data,
                    OutOfRangeError(
                        f"EOF reached, {got} bytes were read out of {n} bytes requested."
                    ),
                )
            return ReadResult(data)
        finally:
            fs._cache_lock.release_shared()


class BufferedRandomAccessFile(RandomAccessFileModel):
    """TF's BufferedGcsRandomAccessFile (cache disabled at open)."""

    kind = "buffered"

    def __init__(
        self, fs: GcsFilesystemModel, filename: str, bucket: str, obj: str, buffer_size: int
    ) -> None:
        super().__init__(fs, filename, bucket, obj)
        self.buffer_size = buffer_size
        self._lock = threading.Lock()
        self._buffer: Payload = fs._empty
        self._buffer_len = 0
        self._buffer_start = 0
        self._past_eof = False

    def _load(self, offset: int, n: int) -> tuple[Payload, GcsError | None]:
        """TF's read_fn for the buffered file: one fetch, short → OUT_OF_RANGE."""
        try:
            data = self._fs._load_buffer(self.name, self.bucket, self.object, offset, n)
        except GcsError as e:
            return self._fs._empty, e
        got = payload_len(data)
        if got < n:
            return data, OutOfRangeError(
                f"EOF reached, {got} bytes were read out of {n} bytes requested."
            )
        return data, None

    def _read_once(self, offset: int, n: int) -> ReadResult:
        fs = self._fs
        if n > self.buffer_size:
            data, err = self._load(offset, n)
            return ReadResult(data, err)
        with self._lock:
            buffer_end = self._buffer_start + self._buffer_len
            parts: list[Payload] = []
            copied = 0
            if self._buffer_start <= offset < buffer_end:
                copied = min(n, buffer_end - offset)
                lo = offset - self._buffer_start
                parts.append(payload_slice(self._buffer, lo, lo + copied))
            consumed_to_eof = offset + copied >= buffer_end and self._past_eof
            if copied < n and not consumed_to_eof:
                self._buffer_start = offset + copied
                data, err = self._load(self._buffer_start, self.buffer_size)
                self._past_eof = err is not None and err.code == "OUT_OF_RANGE"
                if err is not None and not self._past_eof:
                    self._buffer = fs._empty
                    self._buffer_len = 0
                    return ReadResult(fs._join(parts), err)
                self._buffer = data
                self._buffer_len = payload_len(data)
                take = min(n - copied, self._buffer_len)
                parts.append(payload_slice(data, 0, take))
                copied += take
            if copied < n:
                self._past_eof = False
                return ReadResult(
                    fs._join(parts),
                    OutOfRangeError(f"EOF reached. Requested to read {n} bytes from {offset}."),
                )
            return ReadResult(fs._join(parts))


class GcsFilesystemModel:
    """The GCS filesystem TF 2.21 registers for ``gs://``, as far as requests are concerned.

    ``params``: ``None`` (TF defaults: 64 MiB blocks, cache off), a mapping, or any object with
    ``block_size`` / ``max_bytes`` / ``max_staleness`` (bytes, bytes, seconds).
    """

    def __init__(
        self,
        transport: Transport,
        params: Any = None,
        *,
        stat_cache_max_age: int | None = DEFAULT_STAT_CACHE_MAX_AGE,
        stat_cache_max_entries: int = DEFAULT_STAT_CACHE_MAX_ENTRIES,
        matching_paths_cache_max_age: int = 0,
        matching_paths_cache_max_entries: int = 1024,
        buffer_size: int | None = None,
        clock: Clock | None = None,
        retry: RetryConfig | None = None,
        sleep: Callable[[float], None] | None = None,
        seed: int | None = 0,
    ) -> None:
        block_size, max_bytes, max_staleness = cache_params(params)
        if stat_cache_max_age is None:
            stat_cache_max_age = DEFAULT_STAT_CACHE_MAX_AGE
        if (
            isinstance(stat_cache_max_age, bool)
            or not isinstance(stat_cache_max_age, int)
            or (stat_cache_max_age < 0)
        ):
            raise ValueError(
                f"stat_cache_max_age must be an integer >= 0, got {stat_cache_max_age!r}"
            )
        self.transport = transport
        self.size_only = bool(getattr(transport, "size_only", False))
        self._empty: Payload = 0 if self.size_only else b""
        self.clock: Clock = clock if clock is not None else RealClock()
        self.retry = retry if retry is not None else RetryConfig()
        self._sleep = sleep if sleep is not None else self.clock.sleep
        self._rng = random.Random(seed)
        #: The buffered reader's buffer size: the block size the filesystem was built with
        #: (``buffer_size`` models a TF process built with one block size, e.g. from
        #: GCS_READAHEAD_BUFFER_SIZE_BYTES, whose cache was then reset to ``params``).
        if buffer_size is not None and (
            isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0
        ):
            raise ValueError(f"buffer_size must be an integer >= 0, got {buffer_size!r}")
        self.buffer_size = block_size if buffer_size is None else buffer_size
        self.stat_cache: StatCache[FileStat] = StatCache(
            stat_cache_max_age, stat_cache_max_entries, self.clock
        )
        self.matching_paths_cache: StatCache[list[str]] = StatCache(
            matching_paths_cache_max_age, matching_paths_cache_max_entries, self.clock
        )
        self._cache_lock = _SharedLock()
        self._retired_stats = CacheStats()
        self.block_cache = self._make_cache(block_size, max_bytes, max_staleness)

    # -- configuration ----------------------------------------------------------------------

    @property
    def block_size(self) -> int:
        return self.block_cache.block_size

    @property
    def max_bytes(self) -> int:
        return self.block_cache.max_bytes

    @property
    def max_staleness(self) -> int:
        return self.block_cache.max_staleness

    @property
    def cache_enabled(self) -> bool:
        return self.block_cache.enabled

    def _make_cache(self, block_size: int, max_bytes: int, max_staleness: int) -> BlockCache:
        return BlockCache(
            block_size,
            max_bytes,
            max_staleness,
            self._fetch_block,
            self.clock,
            size_only=self.size_only,
        )

    def reset_block_cache(self, block_size: int, max_bytes: int, max_staleness: int) -> None:
        """TF's ResetFileBlockCache: a brand-new empty cache (signatures too); stat cache kept;
        the buffered reader's buffer size unchanged."""
        cache_params(
            {"block_size": block_size, "max_bytes": max_bytes, "max_staleness": max_staleness}
        )
        self._cache_lock.acquire_exclusive()
        try:
            self._retired_stats = self._retired_stats + self.block_cache.stats
            self.block_cache.close()
            self.block_cache = self._make_cache(block_size, max_bytes, max_staleness)
        finally:
            self._cache_lock.release_exclusive()

    def configure_block_cache(self, params: Any) -> bool:
        """What the hook's configure op does: skip if all three values equal the current ones
        (cache contents kept; returns False), else :meth:`reset_block_cache` (returns True)."""
        values = cache_params(params)
        if values == (self.block_size, self.max_bytes, self.max_staleness):
            return False
        self.reset_block_cache(*values)
        return True

    def cache_stats(self) -> CacheStats:
        """Counters summed over every block cache this filesystem has had."""
        return self._retired_stats + self.block_cache.stats

    # -- file API ---------------------------------------------------------------------------

    def open(self, path: str) -> RandomAccessFileModel:
        """NewRandomAccessFile: parses the path (INVALID_ARGUMENT if bad), sends nothing."""
        filename, bucket, obj = parse_gcs_path(path)
        if self.cache_enabled:
            return CachedRandomAccessFile(self, filename, bucket, obj)
        return BufferedRandomAccessFile(self, filename, bucket, obj, self.buffer_size)

    def stat(self, path: str) -> FileStat:
        """TF's Stat for an object: stat cache, else metadata GET; if NOT_FOUND, a one-result
        listing under ``object/`` (a "folder"), else NOT_FOUND. Like every RetryingFileSystem
        call, the whole Stat is retried on a retriable code (see :meth:`_call_with_retries`)."""
        return self._call_with_retries(lambda: self._stat_once(path))

    def _call_with_retries(self, call: Callable[[], T]) -> T:
        """TF's CallWithRetries: ``call()`` again after UNAVAILABLE / DEADLINE_EXCEEDED / UNKNOWN,
        at most ``retry.max_retries`` times, sleeping as TF does; then ABORTED."""
        attempt = 0
        while True:
            try:
                return call()
            except GcsError as err:
                if err.code not in RETRIABLE_CODES:
                    raise
                if attempt >= self.retry.max_retries:
                    raise self._retries_exhausted(err) from None
            self._retry_sleep(attempt)
            attempt += 1

    def _retries_exhausted(self, err: GcsError) -> AbortedError:
        """TF's ABORTED after the last retry, so that outer layers do not retry again."""
        return AbortedError(
            f"All {self.retry.max_retries} retry attempts failed. The last failure: {err.message}"
        )

    def _stat_once(self, path: str) -> FileStat:
        filename, bucket, obj = parse_gcs_path(path)
        try:
            return self._stat_object(filename, bucket, obj)
        except NotFoundError:
            pass
        folder_key = filename if filename.endswith("/") else filename + "/"
        prefix = obj if obj.endswith("/") else obj + "/"

        def list_folder() -> FileStat:
            if self.transport.list_prefix(bucket, prefix, 1):
                return FileStat(0, 0, True)
            raise InvalidArgumentError("Not a directory!")

        try:
            return self.stat_cache.lookup_or_compute(folder_key, list_folder)
        except InvalidArgumentError:
            raise NotFoundError(f"The specified path {filename} was not found.") from None

    def get_matching_paths(self, pattern: str) -> list[str]:
        """TF's GetMatchingPaths: through the matching-paths cache (default max age 0 = off),
        else one recursive listing under the directory of the pattern's fixed prefix (the
        part before the first of ``*?[\\``), all sub-paths added, glob-matched with ``*``/``?``
        not crossing ``/``. Returns ``gs://`` paths, sorted."""
        if not isinstance(pattern, str) or not pattern.startswith("gs://"):
            raise InvalidArgumentError(f"GCS pattern must start with 'gs://': {pattern!r}")

        def compute() -> list[str]:
            cut = min(
                (i for i in (pattern.find(c) for c in "*?[\\") if i >= 0), default=len(pattern)
            )
            fixed = pattern[:cut]
            directory = fixed.rsplit("/", 1)[0] if "/" in fixed[5:] else ""
            if not directory or directory == "gs:/":
                raise InvalidArgumentError(f"A GCS pattern doesn't have a bucket name: {pattern}")
            rest = directory[5:]
            bucket, _, prefix = rest.partition("/")
            if not bucket:
                raise InvalidArgumentError(f"A GCS pattern doesn't have a bucket name: {pattern}")
            prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix
            names = self.transport.list_prefix(bucket, prefix, 0)
            relative = {n[len(prefix) :] for n in names if n != prefix}
            for name in list(relative):
                parts = name.split("/")
                for i in range(1, len(parts)):
                    relative.add("/".join(parts[:i]))
            relative.discard("")
            regex = _glob_regex(pattern)
            base = directory.rstrip("/")
            return sorted(p for p in (f"{base}/{r}" for r in relative) if regex.fullmatch(p))

        return list(
            self._call_with_retries(
                lambda: self.matching_paths_cache.lookup_or_compute(pattern, compute)
            )
        )

    def clear_file_caches(self, path: str) -> None:
        """TF's ClearFileCaches (after a write or delete through TF): the file's blocks and
        its stat entry go."""
        filename, _, _ = parse_gcs_path(path)
        self._cache_lock.acquire_shared()
        try:
            self.block_cache.remove_file(filename)
            self.stat_cache.delete(filename)
        finally:
            self._cache_lock.release_shared()

    def flush_caches(self) -> None:
        """TF's FlushCaches: block cache flushed, stat cache cleared."""
        self._cache_lock.acquire_shared()
        try:
            self.block_cache.flush()
            self.stat_cache.clear()
        finally:
            self._cache_lock.release_shared()

    # -- internals ----------------------------------------------------------------------------

    def _stat_object(self, filename: str, bucket: str, obj: str) -> FileStat:
        """Stat through the stat cache (LookupOrCompute; failures are not cached)."""
        cache = self.stat_cache
        stat = cache.lookup(filename)
        if stat is None:
            st: ObjectStat = self.transport.stat(bucket, obj)
            stat = FileStat(st.size, st.generation, filename.endswith("/"))
            cache.insert(filename, stat)
        return stat

    def _fetch_block(self, filename: str, offset: int, n: int) -> Payload:
        _, bucket, obj = parse_gcs_path(filename)
        return self._load_buffer(filename, bucket, obj, offset, n)

    def _load_buffer(self, filename: str, bucket: str, obj: str, offset: int, n: int) -> Payload:
        """TF's LoadBufferFromGCS: one ranged GET plus the short-read integrity check."""
        try:
            data = self.transport.read_range(bucket, obj, offset, n)
        except GcsError as e:
            # curl writes the body into the caller's n-byte buffer: an error body that does not
            # fit aborts the transfer, and TF reports that instead of the HTTP status.
            if e.body_bytes is not None and e.body_bytes > n:
                raise FailedPreconditionError(
                    "Error executing an HTTP request: libcurl code 23 meaning 'Failed writing "
                    "received data to disk/application', error details: Received "
                    f"{e.body_bytes} response bytes for a {n}-byte buffer"
                ) from e
            raise
        got = payload_len(data)
        if got < n:
            stat = self.stat_cache.lookup(filename)
            if stat is not None and offset + got < stat.length:
                raise InternalError(
                    f"File contents are inconsistent for file: {filename} @ {offset}."
                )
        return data

    def _join(self, parts: list[Payload]) -> Payload:
        if self.size_only:
            return sum(parts)  # type: ignore[arg-type]
        return b"".join(parts)  # type: ignore[arg-type]

    def _retry_sleep(self, attempt: int) -> None:
        retry = self.retry
        if retry.init_delay_us <= 0:
            return
        delay_us = min(retry.init_delay_us << attempt, retry.max_delay_us)
        delay_us += self._rng.randrange(1_000_000)
        self._sleep(delay_us / 1e6)

    def __repr__(self) -> str:
        return (
            f"GcsFilesystemModel(block_size={self.block_size}, max_bytes={self.max_bytes}, "
            f"max_staleness={self.max_staleness}, stat_cache_max_age={self.stat_cache.max_age}, "
            f"transport={type(self.transport).__name__})"
        )


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch(3) with FNM_PATHNAME: ``*``/``?``/``[...]`` never match ``/``; ``\\`` escapes."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def virtual_model(transport: Transport, params: Any = None, **kw: Any) -> GcsFilesystemModel:
    """A model on a fresh :class:`VirtualClock` (``kw`` as for :class:`GcsFilesystemModel`)."""
    kw.setdefault("clock", VirtualClock())
    return GcsFilesystemModel(transport, params, **kw)
