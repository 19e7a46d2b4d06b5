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

The protocol and the recording base are in :mod:`emulator.model.transport_base` (imported by
this module and by the network one, which imports nothing else of the transports); this module
holds the in-memory transports (memory, size-only); the ones that go over the network (fsspec,
gcsfs, google-cloud-storage) are in :mod:`emulator.model.network_transports` and importable from
here too (loaded on first use).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from emulator.model.errors import NotFoundError
from emulator.model.transport_base import ObjectStat, RecordingTransport, Transport

__all__ = [
    "MemoryTransport",
    "ObjectStat",
    "SizeOnlyTransport",
    "Transport",
]


class _InMemoryObjects(RecordingTransport):
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


# The network transports live in emulator.model.network_transports; they are imported from here
# on first use (PEP 562), so importing the in-memory transports never loads gcsfs or google-cloud.
_NETWORK = ("FsspecTransport", "GcsfsTransport", "GcsClientTransport")


def __getattr__(name: str) -> Any:
    if name in _NETWORK:
        from emulator.model import network_transports

        return getattr(network_transports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
