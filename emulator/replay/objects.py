"""A trace's objects without building their bytes up front.

Every trace object's content is ``object_content(name, version, size)`` (docs/trace-format.md):
SHA-256 digests of ``f"{name}|{version}|{i}"`` laid end to end. Digest ``i`` covers bytes
``32*i .. 32*i+31``, so any range can be computed on its own (:func:`content_range`) and an object
never has to exist as one ``bytes`` value:

- the model engine's in-memory store (:class:`LazyObjectTransport`) holds ``(name, version,
  size)`` per object and computes the bytes of each ranged GET when it is sent, so an object
  costs nothing until it is read, and a read costs what it fetches;
- engines that need real objects in the fake GCS (the TF engine, the model over gcsfs) write an
  object only if some later op can observe that version (:func:`write_plan`), and upload it
  from a temporary file written a chunk at a time (:func:`upload_object`), so memory stays
  bounded whatever the size.

An *append* (``overwrite``/``write`` with ``"append": true``) makes a version that keeps the
old version's bytes as its prefix: :class:`TraceObject` carries the chain of earlier versions
(``earlier``: ``(version, size)`` pairs, oldest first, sizes not decreasing) whose bytes it
keeps; bytes ``[0, s1)`` are version ``v1``'s, ``[s1, s2)`` version ``v2``'s, ..., the rest its
own. Every engine builds a version's bytes this way, so an append keeps the old prefix byte for
byte everywhere.

Invariant: ``content_range(name, v, size, start, n)`` equals
``object_content(name, v, size)[start:start+n]``; a :class:`TraceObject` without ``earlier`` is
``object_content`` itself.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.model.transport import MemoryTransport

__all__ = [
    "MAX_UPLOAD_BYTES",
    "LazyObjectTransport",
    "TraceObject",
    "common_prefix",
    "content_range",
    "upload_object",
    "write_plan",
]

_DIGEST = 32
#: Objects up to this size are uploaded from memory; larger ones through a temporary file.
_IN_MEMORY_UPLOAD = 8 << 20
_CHUNK = 4 << 20
#: Largest object the engines that upload to the fake GCS will create (a clear error beyond:
#: the model engine with the memory transport reads any size lazily).
MAX_UPLOAD_BYTES = 4 << 30


def content_range(name: str, version: int, size: int, start: int, n: int) -> bytes:
    """Bytes ``start .. start+n-1`` of ``object_content(name, version, size)`` (cut at ``size``),
    computed from the digests that cover them only."""
    stop = min(size, start + n)
    if n <= 0 or start >= stop:
        return b""
    prefix = f"{name}|{version}|".encode()
    sha = hashlib.sha256
    first, last = start // _DIGEST, (stop - 1) // _DIGEST
    data = b"".join(sha(prefix + str(i).encode()).digest() for i in range(first, last + 1))
    lo = start - first * _DIGEST
    return data[lo : lo + (stop - start)]


@dataclass(frozen=True)
class TraceObject:
    """Version ``version`` of trace object ``name`` ("bucket/path"), ``size`` bytes long;
    ``earlier``: the ``(version, size)`` chain whose bytes it keeps as its prefix (appends)."""

    name: str
    version: int
    size: int
    earlier: tuple[tuple[int, int], ...] = ()

    def segments(self) -> list[tuple[int, int, int]]:
        """``(version, start, end)``: which version's digests each byte range holds."""
        out: list[tuple[int, int, int]] = []
        pos = 0
        for version, size in self.earlier:
            end = min(size, self.size)
            if end > pos:
                out.append((version, pos, end))
                pos = end
        if self.size > pos:
            out.append((self.version, pos, self.size))
        return out

    def read(self, start: int, n: int) -> bytes:
        if not self.earlier:
            return content_range(self.name, self.version, self.size, start, n)
        stop = min(self.size, start + n)
        parts = []
        for version, lo, hi in self.segments():
            a, b = max(lo, start), min(hi, stop)
            if a < b:
                parts.append(content_range(self.name, version, hi, a, b - a))
        return b"".join(parts)

    def appended(self, version: int, size: int) -> TraceObject:
        """Version ``version`` of ``size`` bytes that keeps this version's bytes as its prefix."""
        if size < self.size:
            raise ValueError(f"an append cannot shrink {self.name} from {self.size} to {size}")
        return TraceObject(self.name, version, size, (*self.earlier, (self.version, self.size)))


