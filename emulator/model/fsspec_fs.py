"""``TFCachedFileSystem``: an fsspec filesystem (protocol ``tfgcs``) that wraps another fsspec
filesystem (gcsfs first) and serves reads with TensorFlow's GCS cache semantics.

    import fsspec
    with fsspec.open("tfgcs://bucket/obj", "rb",
                     target_options={"endpoint_url": front_url, "token": "anon"},
                     block_cache={"block_size": 1 << 20, "max_bytes": 4 << 20,
                                  "max_staleness": 0}) as f:
        f.seek(1000); data = f.read(100)

Invariants:
- Every byte read goes through one :class:`~emulator.model.gcs_model.GcsFilesystemModel` per
  filesystem instance (like TF's one ``gs://`` filesystem per process): block cache, stat cache,
  buffered reader when the cache is off - the same requests TF would send.
- File objects do no read-ahead of their own (``cache_type="none"``); ``read(n)`` is one
  model ``read(offset, n)``. A read ending at EOF returns the partial data, as Python expects.
- Writes go to the wrapped filesystem; closing a written file clears that file's caches
  (TF's ClearFileCaches after an upload).
"""

from __future__ import annotations

import os
from typing import Any

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from emulator.model.clock import Clock
from emulator.model.errors import GcsError
from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig
from emulator.model.transport import FsspecTransport, GcsfsTransport
from gcs_hook.tf_defaults import TF_STAT_CACHE_MAX_AGE

__all__ = ["TFCachedFile", "TFCachedFileSystem", "to_os_error"]


def to_os_error(err: GcsError, path: str) -> OSError:
    """The Python exception for a TF status: NOT_FOUND → FileNotFoundError, PERMISSION_DENIED
    → PermissionError, INVALID_ARGUMENT → ValueError-compatible OSError, else OSError."""
    message = f"{err.code}: {err.message} ({path})"
    if err.code == "NOT_FOUND":
        return FileNotFoundError(message)
    if err.code == "PERMISSION_DENIED":
        return PermissionError(message)
    return OSError(message)


class TFCachedFileSystem(AbstractFileSystem):
    """fsspec filesystem with TensorFlow's GCS read-cache semantics over any fsspec filesystem.

    ``fs``: the filesystem to wrap (default: ``fsspec.filesystem(target_protocol,
    **target_options)``); ``block_cache``: a ``BlockCacheParams``-like object or mapping (None =
    TF 2.21 defaults: 64 MiB buffer, cache off); ``stat_cache_max_age`` in seconds.
    """

    protocol = "tfgcs"
    root_marker = ""

    def __init__(
        self,
        fs: Any = None,
        target_protocol: str = "gcs",
        target_options: dict[str, Any] | None = None,
        block_cache: Any = None,
        stat_cache_max_age: int = TF_STAT_CACHE_MAX_AGE,
        stat_cache_max_entries: int = 1024,
        clock: Clock | None = None,
        retry: RetryConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fs is None:
            if target_protocol in ("gcs", "gs"):
                os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
            fs = fsspec.filesystem(target_protocol, **(target_options or {}))
        self.fs = fs
        is_gcsfs = type(fs).__module__.startswith("gcsfs")
        transport = GcsfsTransport(fs) if is_gcsfs else FsspecTransport(fs)
        self.model = GcsFilesystemModel(
            transport,
            block_cache,
            stat_cache_max_age=stat_cache_max_age,
            stat_cache_max_entries=stat_cache_max_entries,
            clock=clock,
            retry=retry,
        )

    @property
    def transport(self) -> FsspecTransport:
        return self.model.transport  # type: ignore[return-value]

    @classmethod
    def _strip_protocol(cls, path: str | list[str]) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        for prefix in ("tfgcs://", "gs://", "gcs://"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        return path.rstrip("/")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        try:
            st = self.model.stat("gs://" + path)
        except GcsError as e:
            raise to_os_error(e, path) from e
        return {
            "name": path,
            "size": st.length,
            "type": "directory" if st.is_directory else "file",
            "generation": st.generation,
        }

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        return self.fs.ls(self._strip_protocol(path), detail=detail, **kwargs)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        path = self._strip_protocol(path)
        if "r" in mode:
            return TFCachedFile(self, path, mode=mode, **kwargs)
        inner = self.fs.open(path, mode, **kwargs)
        model = self.model
        original_close = inner.close

        def close_and_invalidate() -> None:
            original_close()
            model.clear_file_caches("gs://" + path)

        inner.close = close_and_invalidate
        return inner

    def rm_file(self, path: str) -> None:
        path = self._strip_protocol(path)
        self.fs.rm_file(path)
        self.model.clear_file_caches("gs://" + path)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any):
        with self.open(path, "rb") as f:
            if start is not None and start < 0 or end is not None and end < 0:
                size = f.size
                start = size + start if start is not None and start < 0 else start
                end = size + end if end is not None and end < 0 else end
            f.seek(start or 0)
            return f.read(None if end is None else max(0, end - (start or 0)))


class TFCachedFile(AbstractBufferedFile):
    """A read-only file whose reads are model reads (no read-ahead of its own)."""

    def __init__(self, fs: TFCachedFileSystem, path: str, mode: str = "rb", **kwargs: Any):
        if mode != "rb":
            raise ValueError(f"TFCachedFile is read-only, got mode {mode!r}")
        self._handle = fs.model.open("gs://" + path)
        kwargs.pop("cache_type", None)
        super().__init__(fs, path, mode=mode, block_size=1, cache_type="none", **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        n = max(0, end - start)
        result = self._handle.read(start, n)
        if result.error is not None and result.error.code != "OUT_OF_RANGE":
            raise to_os_error(result.error, self.path) from result.error
        return result.data  # type: ignore[return-value]
