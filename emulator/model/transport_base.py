"""The transports' shared part: the :class:`Transport` protocol, :class:`ObjectStat`, and
:class:`RecordingTransport` (request recording, per-kind counts, fault injection), the base of
both the in-memory transports (:mod:`emulator.model.transport`) and the network ones
(:mod:`emulator.model.network_transports`). The invariants every transport keeps are stated in
:mod:`emulator.model.transport`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from emulator.model.errors import GcsError, error_for_code

__all__ = ["ObjectStat", "RecordingTransport", "Transport"]


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


class RecordingTransport:
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

    def _media_error(self, err: GcsError) -> GcsError:
        """Tag a media-request error with the server's error body size."""
        if err.body_bytes is None:
            err.body_bytes = self.error_body_bytes
        return err

    def _received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n
