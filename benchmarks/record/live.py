"""Live recording: a live workload (files that change while they are read) recorded through the
front like a user's program, the trainer's uploads anonymous so that
:func:`benchmarks.record.ledger.ledger_to_trace` turns them into ``overwrite`` ops.

Invariant: the trace's ``config`` is null and its reads are what the reader sent with the
recording settings (:data:`benchmarks.record.settings.PROGRAM_RECORDING_ENV`).
"""

from __future__ import annotations

from typing import Any

from benchmarks.record.ledger import completed_uploads, ledger_to_trace
from benchmarks.record.settings import PROGRAM_RECORDING_ENV
from benchmarks.record.versions import append_flags, keep_versions
from benchmarks.workloads.base import Workload
from benchmarks.workloads.live import CheckpointPoller, run_live

__all__ = ["record_live"]


def record_live(
    workload: Workload, emulator: Any, *, trainer: Any = None
) -> tuple[dict[str, Any], list[dict]]:
    """Record a live workload with the recording settings; returns the trace (config null) and
    the reader's media and metadata requests (trace-format dicts). ``trainer``: a TfWorker to
    save checkpoints in (it writes only locally, so any environment does; one is started and
    closed here if not given)."""
    from emulator.replay.tf_worker import TfWorker

    emulator.backend.create_bucket(workload.bucket)
    keep_versions(emulator.backend, [workload.bucket])  # to tell appends from rewrites
    env = {**emulator.tf_env(), **PROGRAM_RECORDING_ENV}
    mark = emulator.ledger.mark()
    with TfWorker(env) as reader:
        own = trainer is None and isinstance(workload, CheckpointPoller)
        if own:
            trainer = TfWorker(env)
        try:
            run_live(workload, emulator, reader, trainer=trainer)
        finally:
            if own:
                trainer.close()
    emulator.ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
    records = [r for r in emulator.ledger.since(mark) if r.bucket == workload.bucket]
    appends = append_flags(emulator.backend, completed_uploads(records))
    trace = ledger_to_trace(records, workload.objects(), appends=appends).trace
    trace["comment"] = f"recorded from real TF: workload {workload.name} {workload.params()}"
    requests = [
        r.as_trace_request()
        for r in records
        if r.principal == "test-token" and r.kind in ("media", "metadata")
    ]
    return trace, requests
