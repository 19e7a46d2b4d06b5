"""Transports: the model's only I/O.

A transport answers three questions TF's GCS filesystem asks the network - object metadata
(size + generation), a ranged read of object bytes, and a bounded listing - and records every
request it sends in trace-format form (``docs/trace-format.md``)::

    {"kind": "metadata", "object": "bkt/a.bin"}
    {"kind": "media", "object": "bkt/a.bin", "range": [0, 1048575]}
    {"kind": "list", "object": "bkt"}   # as the ledger records it (no prefix)

Invariants shared by every transport:

- ``read_range(bucket, name, start, n)`` sends ONE ranged request for bytes
  ``[start, start + n - 1]`` and returns at most ``n`` bytes; a range starting at/after the end
  of the object (HTTP 416) returns 0 bytes, not an error.
- Errors are :class:`~emulator.model.errors.GcsError` subclasses with TF's status code for the HTTP
  status (404 → NOT_FOUND, 503 → UNAVAILABLE, ...).
- ``SizeOnlyTransport`` moves no bytes: its payloads are ``int`` byte counts.
- ``requests`` is appended in send order, thread-safely; ``counts`` tallies requests by kind.
- An error from ``read_range`` carries ``body_bytes`` = ``error_body_bytes``: the size of the
  error body the server sends to TF's media URL (fake-gcs-server: 10, "Not Found\\n"; real GCS
  XML errors are a few hundred bytes). TF turns an error whose body exceeds its ``n``-byte
  buffer into FAILED_PRECONDITION; the model needs the size to do the same.

Faults can be injected (``inject_fault``) into any transport: the next matching request is
recorded as sent and then fails with the given status code, as a server error would.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from emulator.model.errors import GcsError, NotFoundError, error_for_code, error_for_http_status

__all__ = [
    "GcsClientTransport",
    "FsspecTransport",
    "GcsfsTransport",
    "MemoryTransport",
    "ObjectStat",
    "SizeOnlyTransport",
    "Transport",
]


@dataclass(frozen=True)
class ObjectStat:
    """What TF reads from an object's metadata: size in bytes and generation."""

    size: int
    generation: int


@runtime_checkable
class Transport(Protocol):
    size_only: bool
    requests: list[dict]

    def stat(self, bucket: str, name: str) -> ObjectStat: ...

    def read_range(self, bucket: str, name: str, start: int, n: int) -> bytes | int: ...

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]: ...


@dataclass
class _Fault:
    kind: str
    code: str
    remaining: int
    object: str | None
    body_bytes: int | None = None


