"""Record a workload's trace by running real TensorFlow through the front.

The recording TF process gets ``GCS_READ_CACHE_BLOCK_SIZE_MB=0`` before ``import tensorflow``:
block_size 0 disables the block cache AND makes the buffered reader's buffer 0 bytes, so every
``RandomAccessFile::Read(offset, n)`` with n > 0 is exactly one ranged GET
``bytes=offset-(offset+n-1)`` (verified: the synthesized reads of the TFRecord workloads equal the
ledger request for request, see tests/test_workloads.py). The ledger then converts one-to-one:

- media request with range [a, b] → ``read(offset=a, n=b-a+1)``;
- metadata request → ``stat`` (what ``tf.io.gfile.stat``/``GetFileSize`` send);
- list requests (``glob``/``list_files``) and bucket requests are left out: they do not depend
  on the block cache (counted in :attr:`Recording.skipped`).

Handles: opens send nothing, so they are inferred. Each epoch runs as its own worker call and the
ledger is marked between calls; within an epoch each object gets one handle (closed at the end of
the epoch), or, for workloads whose ``recorded_handles`` is ``"switch"`` (checkpoint restore), a
new handle each time the reads move to another object. With the cache on TF's requests do not
depend on handles; with it off each handle has its own read-ahead buffer, so the policy matters
(checked: checkpoint restore with the cache off sends 9 requests in TF, "switch" predicts 9,
"per-object" 6).

Invariants: the trace's ``objects`` are the sizes written to the backend; ops are in the order
the front received the requests; ``config`` is the recording configuration (block_size 0,
cache off), so replaying the trace as-is reproduces the recorded requests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.record.settings import PROGRAM_RECORDING_ENV, RECORDING_CONFIG, RECORDING_ENV
from benchmarks.workloads import CheckpointRestore, RandomRecords, Workload

__all__ = [
    "RECORDING_CONFIG",
    "PROGRAM_RECORDING_ENV",
    "RECORDING_ENV",
    "Recording",
    "ledger_to_ops",
    "record_workload",
    "upload_objects",
]


@dataclass
class Recording:
    """A recorded trace plus what the front saw."""

    trace: dict[str, Any]
    requests: list[dict[str, Any]]  # the ledger's requests that became ops, trace-format dicts
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    epoch_results: list[Any] = field(default_factory=list)


def ledger_to_ops(
    records: list[Any],
    handle_prefix: str,
    skipped: dict[str, int],
    policy: str = "per-object",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ops (one epoch) and the matching trace-format requests from ledger records.

    ``policy`` decides when a read gets a new handle (opens are invisible on the wire):
    ``"per-object"`` — one handle per object for the epoch; ``"switch"`` — a new handle whenever
    the reads move to another object (readers that open, read a run, and close, like TF's
    checkpoint bundle/table readers).
    """
    if policy not in ("per-object", "switch"):
        raise ValueError(f"unknown handle policy {policy!r}")
    ops: list[dict[str, Any]] = []
    reqs: list[dict[str, Any]] = []
    handles: dict[str, str] = {}
    n_handles = 0
    last_obj: str | None = None
    for rec in records:
        obj = f"{rec.bucket}/{rec.object}" if rec.bucket and rec.object else None
        if rec.kind == "media" and obj:
            if rec.range is None:
                raise ValueError(f"media request without Range for {obj}: recording config off?")
            start, end = rec.range
            if obj not in handles or (policy == "switch" and obj != last_obj):
                if obj in handles:
                    ops.append({"op": "close", "handle": handles.pop(obj)})
                n_handles += 1
                handles[obj] = f"{handle_prefix}{n_handles}"
                ops.append({"op": "open", "handle": handles[obj], "object": obj})
            last_obj = obj
            ops.append(
                {"op": "read", "handle": handles[obj], "offset": start, "n": end - start + 1}
            )
        elif rec.kind == "metadata" and obj:
            ops.append({"op": "stat", "object": obj})
        else:
            skipped[rec.kind] = skipped.get(rec.kind, 0) + 1
            continue
        reqs.append(rec.as_trace_request())
    for handle in handles.values():
        ops.append({"op": "close", "handle": handle})
    return ops, reqs


def upload_objects(emulator: Any, workload: Workload) -> dict[str, int]:
    """Write the workload's files to the emulator's backend; returns name → size."""
    sizes = {}
    for name, data in workload.files():
        bucket, _, path = name.partition("/")
        emulator.backend.put_object(bucket, path, data)
        sizes[name] = len(data)
    return sizes


def _write_checkpoint(emulator: Any, worker: Any, workload: CheckpointRestore) -> dict[str, int]:
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="gcs-hook-ckpt-") as outdir:
        files = worker.run(workload.tf_write_code(), outdir=outdir, timeout=300)
        for fname in files:
            path = f"ckpt/{fname}"
            emulator.backend.put_object(workload.bucket, path, os.path.join(outdir, fname))
            sizes[f"{workload.bucket}/{path}"] = os.path.getsize(os.path.join(outdir, fname))
    return sizes


def record_workload(
    workload: Workload,
    emulator: Any,
    *,
    worker: Any = None,
    timeout: float = 600.0,
) -> tuple[Recording, Workload]:
    """Write ``workload``'s objects to ``emulator``'s backend, run it in TF, convert the ledger.

    ``worker``: a TfWorker started with ``emulator.tf_env()`` + :data:`RECORDING_ENV` (one is
    started and closed here if not given). Returns the recording and the workload (for the
    checkpoint workload, with the written object sizes filled in).
    """
    from benchmarks.record.live import record_live
    from benchmarks.workloads.live import LIVE
    from emulator.replay.tf_worker import TfWorker

    if isinstance(workload, LIVE):  # files change while read: recorded like a user's program
        t0 = time.monotonic()
        trace, reqs = record_live(workload, emulator)
        return Recording(trace, reqs, {}, time.monotonic() - t0), workload
    own_worker = worker is None
    if own_worker:
        env = dict(emulator.tf_env())
        env.update(RECORDING_ENV)
        worker = TfWorker(env)
    t0 = time.monotonic()
    try:
        emulator.backend.create_bucket(workload.bucket)
        if isinstance(workload, CheckpointRestore):
            sizes = _write_checkpoint(emulator, worker, workload)
            workload = workload.with_params(sizes=sizes)
        else:
            sizes = upload_objects(emulator, workload)
        ops: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        skipped: dict[str, int] = {}
        results = []
        ledger = emulator.ledger
        for epoch in range(workload.epochs):
            variables: dict[str, Any] = {"epoch": epoch}
            if isinstance(workload, RandomRecords):
                variables["offsets"] = workload.offsets(epoch)
            mark = ledger.mark()
            results.append(worker.run(workload.tf_epoch_code(), timeout=timeout, **variables))
            with contextlib.suppress(AttributeError, TypeError):
                ledger.wait_quiet()
            recs = [r for r in ledger.since(mark) if r.bucket == workload.bucket]
            epoch_ops, epoch_reqs = ledger_to_ops(
                recs, f"e{epoch}h", skipped, workload.recorded_handles
            )
            ops += epoch_ops
            requests += epoch_reqs
    finally:
        if own_worker:
            worker.close()
    trace = {
        "config": dict(RECORDING_CONFIG),
        "objects": sizes,
        "ops": ops,
        "comment": f"recorded from real TF: workload {workload.name} {workload.params()}",
    }
    rec = Recording(trace, requests, skipped, time.monotonic() - t0, results)
    return rec, workload
