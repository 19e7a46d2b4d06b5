"""Training-input workloads: what they store, how TF reads them, and their traces.

A :class:`Workload` knows three things:

1. **Objects** — real files to write to the fake GCS (:meth:`Workload.files`): TFRecord shards
   (:mod:`benchmarks.workloads.files`), or plain small files.
2. **The TensorFlow program** that reads them the way a training input pipeline does
   (:meth:`Workload.tf_epoch_code`, one call per epoch, run in a ``TfWorker``; the code is built
   by :mod:`benchmarks.workloads.tf_programs`). Recording runs it through the front and turns the ledger
   into a trace (:mod:`benchmarks.record`).
3. **A synthesized trace** (:meth:`Workload.synthesize`), the RandomAccessFile-level reads TF
   issues for that program (:mod:`benchmarks.workloads.synth`, which states how TF reads), so the
   same workload can be swept at any scale without writing the bytes. Tests check that the
   synthesized trace equals the recorded one at small sizes.

Where the pieces live: the base classes in :mod:`benchmarks.workloads.base`, the built-in
workloads in :mod:`benchmarks.workloads.builtin`, the live ones (files that change while read) in
:mod:`benchmarks.workloads.live`, the parameter bounds in :mod:`benchmarks.workloads.limits`. This
module imports them and builds the registry :data:`WORKLOADS`; it also holds the scales
:data:`SWEEP_SCALE` / :data:`MEASURE_SCALE`. Nothing below imports this module back.

Invariants: object names are ``bucket/path``; every size is the exact byte length of what
:meth:`Workload.files` produces; synthesized traces follow docs/trace-format.md.
"""

from __future__ import annotations

from typing import Any

from benchmarks.workloads.base import Workload
from benchmarks.workloads.builtin import (
    CheckpointRestore,
    InterleavedShards,
    RandomRecords,
    SequentialShards,
    SmallFiles,
)
from benchmarks.workloads.files import RECORD_OVERHEAD, tfrecord_bytes
from benchmarks.workloads.limits import SCALE_LIMITS, check_scale
from benchmarks.workloads.live import CheckpointPoller, TensorBoardLogs
from benchmarks.workloads.synth import (
    GFILE_BUFFER,
    READ_FILE_CHUNK,
    TFRECORD_BUFFER,
    TFRECORD_EOF_PROBE,
)
from gcs_hook.units import KiB

__all__ = [
    "GFILE_BUFFER",
    "READ_FILE_CHUNK",
    "MEASURE_SCALE",
    "RECORD_OVERHEAD",
    "SWEEP_SCALE",
    "TFRECORD_BUFFER",
    "TFRECORD_EOF_PROBE",
    "WORKLOADS",
    "CheckpointRestore",
    "InterleavedShards",
    "RandomRecords",
    "SequentialShards",
    "SmallFiles",
    "Workload",
    "SCALE_LIMITS",
    "check_scale",
    "get_workload",
    "tfrecord_bytes",
    "workload_names",
]


#: The workloads ``gcs-hook tune --workload NAME`` knows, at their default (small) sizes.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        SequentialShards(),
        InterleavedShards(),
        RandomRecords(),
        CheckpointRestore(),
        SmallFiles(),
        TensorBoardLogs(),
        CheckpointPoller(),
    )
}


def workload_names() -> list[str]:
    return list(WORKLOADS)


def get_workload(name: str, **params: Any) -> Workload:
    """The named workload with ``params`` overriding its defaults (KeyError if unknown)."""
    if name not in WORKLOADS:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return WORKLOADS[name].with_params(**params) if params else WORKLOADS[name]


#: Parameters that make each workload a realistic job for sweeps (synthesized, or recorded for
#: workloads without a synthesizer); ``tune --param k=v`` overrides them.
SWEEP_SCALE: dict[str, dict[str, Any]] = {
    "tfrecord-epochs": {
        "shards": 16,
        "records_per_shard": 656,
        "record_size": 100 * KiB,
        "epochs": 3,
    },  # 1 GiB
    "interleave": {
        "shards": 32,
        "records_per_shard": 328,
        "record_size": 100 * KiB,
        "cycle_length": 8,
        "block_length": 4,
        "epochs": 2,
    },  # 1 GiB
    "random-records": {"records": 8192, "record_size": 64 * KiB, "epochs": 2},  # 512 MiB
    "checkpoint-restore": {"variables": 32, "floats_per_variable": 512 * 1024},  # 64 MiB
    "small-files": {"files_count": 2000, "file_size": 64 * KiB, "epochs": 3},  # 125 MiB
    "tensorboard": {
        "runs": 4,
        "event_bytes": 128 * KiB,
        "initial_events": 40,
        "events_per_reload": 40,
        "reloads": 16,
        "reload_interval_s": 5,
    },  # 4 × 80 MiB event files at the end
    "checkpoint-poller": {"variables": 16, "floats_per_variable": 256 * 1024, "checkpoints": 3},
}

#: Small versions for recording + measured runs with real TF (a few MiB, bounded run time).
MEASURE_SCALE: dict[str, dict[str, Any]] = {
    "tfrecord-epochs": {"shards": 4, "records_per_shard": 6, "record_size": 256 * KiB, "epochs": 2},
    "interleave": {
        "shards": 6,
        "records_per_shard": 4,
        "record_size": 256 * KiB,
        "cycle_length": 3,
        "block_length": 2,
        "epochs": 2,
    },
    "random-records": {"records": 32, "record_size": 64 * KiB, "epochs": 2},
    "checkpoint-restore": {"variables": 8, "floats_per_variable": 128 * 1024},
    "small-files": {"files_count": 16, "file_size": 64 * KiB, "epochs": 2},
    "tensorboard": {
        "runs": 2,
        "event_bytes": 64 * KiB,
        "initial_events": 8,
        "events_per_reload": 8,
        "reloads": 3,
        "reload_interval_s": 2,
    },
    "checkpoint-poller": {"variables": 4, "floats_per_variable": 64 * 1024, "checkpoints": 2},
}