def _is_byte_count(value: object) -> bool:
    """An ``int`` (not a ``bool``) that is >= 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _RecordingTransport:
    """Request recording, per-kind counts and fault injection shared by the transports."""

    size_only = False

    def __init__(self, *, record: bool = True, error_body_bytes: int = 10) -> None:
        if not _is_byte_count(error_body_bytes):
            raise ValueError(f"error_body_bytes must be an integer >= 0, got {error_body_bytes!r}")
        self.record = record
        #: Size of the error body the server sends with a failed media request (see module doc).
        self.error_body_bytes = error_body_bytes
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {"metadata": 0, "media": 0, "list": 0}
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def inject_fault(
        self,
        kind: str = "media",
        code: str = "UNAVAILABLE",
        count: int = 1,
        object: str | None = None,
        body_bytes: int | None = None,
    ) -> None:
        """Make the next ``count`` requests of ``kind`` (for ``object`` "bucket/name" if given)
        fail with TF status ``code`` after being recorded. ``body_bytes``: the size of the error
        body the server would send (None = ``error_body_bytes``); TF reports a media error whose
        body is larger than the read as FAILED_PRECONDITION."""
        if kind not in self.counts:
            raise ValueError(f"kind must be one of {sorted(self.counts)}, got {kind!r}")
        error_for_code(code)  # validates the code name
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if body_bytes is not None and not _is_byte_count(body_bytes):
            raise ValueError(f"body_bytes must be an integer >= 0 or None, got {body_bytes!r}")
        with self._lock:
            self._faults.append(_Fault(kind, code, count, object, body_bytes))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            for k in self.counts:
                self.counts[k] = 0
            self.bytes_received = 0

    def _send(self, request: dict) -> None:
        """Record ``request``; raise an injected fault if one matches."""
        with self._lock:
            kind = request["kind"]
            self.counts[kind] += 1
            if self.record:
                self.requests.append(request)
            if not self._faults:
                return
            for fault in self._faults:
                if fault.kind == kind and fault.object in (None, request.get("object")):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    err = error_for_code(fault.code, f"injected {fault.code} for {request}")
                    err.body_bytes = fault.body_bytes
                    raise err

    def read_range(self, bucket: str, name: str, start: int, n: int) -> Any:
        """One ranged media request (see the module docstring); errors carry ``body_bytes``."""
        try:
            self._send(
                {"kind": "media", "object": f"{bucket}/{name}", "range": [start, start + n - 1]}
            )
            return self._read_range(bucket, name, start, n)
        except GcsError as e:
            self._media_error(e)
            raise

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> Any:
        """The fetch itself (the request is already recorded by :meth:`read_range`)."""
        raise NotImplementedError

    def _remote_media(self, fetch: Callable[[], bytes]) -> bytes:
        """Run a network transport's ranged GET ``fetch()``: HTTP 416 is empty data, any other
        library error becomes the TF status it maps to; a GcsError passes through as it is."""
        try:
            data = fetch()
        except GcsError:
            raise
        except Exception as e:  # noqa: BLE001 - mapped to a TF status
            if _http_status(e) == 416:
                return b""
            raise _map_exception(e) from e
        self._received(len(data))
        return data

    def _media_error(self, err: GcsError) -> GcsError:
        """Tag a media-request error with the server's error body size."""
        if err.body_bytes is None:
            err.body_bytes = self.error_body_bytes
        return err

    def _received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n


