"""TF's GCS filesystem (TF 2.21, ``xla/tsl/platform/cloud/gcs_file_system.cc`` wrapped in
``retrying_file_system.h``) as far as requests are concerned, on top of
:class:`~emulator.model.block_cache.BlockCache`.

This module is the filesystem: configuration, ``open`` / ``stat`` / ``get_matching_paths`` /
cache flushing, and the one fetch path every data read goes through. The pieces it is built
from live next to it: :mod:`emulator.model.stat_cache` (TF's expiring LRU stat cache),
:mod:`emulator.model.random_access` (the cached and buffered readers ``open`` returns) and
:mod:`emulator.model.gcs_paths` (path parsing and glob matching). Everything those modules
define is importable from here too. The TF behaviours are described, with links to TF's
sources, in docs/tf-read-path.md.

Semantics:

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
- :meth:`flush_caches` = ``FlushCaches``: block cache, stat cache and matching-paths cache
  emptied.

Length: a little over 400 lines; ``GcsFilesystemModel`` mirrors the read side of TF's one
``GcsFileSystem`` class (its caches, stat, glob and fetch path), which shares one lock and one
set of caches; the caches and readers themselves are in their own modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from emulator.model.block_cache import BlockCache, CacheStats, Payload, payload_len
from emulator.model.cache_config import CacheConfig
from emulator.model.clock import Clock, RealClock, VirtualClock
from emulator.model.errors import (
    RETRIABLE_CODES,
    AbortedError,
    FailedPreconditionError,
    GcsError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)
from emulator.model.gcs_paths import glob_regex, parse_gcs_path
from emulator.model.random_access import (
    BufferedRandomAccessFile,
    CachedRandomAccessFile,
    RandomAccessFileModel,
    ReadResult,
    SharedLock,
)
from emulator.model.stat_cache import FileStat, StatCache
from emulator.model.transport import ObjectStat, Transport
from gcs_hook.tf_defaults import TF_STAT_CACHE_MAX_AGE, TF_STAT_CACHE_MAX_ENTRIES

__all__ = [
    "BufferedRandomAccessFile",
    "CachedRandomAccessFile",
    "FileStat",
    "GcsFilesystemModel",
    "RandomAccessFileModel",
    "ReadResult",
    "RetryConfig",
    "StatCache",
    "parse_gcs_path",
    "virtual_model",
]

T = TypeVar("T")


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
        stat_cache_max_age: int | None = TF_STAT_CACHE_MAX_AGE,
        stat_cache_max_entries: int = TF_STAT_CACHE_MAX_ENTRIES,
        matching_paths_cache_max_age: int = 0,
        matching_paths_cache_max_entries: int = 1024,
        buffer_size: int | None = None,
        clock: Clock | None = None,
        retry: RetryConfig | None = None,
        sleep: Callable[[float], None] | None = None,
        seed: int | None = 0,
    ) -> None:
        block_size, max_bytes, max_staleness = CacheConfig.of(params).as_tuple()
        if stat_cache_max_age is None:
            stat_cache_max_age = TF_STAT_CACHE_MAX_AGE
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
        self._cache_lock = SharedLock()
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
        CacheConfig(block_size, max_bytes, max_staleness)  # validates
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
        values = CacheConfig.of(params).as_tuple()
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
            regex = glob_regex(pattern)
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
        """TF's FlushCaches: block cache flushed, stat cache and matching-paths cache cleared
        (TF 2.21 also clears its bucket-location cache, which only writes use; not modelled)."""
        self._cache_lock.acquire_shared()
        try:
            self.block_cache.flush()
            self.stat_cache.clear()
            self.matching_paths_cache.clear()
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


def virtual_model(transport: Transport, params: Any = None, **kw: Any) -> GcsFilesystemModel:
    """A model on a fresh :class:`VirtualClock` (``kw`` as for :class:`GcsFilesystemModel`)."""
    kw.setdefault("clock", VirtualClock())
    return GcsFilesystemModel(transport, params, **kw)
