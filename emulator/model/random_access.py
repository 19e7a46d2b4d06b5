"""TF's random-access files on ``gs://``: the cached reader and the buffered reader.

``GcsFilesystemModel.open`` picks one at open time from whether the block cache is enabled
(TF 2.21, ``xla/tsl/platform/cloud/gcs_file_system.cc``: ``GcsRandomAccessFile`` with the block
cache, ``BufferedGcsRandomAccessFile`` without); see docs/tf-read-path.md, "Block cache" and
"Buffered reader".

Invariants:
- a read never raises for a GCS error: it returns a :class:`ReadResult` whose ``data`` is
  what TF hands back (possibly partial, with OUT_OF_RANGE) and whose ``error`` is the status;
- a whole ``read`` is retried on UNAVAILABLE / DEADLINE_EXCEEDED / UNKNOWN (TF's
  ``RetryingRandomAccessFile``), then ends in ABORTED;
- cached reads hold the filesystem's shared lock, so a cache reset waits for them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from emulator.model.block_cache import Payload, payload_len, payload_slice
from emulator.model.errors import RETRIABLE_CODES, GcsError, OutOfRangeError

__all__ = [
    "BufferedRandomAccessFile",
    "CachedRandomAccessFile",
    "FilesystemSide",
    "RandomAccessFileModel",
    "ReadResult",
    "SharedLock",
]


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


class SharedLock:
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


class FilesystemSide(Protocol):
    """What a file needs from its filesystem (:class:`emulator.model.gcs_model.GcsFilesystemModel`
    provides it; named here so this module does not import that one back): the retry policy and
    sleep, the block cache and its reset lock, the stat and buffer fetches, the empty payload."""

    retry: Any
    block_cache: Any
    _empty: Payload
    _cache_lock: SharedLock

    def _retries_exhausted(self, err: GcsError) -> GcsError: ...

    def _retry_sleep(self, attempt: int) -> None: ...

    def _stat_object(self, name: str, bucket: str, obj: str) -> Any: ...

    def _load_buffer(self, name: str, bucket: str, obj: str, offset: int, n: int) -> Payload: ...

    def _join(self, parts: list[Payload]) -> Payload: ...


class RandomAccessFileModel:
    """A TF RandomAccessFile on ``gs://``: ``read(offset, n) -> ReadResult``, retried like
    TF's RetryingRandomAccessFile. Thread-safe."""

    kind = "abstract"

    def __init__(self, fs: FilesystemSide, filename: str, bucket: str, obj: str) -> None:
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
        self, fs: FilesystemSide, filename: str, bucket: str, obj: str, buffer_size: int
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