class _InMemoryObjects(_RecordingTransport):
    """Objects held in this process: name -> (payload, generation)."""

    _generations = itertools.count(1_000_000)

    def __init__(
        self, *, record: bool = True, latency_s: float = 0.0, error_body_bytes: int = 10
    ) -> None:
        super().__init__(record=record, error_body_bytes=error_body_bytes)
        if not latency_s >= 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s!r}")
        #: Real seconds each media request takes (to exercise concurrency); 0 = none.
        self.latency_s = latency_s
        self._objects: dict[tuple[str, str], tuple[Any, int]] = {}

    def _put(self, bucket: str, name: str, payload: Any) -> int:
        if not bucket or not name:
            raise ValueError(f"bucket and name must be non-empty, got {bucket!r}/{name!r}")
        generation = next(self._generations)
        with self._lock:
            self._objects[(bucket, name)] = (payload, generation)
        return generation

    def delete(self, bucket: str, name: str) -> None:
        with self._lock:
            if self._objects.pop((bucket, name), None) is None:
                raise NotFoundError(f"no such object: {bucket}/{name}")

    def exists(self, bucket: str, name: str) -> bool:
        return (bucket, name) in self._objects

    def _get(self, bucket: str, name: str) -> tuple[Any, int]:
        entry = self._objects.get((bucket, name))
        if entry is None:
            raise NotFoundError(f"No such object: {bucket}/{name}")
        return entry

    def _size(self, payload: Any) -> int:
        raise NotImplementedError

    def stat(self, bucket: str, name: str) -> ObjectStat:
        self._send({"kind": "metadata", "object": f"{bucket}/{name}"})
        payload, generation = self._get(bucket, name)
        return ObjectStat(self._size(payload), generation)

    #: Objects per listing page (GCS's default); an unbounded listing sends one request a page.
    page_size = 1000

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]:
        names = sorted(n for (b, n) in list(self._objects) if b == bucket and n.startswith(prefix))
        if max_results > 0:
            names = names[:max_results]
        for _ in range(max(1, -(-len(names) // self.page_size))):
            self._send({"kind": "list", "object": bucket})
        return names


class SizeOnlyTransport(_InMemoryObjects):
    """Sizes and generations only; reads return byte counts. For fast simulations."""

    size_only = True

    def put(self, bucket: str, name: str, size: int) -> int:
        """Create or replace an object of ``size`` bytes; returns the new generation."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an integer >= 0, got {size!r}")
        return self._put(bucket, name, size)

    def _size(self, payload: int) -> int:
        return payload

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> int:
        size, _ = self._get(bucket, name)
        got = max(0, min(n, size - start))
        self._received(got)
        return got


class MemoryTransport(_InMemoryObjects):
    """Objects' bytes in this process's memory: a byte-moving transport with no network."""

    def put(self, bucket: str, name: str, data: bytes) -> int:
        """Create or replace an object; returns the new generation."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        return self._put(bucket, name, bytes(data))

    def _size(self, payload: bytes) -> int:
        return len(payload)

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> bytes:
        if self.latency_s:
            time.sleep(self.latency_s)
        data, _ = self._get(bucket, name)
        out = data[start : start + n]
        self._received(len(out))
        return out


def _require_no_hns() -> None:
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    gcsfs_log = logging.getLogger("gcsfs")
    if not any(isinstance(f, _Drop416) for f in gcsfs_log.filters):
        gcsfs_log.addFilter(_Drop416())


class _Drop416(logging.Filter):
    """gcsfs logs a 416 (a read past the end, which TF treats as 0 bytes) as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return _http_status(exc) != 416 if exc is not None else True


class FsspecTransport(_RecordingTransport):
    """Reads through any fsspec filesystem: ``info`` for metadata (its ``generation`` if it has
    one, else a hash of its mtime/etag), ``cat_file(path, start, end)`` for ranged bytes. The
    filesystem's listing cache is invalidated before each ``info`` so every stat is a request."""

    def __init__(self, fs: Any, *, record: bool = True, error_body_bytes: int = 10) -> None:
        super().__init__(record=record, error_body_bytes=error_body_bytes)
        self.fs = fs

    def stat(self, bucket: str, name: str) -> ObjectStat:
        self._send({"kind": "metadata", "object": f"{bucket}/{name}"})
        path = f"{bucket}/{name}"
        try:
            info = self._object_info(bucket, name)
        except GcsError:
            raise
        except FileNotFoundError as e:
            raise NotFoundError(f"No such object: {path}") from e
        except Exception as e:  # noqa: BLE001 - mapped to a TF status
            raise _map_exception(e) from e
        if info.get("type") == "directory":
            raise NotFoundError(f"No such object: {path}")
        generation = info.get("generation")
        if generation is None:
            marker = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
            generation = hash(str(marker)) & ((1 << 63) - 1)
        return ObjectStat(int(info["size"]), int(generation))

    def _object_info(self, bucket: str, name: str) -> dict:
        path = f"{bucket}/{name}"
        self.fs.invalidate_cache(path)
        return self.fs.info(path)

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> bytes:
        def fetch() -> bytes:
            try:
                return self.fs.cat_file(f"{bucket}/{name}", start=start, end=start + n)
            except FileNotFoundError as e:
                raise NotFoundError(f"No such object: {bucket}/{name}") from e

        return self._remote_media(fetch)

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]:
        self._send({"kind": "list", "object": bucket})
        try:
            names = self.fs.find(f"{bucket}/{prefix}")
        except FileNotFoundError:
            return []
        except Exception as e:  # noqa: BLE001
            raise _map_exception(e) from e
        out = [n.split("/", 1)[1] for n in names if "/" in n]
        return out[:max_results] if max_results > 0 else out


class GcsfsTransport(FsspecTransport):
    """Reads through a ``gcsfs.GCSFileSystem`` (any endpoint: real GCS or the front's plain URL).

    gcsfs's own caches are bypassed: metadata comes from one object GET each time and bytes
    from ``cat_file(path, start, end)`` (one ranged GET, no read-ahead); listing is one
    ``objects.list`` call. Sets ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` if unset.
    """

    def __init__(
        self,
        fs: Any = None,
        *,
        endpoint_url: str | None = None,
        record: bool = True,
        error_body_bytes: int = 10,
        **gcsfs_kwargs: Any,
    ) -> None:
        _require_no_hns()
        if fs is None:
            import gcsfs

            kwargs: dict[str, Any] = {"token": "anon"} if endpoint_url else {}
            kwargs.update(gcsfs_kwargs)
            if endpoint_url:
                kwargs["endpoint_url"] = endpoint_url
            fs = gcsfs.GCSFileSystem(**kwargs)
        super().__init__(fs, record=record, error_body_bytes=error_body_bytes)

    def _object_info(self, bucket: str, name: str) -> dict:
        from fsspec.asyn import sync

        return sync(self.fs.loop, self.fs._get_object, f"{bucket}/{name}")

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]:
        names: list[str] = []
        token = None
        while True:  # one request per page, as TF pages with nextPageToken
            self._send({"kind": "list", "object": bucket})
            params: dict[str, Any] = {"prefix": prefix}
            if max_results > 0:
                params["maxResults"] = max_results - len(names)
            if token:
                params["pageToken"] = token
            try:
                out = self.fs.call("GET", "b/{}/o", bucket, json_out=True, **params)
            except Exception as e:  # noqa: BLE001
                raise _map_exception(e) from e
            names.extend(item["name"] for item in out.get("items", []))
            token = out.get("nextPageToken")
            if not token or (max_results > 0 and len(names) >= max_results):
                return names[:max_results] if max_results > 0 else names


class GcsClientTransport(_RecordingTransport):
    """Reads through ``google.cloud.storage`` (pass ``client`` or ``endpoint_url`` for the fake).

    Note: the library itself sends one bucket-metadata GET with a client's first object lookup;
    that request is the library's, not the model's, and is not in ``requests``.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        endpoint_url: str | None = None,
        project: str = "test-project",
        record: bool = True,
        error_body_bytes: int = 10,
    ) -> None:
        super().__init__(record=record, error_body_bytes=error_body_bytes)
        if client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            options = {"api_endpoint": endpoint_url} if endpoint_url else None
            client = storage.Client(
                project=project,
                credentials=AnonymousCredentials() if endpoint_url else None,
                client_options=options,
            )
        self.client = client

    def stat(self, bucket: str, name: str) -> ObjectStat:
        self._send({"kind": "metadata", "object": f"{bucket}/{name}"})
        try:
            blob = self.client.bucket(bucket).get_blob(name)
        except Exception as e:  # noqa: BLE001
            raise _map_exception(e) from e
        if blob is None:
            raise NotFoundError(f"No such object: {bucket}/{name}")
        return ObjectStat(int(blob.size), int(blob.generation))

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> bytes:
        blob = self.client.bucket(bucket).blob(name)
        return self._remote_media(
            lambda: blob.download_as_bytes(
                start=start, end=start + n - 1, checksum=None, raw_download=True
            )
        )

    def list_prefix(self, bucket: str, prefix: str, max_results: int) -> list[str]:
        self._send({"kind": "list", "object": bucket})
        try:
            blobs = self.client.list_blobs(bucket, prefix=prefix, max_results=max_results or None)
            return [b.name for b in blobs]
        except Exception as e:  # noqa: BLE001
            raise _map_exception(e) from e


def _http_status(exc: BaseException) -> int | None:
    for attr in ("code", "status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int):
        return value
    return None


def _map_exception(exc: BaseException) -> GcsError:
    if isinstance(exc, GcsError):
        return exc
    status = _http_status(exc)
    if isinstance(exc, FileNotFoundError):
        status = 404
    if isinstance(exc, PermissionError):
        status = 403
    if status is None:
        return error_for_code("UNAVAILABLE", f"transport error: {type(exc).__name__}: {exc}")
    err = error_for_http_status(status, f"HTTP {status}: {type(exc).__name__}: {exc}")
    return err if err is not None else error_for_code("UNKNOWN", str(exc))
