"""A model of a gcsfs reader: fsspec's own cache classes driven through a counting fetcher.

Exact by construction for the fsspec installed: each gcsfs file of a trace (see
:mod:`emulator.replay.client_ops`) gets the very cache object gcsfs would build,
``fsspec.caching.caches[cache_type](block_size, fetcher, size, **cache_options)``, and its reads
are replayed as ``GCSFile.read`` replays them (``cache._fetch(offset, offset + n)``). The fetcher
is :class:`CountingFetcher`, which shapes each fetch into GETs as ``GCSFile._fetch_range``
does in gcsfs 2026.10:

- an empty range (``gcsfs.utils.is_empty_range(start, end, size)``) sends nothing;
- otherwise ``cat_file(start, end, concurrency=C)`` (C = ``DEFAULT_GCSFS_CONCURRENCY``,
  default 4): with C > 1 the range is cut by ``gcsfs.concurrency.split_range(end - start, C,
  5 MiB)`` into concurrent GETs (a fetch under 5 MiB stays one GET), each
  ``Range: bytes=a-(b-1)``; the answer carries the part inside the object.
- Opening a file asks GCS for its size (``info``: one metadata GET) unless the size was given
  or came from the dircache of an earlier listing; the trace's ``info`` says which. That is
  independent of the cache, so it is counted as recorded. (gcsfs's ``_info`` also starts a
  listing in parallel and cancels it when the GET answers first: not counted.)
- Retries: gcsfs retries failed requests (``retry_request``); a recording of a healthy run has
  none, and none are modelled.

The ``adaptive`` (gcsfs's default when no ``cache_type`` is given) and ``background`` caches
fetch from background threads whose amount depends on timing: they are driven the same way but
their counts are marked ``exact=False``.

Invariants: the fetcher returns exactly the bytes a real GET would (zeros of the right length),
so every cache sees the same lengths as against GCS; no network, no file other than ``mmap``'s
own temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXACT_CACHE_TYPES",
    "CountingFetcher",
    "FileResult",
    "FsspecCacheConfig",
    "TraceFilesResult",
    "fsspec_versions",
    "held_bytes",
    "replay_file",
    "replay_trace_files",
    "version_mismatch",
]

#: Cache types whose requests do not depend on timing (everything but the threaded ones).
EXACT_CACHE_TYPES = ("none", "readahead", "blockcache", "bytes", "first", "all", "mmap", "parts")
MIN_CHUNK = 5 * 1024 * 1024  # GCSFileSystem.MIN_CHUNK_SIZE_FOR_CONCURRENCY


def _default_concurrency() -> int:
    try:
        return int(os.environ.get("DEFAULT_GCSFS_CONCURRENCY", "4"))
    except ValueError:
        return 4


@dataclass(frozen=True)
class FsspecCacheConfig:
    """One gcsfs read configuration: what ``fs.open(path, "rb", cache_type=…,
    block_size=…, cache_options=…)`` takes."""

    cache_type: str
    block_size: int
    cache_options: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cache_type": self.cache_type, "block_size": self.block_size}
        if self.cache_options:
            out["cache_options"] = dict(self.cache_options)
        return out


def _split(size: int, concurrency: int) -> list[tuple[int, int]]:
    try:
        from gcsfs.concurrency import split_range
    except ImportError:  # gcsfs < 2026: no concurrent fetches
        return [(0, size)] if size > 0 else []
    return list(split_range(size, concurrency, MIN_CHUNK))


def _is_empty(start: int | None, end: int | None, size: int) -> bool:
    start_idx, end_idx, _ = slice(start, end).indices(size)
    return start_idx >= end_idx


class CountingFetcher:
    """``GCSFile._fetch_range`` for one object of ``size`` bytes, counted (module docstring).

    ``requests``: ``(first byte, last byte inclusive, body bytes)`` per GET, in order."""

    def __init__(self, size: int, concurrency: int | None = None) -> None:
        self.size = size
        self.concurrency = _default_concurrency() if concurrency is None else concurrency
        self.requests: list[tuple[int, int, int]] = []
        self.fetches: list[list[int]] = []  # body bytes of each fetch's concurrent GETs
        #: fetches with a GET that starts at or past the end (the cache asked past EOF and
        #: gcsfs split it): GCS answers 416; gcsfs raises (fake GCS) or returns b"" (real
        #: GCS's "InvalidRange"): the read fails or comes back short
        self.errors = 0

    def _get(self, a: int, b: int) -> int:
        body = max(0, min(b, self.size) - a) if a < self.size else 0
        self.requests.append((a, b - 1, body))
        return body

    def __call__(self, start: int | None, end: int | None) -> bytes:
        if _is_empty(start, end, self.size):
            return b""
        a = 0 if start is None else start
        b = self.size if end is None else end
        if a < 0 or b < 0:  # gcsfs resolves negative offsets with info(); callers here never do
            a, b, _ = slice(a, b).indices(self.size)
        if a >= b:
            return b""
        parts = _split(b - a, self.concurrency) if self.concurrency > 1 else [(0, b - a)]
        bodies = [self._get(a + off, a + off + n) for off, n in parts]
        if any(a + off >= self.size for off, _ in parts):
            self.errors += 1
        self.fetches.append(bodies)
        return bytes(sum(bodies))


def held_bytes(cache: Any) -> int:
    """Bytes a cache object holds in memory now (0 for caches that hold nothing)."""
    name = getattr(cache, "name", "none")
    if name in ("readahead", "bytes", "first"):
        return len(getattr(cache, "cache", None) or b"")
    if name == "all":
        return len(getattr(cache, "data", b""))
    if name == "parts":
        return sum(len(v) for v in getattr(cache, "data", {}).values())
    if name in ("blockcache", "background"):
        fetch = getattr(cache, "_fetch_block_cached", None)
        info = getattr(fetch, "cache_info", None)
        return (info().currsize if info else 0) * cache.blocksize
    if name == "adaptive":
        fb = getattr(cache, "_fallback", None)
        return len(getattr(fb, "cache", b"") or b"")
    return 0  # none; mmap holds its blocks in a file, paged by the OS


@dataclass
class FileResult:
    """What one gcsfs file sent under one configuration."""

    requests: list[tuple[int, int, int]] = field(default_factory=list)
    metadata_requests: int = 0
    peak_held: int = 0
    exact: bool = True

    @property
    def bytes_fetched(self) -> int:
        return sum(r[2] for r in self.requests)


def _make_cache(config: FsspecCacheConfig, fetcher: CountingFetcher, size: int) -> Any:
    from fsspec.caching import caches

    options = dict(config.cache_options)
    if config.cache_type == "adaptive":  # what GCSFile.__init__ adds
        options.setdefault("concurrency", fetcher.concurrency)
        options.setdefault("max_prefetch_size", 256 * 1024 * 1024)
    if config.cache_type not in caches:
        raise ValueError(f"unknown cache_type {config.cache_type!r} (known: {sorted(caches)})")
    return caches[config.cache_type](config.block_size, fetcher, size, **options)


def replay_file(
    size: int,
    reads: Iterable[tuple[int, int]],
    config: FsspecCacheConfig,
    *,
    info: str = "request",
    concurrency: int | None = None,
) -> FileResult:
    """Replay one file's ``(offset, n)`` reads under ``config``; its requests and peak memory."""
    fetcher = CountingFetcher(size, concurrency)
    cache = _make_cache(config, fetcher, size)
    res = FileResult(metadata_requests=1 if info == "request" else 0)
    res.exact = config.cache_type in EXACT_CACHE_TYPES
    try:
        for offset, n in reads:
            if n > 0:
                cache._fetch(offset, offset + n)
                res.peak_held = max(res.peak_held, held_bytes(cache))
    finally:
        close = getattr(cache, "close", None)
        if callable(close):
            close()
    res.requests = fetcher.requests
    return res