def common_prefix(a: TraceObject, b: TraceObject) -> int:
    """How many leading bytes versions ``a`` and ``b`` of one object have in common (by
    construction: distinct versions' own digests never match)."""
    if a == b:
        return a.size
    out = 0
    for (va, la, ha), (vb, lb, hb) in zip(a.segments(), b.segments(), strict=False):
        if va != vb or la != lb:
            break
        out = min(ha, hb)
        if ha != hb:
            break
    return out


class LazyObjectTransport(MemoryTransport):
    """A :class:`MemoryTransport` that can also hold :class:`TraceObject` s: requests, faults and
    generations as the memory transport's, bytes computed per ranged GET."""

    def put_trace_object(
        self, name: str, version: int, size: int, earlier: tuple[tuple[int, int], ...] = ()
    ) -> int:
        """Create or replace ``name`` with that version of trace content (keeping the
        ``earlier`` chain's bytes as its prefix); returns the generation."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be an integer >= 0, got {size!r}")
        bucket, _, path = name.partition("/")
        return self._put(bucket, path, TraceObject(name, version, size, tuple(earlier)))

    def delete_trace_object(self, name: str) -> None:
        """Delete ``name`` ("bucket/path") if it exists (a trace's ``delete`` of a missing object
        changes nothing)."""
        bucket, _, path = name.partition("/")
        if self.exists(bucket, path):
            self.delete(bucket, path)

    def _size(self, payload: Any) -> int:
        return payload.size if isinstance(payload, TraceObject) else len(payload)

    def _read_range(self, bucket: str, name: str, start: int, n: int) -> bytes:
        payload, _ = self._get(bucket, name)
        if not isinstance(payload, TraceObject):
            return super()._read_range(bucket, name, start, n)
        out = payload.read(start, n)
        self._received(len(out))
        return out


def write_plan(trace: Mapping[str, Any]) -> dict[str, list[int | None]]:
    """For each object, one entry per write of it in trace order (its initial creation from
    ``objects`` first, then each ``overwrite``): the size written if some op may observe that
    version before the object's next write or delete (the write must reach the fake GCS),
    else None (the write can be skipped).

    Observers: a ``read`` on a handle opened on the object, a ``stat`` of the object, and a
    ``stat`` of ``P`` for objects named ``P/...`` (TF lists that prefix when ``P`` itself is
    missing). ``open`` sends nothing, so it observes nothing.
    """
    plan: dict[str, list[int | None]] = {}
    sizes: dict[str, list[int]] = {}
    current: dict[str, int] = {}  # object -> index of its current (not deleted) write

    def write(name: str, size: int) -> None:
        plan.setdefault(name, []).append(None)
        sizes.setdefault(name, []).append(int(size))
        current[name] = len(plan[name]) - 1

    def observe(name: str) -> None:
        if name in current:
            i = current[name]
            plan[name][i] = sizes[name][i]

    for name, size in (trace.get("objects") or {}).items():
        write(name, size)
    handles: dict[str, str] = {}
    for op in trace["ops"]:
        kind = op["op"]
        if kind == "open":
            handles[op["handle"]] = op["object"]
        elif kind == "close":
            handles.pop(op["handle"], None)
        elif kind in ("read", "tail") and op["handle"] in handles:
            observe(handles[op["handle"]])
        elif kind == "stat":
            target = op["object"]
            observe(target)
            for name in [n for n in current if n.startswith(target + "/")]:
                observe(name)
        elif kind == "overwrite":
            write(op["object"], op["size"])
        elif kind in ("delete", "write", "remove"):
            # a ``write`` is uploaded by the program under test itself (not through this plan):
            # the version before it is no longer observable
            current.pop(op["object"], None)
    return plan


def upload_object(backend: Any, bucket: str, path: str, obj: TraceObject) -> None:
    """Put ``obj`` into the fake GCS as ``bucket/path`` with memory bounded by a chunk: small
    objects from memory, larger ones from a 0600 temporary file (removed after) written a
    chunk at a time. ValueError above :data:`MAX_UPLOAD_BYTES`."""
    if obj.size > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"object {obj.name} of {obj.size} bytes is larger than the {MAX_UPLOAD_BYTES} bytes "
            "this engine uploads to the fake GCS (the model engine with the memory transport "
            "reads objects of any size)"
        )
    if obj.size <= _IN_MEMORY_UPLOAD:
        backend.put_object(bucket, path, obj.read(0, obj.size))
        return
    fd, tmp = tempfile.mkstemp(prefix="gcs-hook-object-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            for start in range(0, obj.size, _CHUNK):
                fh.write(obj.read(start, _CHUNK))
        backend.put_object(bucket, path, tmp)
    finally:
        os.unlink(tmp)
