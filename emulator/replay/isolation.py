"""Isolation of one trace's objects in a shared fake GCS, and reading back what the front saw.

Several traces (and the model's gcsfs transport) share one backend and one front. Each run gets
bucket names of its own (:func:`real_bucket`), so TF's stat and block caches, which are keyed by
path, can never mix two traces; the front's ledger records are mapped back to the trace's names
before they are compared (:meth:`Isolation.collect`).

Invariant: version ``v`` of trace object ``NAME`` holds ``object_content(NAME, v, size)``
whatever its real bucket is called, so every engine returns the same bytes.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from emulator.replay.loading import ReplayError, trace_buckets
from emulator.replay.objects import MAX_UPLOAD_BYTES, TraceObject, upload_object, write_plan

__all__ = ["Isolation", "check_uploadable", "op_for_seq", "real_bucket", "wait_quiet"]


class Isolation:
    """A trace's objects in a shared backend under bucket names unique to this run.

    Version ``v`` of trace object ``NAME`` holds ``object_content(NAME, v, size)`` whatever its
    real bucket is called, so every engine returns the same bytes; :meth:`collect` gives the
    front's records for these buckets, renamed back to the trace's names.

    Objects are written lazily: a write (creation or overwrite) reaches the backend only if an
    op may observe that version (:func:`emulator.replay.objects.write_plan`), streamed in chunks
    (:func:`emulator.replay.objects.upload_object`). A skipped write leaves the backend with
    what no op looks at before the object's next write or delete, so requests and bytes are
    those of a run that wrote everything. :class:`ReplayError` at construction, before
    anything is written, if an object that must be written is too large to upload.
    """

    def __init__(self, emulator: Any, trace: Mapping[str, Any], prefix: str) -> None:
        self.backend = emulator.backend
        self.ledger = emulator.ledger
        self.buckets = {b: real_bucket(prefix, b) for b in trace_buckets(trace)}
        self.reverse = {real: b for b, real in self.buckets.items()}
        self.versions: dict[str, int] = {}
        #: trace name -> its current version (written or skipped): the base of an append
        self.objects: dict[str, TraceObject] = {}
        self.present: set[str] = set()  # trace names with an object in the backend
        plan = check_uploadable(trace)
        self._pending = {name: deque(sizes) for name, sizes in plan.items()}
        #: How many writes reached the backend and how many were skipped (nothing observed them).
        self.uploads = 0
        self.skipped = 0

    def create(self, objects: Mapping[str, int]) -> None:
        for real in self.buckets.values():
            self.backend.create_bucket(real)
        for name, size in objects.items():
            self.put(name, size)

    def real_name(self, name: str) -> tuple[str, str]:
        bucket, _, obj = name.partition("/")
        return self.buckets[bucket], obj

    def real_path(self, name: str) -> str:
        bucket, obj = self.real_name(name)
        return f"{bucket}/{obj}"

    def next_object(
        self, name: str, size: int, version: int | None = None, *, append: bool = False
    ) -> TraceObject:
        """The next version of ``name`` (``append``: keeping the current one as its prefix)."""
        version = self.versions.get(name, 0) + 1 if version is None else version
        old = self.objects.get(name)
        if append and old is not None:
            return old.appended(version, int(size))
        return TraceObject(name, version, int(size))

    def put(
        self,
        name: str,
        size: int,
        version: int | None = None,
        earlier: tuple[tuple[int, int], ...] | None = None,
        *,
        append: bool = False,
    ) -> None:
        """Write version ``version`` (default: the next) of ``name``, if the plan says an op
        will observe it; writes of one object must come in trace order. ``earlier``: the append
        chain it keeps (else ``append`` builds it from the current version)."""
        if earlier:
            version = self.versions.get(name, 0) + 1 if version is None else version
            new = TraceObject(name, version, int(size), tuple(tuple(e) for e in earlier))
        else:
            new = self.next_object(name, size, version, append=append)
        self.versions[name] = new.version
        self.objects[name] = new
        pending = self._pending.get(name)
        if pending is not None and pending and pending.popleft() is None:
            self.skipped += 1
            return
        bucket, obj = self.real_name(name)
        upload_object(self.backend, bucket, obj, new)
        self.present.add(name)
        self.uploads += 1

    def delete(self, name: str) -> None:
        """Delete the object if it is in the backend (deleting a missing one changes nothing)."""
        self.objects.pop(name, None)
        if name in self.present:
            bucket, obj = self.real_name(name)
            self.backend.delete_object(bucket, obj)
            self.present.discard(name)

    def unmap(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A trace-format request with real bucket names turned back into the trace's."""
        out = dict(request)
        for key in ("object", "bucket"):
            value = out.get(key)
            if isinstance(value, str):
                bucket, sep, rest = value.partition("/")
                if bucket in self.reverse:
                    out[key] = self.reverse[bucket] + sep + rest
        if isinstance(out.get("range"), tuple):
            out["range"] = list(out["range"])
        return out

    def collect(
        self, start: int, marks: list[tuple[int, int]] | None = None
    ) -> tuple[list[dict[str, Any]], list[int | None]]:
        """The front's requests for these buckets since ``start`` and the op index of each."""
        requests: list[dict[str, Any]] = []
        request_ops: list[int | None] = []
        for rec in self.ledger.since(start):
            if getattr(rec, "bucket", None) not in self.reverse:
                continue
            requests.append(self.unmap(rec.as_trace_request()))
            request_ops.append(op_for_seq(marks or [], rec))
        return requests, request_ops

    def drop(self) -> None:
        for real in self.buckets.values():
            # best effort: the names are unique to this run, so a leftover collides with nothing
            with contextlib.suppress(Exception):
                self.backend.delete_bucket(real)


def check_uploadable(trace: Mapping[str, Any]) -> dict[str, list[int | None]]:
    """The trace's :func:`~emulator.replay.objects.write_plan`, after checking that every write
    an op observes fits :data:`~emulator.replay.objects.MAX_UPLOAD_BYTES` (``ReplayError``
    otherwise). Engines that upload objects call it before they start anything."""
    plan = write_plan(trace)
    for name, sizes in plan.items():
        too_big = [s for s in sizes if s is not None and s > MAX_UPLOAD_BYTES]
        if too_big:
            raise ReplayError(
                f"object {name} of {too_big[0]} bytes is read, and the engines that upload to "
                f"the fake GCS take objects of at most {MAX_UPLOAD_BYTES} bytes (the model "
                "engine with the memory transport reads objects of any size)"
            )
    return plan


def real_bucket(prefix: str, bucket: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", f"{prefix}-{bucket}".lower())
    return name[:63].rstrip("-_.")


def op_for_seq(marks: list[tuple[int, int]], rec: Any) -> int | None:
    """The op during which the request arrived: the last op whose pre-op mark is < its seq.

    The front numbers requests on arrival (``mark()`` is the last number handed out), so this
    is exact for a single-threaded trace even when the record itself is appended later.
    """
    seq = getattr(rec, "seq", None)
    if seq is None:
        return None
    found = None
    for mark, index in marks:
        if mark < seq:
            found = index
    return found


def wait_quiet(ledger: Any) -> None:
    """Let the front finish recording requests whose responses TF has already consumed."""
    if hasattr(ledger, "wait_quiet"):
        # nothing in flight is what matters: TF runs one request at a time and has consumed
        # each response before the op returns
        if not ledger.wait_quiet(quiet_s=0.01, timeout=30.0):
            raise ReplayError("the front's ledger did not settle within 30 s")
    else:
        time.sleep(0.05)