@dataclass
class TraceFilesResult:
    """What all gcsfs files of a trace sent under one configuration."""

    requests: int = 0
    bytes_fetched: int = 0
    metadata_requests: int = 0
    errors: int = 0  # see CountingFetcher.errors
    fetches: list[list[int]] = field(default_factory=list)  # see CountingFetcher.fetches
    #: every media GET as (object, first byte, last byte inclusive), file by file
    ranges: list[tuple[str, int, int]] = field(default_factory=list)
    peak_held: int = 0  # most bytes the open files' caches held at once
    exact: bool = True


def replay_trace_files(
    ops: Iterable[Mapping[str, Any]], config: FsspecCacheConfig, concurrency: int | None = None
) -> TraceFilesResult:
    """Replay a trace's gcsfs ops (``open``/``read``/``close``, in trace order, as
    :mod:`emulator.replay.client_ops` validated them) with every file opened under ``config``."""
    out = TraceFilesResult(exact=config.cache_type in EXACT_CACHE_TYPES)
    files: dict[str, tuple[Any, CountingFetcher]] = {}
    held: dict[str, int] = {}
    names: dict[str, str] = {}

    def drop(handle: str) -> None:
        cache, fetcher = files.pop(handle)
        out.ranges.extend((names[handle], a, b) for a, b, _ in fetcher.requests)
        held.pop(handle, None)
        close = getattr(cache, "close", None)
        if callable(close):
            close()
        out.requests += len(fetcher.requests)
        out.bytes_fetched += sum(r[2] for r in fetcher.requests)
        out.fetches.extend(fetcher.fetches)
        out.errors += fetcher.errors

    try:
        for op in ops:
            kind, handle = op["op"], op["handle"]
            if kind == "open":
                fetcher = CountingFetcher(int(op["size"]), concurrency)
                files[handle] = (_make_cache(config, fetcher, int(op["size"])), fetcher)
                names[handle] = str(op["object"])
                out.metadata_requests += 1 if op.get("info", "request") == "request" else 0
            elif kind == "read" and handle in files:
                cache = files[handle][0]
                cache._fetch(int(op["offset"]), int(op["offset"]) + int(op["n"]))
                held[handle] = held_bytes(cache)
                out.peak_held = max(out.peak_held, sum(held.values()))
            elif kind == "close" and handle in files:
                drop(handle)
    finally:
        for handle in list(files):
            drop(handle)
    return out


def fsspec_versions() -> dict[str, str]:
    """The installed fsspec and gcsfs versions (what the model is exact for)."""
    out: dict[str, str] = {}
    for mod in ("fsspec", "gcsfs"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            continue
    return out


def version_mismatch(recorded: Mapping[str, Any]) -> list[str]:
    """``["fsspec 2026.9.0 recorded, 2026.10.0 installed", …]`` where the trace's recorded
    versions differ from the installed ones."""
    have = fsspec_versions()
    return [
        f"{mod} {recorded[mod]} recorded, {have.get(mod, 'none')} installed"
        for mod in ("fsspec", "gcsfs")
        if isinstance(recorded.get(mod), str) and recorded[mod] != have.get(mod)
    ]
