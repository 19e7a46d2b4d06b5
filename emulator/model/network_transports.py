"""Transports over the network: any fsspec filesystem, gcsfs, google-cloud-storage.

They share the invariants of :mod:`emulator.model.transport` (one request per call, recorded in
trace-format form, TF's status codes for HTTP errors, 416 = 0 bytes) and add what the wire
needs: each ``stat`` is a real metadata request (listing caches are bypassed), each
``read_range`` one ranged GET, and a client library's exception is mapped to the TF status
its HTTP status would give.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from emulator.model.errors import GcsError, NotFoundError, error_for_code, error_for_http_status
from emulator.model.transport_base import ObjectStat, RecordingTransport

__all__ = ["FsspecTransport", "GcsClientTransport", "GcsfsTransport"]


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


class _RemoteTransport(RecordingTransport):
    """What every network transport shares: running a ranged GET and mapping its errors."""

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


class FsspecTransport(_RemoteTransport):
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


class GcsClientTransport(_RemoteTransport):
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
