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
from collections.abc import Mapping
from typing import Any

from emulator.replay.loading import ReplayError, object_content, trace_buckets

__all__ = ["Isolation", "op_for_seq", "real_bucket", "wait_quiet"]


class Isolation:
    """A trace's objects in a shared backend under bucket names unique to this run.

    Version ``v`` of trace object ``NAME`` holds ``object_content(NAME, v, size)`` whatever its
    real bucket is called, so every engine returns the same bytes; :meth:`collect` gives the
    front's records for these buckets, renamed back to the trace's names.
    """

    def __init__(self, emulator: Any, trace: Mapping[str, Any], prefix: str) -> None:
        self.backend = emulator.backend
        self.ledger = emulator.ledger
        self.buckets = {b: real_bucket(prefix, b) for b in trace_buckets(trace)}
        self.reverse = {real: b for b, real in self.buckets.items()}
        self.versions: dict[str, int] = {}
        self.deleted: set[str] = set()

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

    def put(self, name: str, size: int, version: int | None = None) -> None:
        version = self.versions.get(name, 0) + 1 if version is None else version
        self.versions[name] = version
        bucket, obj = self.real_name(name)
        self.backend.put_object(bucket, obj, object_content(name, version, int(size)))
        self.deleted.discard(name)

    def delete(self, name: str) -> None:
        """Delete the object if it exists (deleting a missing object changes nothing)."""
        if self.versions.get(name) and name not in self.deleted:
            bucket, obj = self.real_name(name)
            self.backend.delete_object(bucket, obj)
            self.deleted.add(name)

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
