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

This module holds the definitions (parameters, object names and sizes), the registry
:data:`WORKLOADS` and the scales :data:`SWEEP_SCALE` / :data:`MEASURE_SCALE`.

Invariants: object names are ``bucket/path``; every size is the exact byte length of what
:meth:`Workload.files` produces; synthesized traces follow docs/trace-format.md.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.workloads.files import RECORD_OVERHEAD, tfrecord_bytes
from benchmarks.workloads.files import payload as _payload
from benchmarks.workloads.synth import (
    GFILE_BUFFER,
    READ_FILE_CHUNK,
    TFRECORD_BUFFER,
    TFRECORD_EOF_PROBE,
    gfile_random_trace,
    interleave_trace,
    read_files_trace,
)
from benchmarks.workloads.tf_programs import (
    checkpoint_read_code,
    checkpoint_write_code,
    gfile_random_code,
    interleave_code,
    read_files_code,
    tfrecord_dataset_code,
)

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

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """Base class; subclasses are frozen dataclasses whose fields are the workload's parameters."""

    name: str = ""
    bucket: str = "tune"
    epochs: int = 2

    description = ""
    #: how :mod:`benchmarks.record` assigns handles to recorded reads (see there)
    recorded_handles = "per-object"

    def objects(self) -> dict[str, int]:
        """Object name (``bucket/path``) → size in bytes."""
        raise NotImplementedError

    def files(self) -> Iterator[tuple[str, bytes]]:
        """(object name, content) for every object, the real bytes written to the fake GCS."""
        raise NotImplementedError

    def tf_epoch_code(self) -> str:
        """Python run inside a TfWorker (``tf`` imported) that reads the data for one epoch.

        Variables: ``epoch`` (int, 0-based). Sets ``result`` to a small JSON-able summary and
        ``_t_last`` to ``time.perf_counter()`` when the last element/read was delivered (what
        measured runs time: tf.data sometimes idles ~1 s after the last element before it
        reports the end of the sequence, which is not GCS time).
        """
        raise NotImplementedError

    def synthesize(self) -> dict[str, Any]:
        """The trace (trace-format dict, ``config`` null) of all epochs, without TF."""
        raise NotImplementedError(f"workload {self.name!r} is recorded only (no synthesizer)")

    @property
    def can_synthesize(self) -> bool:
        return type(self).synthesize is not Workload.synthesize

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "name"}

    def logical_bytes(self) -> int:
        return sum(self.objects().values())

    def with_params(self, **kw: Any) -> Workload:
        return replace(self, **kw)


def _shard_names(bucket: str, prefix: str, shards: int) -> list[str]:
    return [f"{bucket}/{prefix}/shard-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]


@dataclass(frozen=True)
class _TFRecordShards(Workload):
    """Base of the shard workloads: ``shards`` TFRecord files under ``bucket/<_prefix>/``, each
    ``records_per_shard`` records of ``record_size`` payload bytes (subclasses set defaults)."""

    shards: int = 4
    records_per_shard: int = 64
    record_size: int = 16 * KiB
    _prefix = ""  # class attribute, not a field

    def _names(self) -> list[str]:
        return _shard_names(self.bucket, self._prefix, self.shards)

    def _gs_paths(self) -> list[str]:
        return ["gs://" + n for n in self._names()]

    def objects(self) -> dict[str, int]:
        size = self.records_per_shard * (self.record_size + RECORD_OVERHEAD)
        return {n: size for n in self._names()}

    def files(self) -> Iterator[tuple[str, bytes]]:
        for name in self._names():
            payloads = [_payload(name, i, self.record_size) for i in range(self.records_per_shard)]
            yield name, tfrecord_bytes(payloads)


@dataclass(frozen=True)
class SequentialShards(_TFRecordShards):
    """TFRecord shards read in order by ``tf.data.TFRecordDataset``, for several epochs."""

    name: str = "tfrecord-epochs"
    shards: int = 4
    records_per_shard: int = 64
    record_size: int = 16 * KiB
    description = "TFRecord shards read sequentially by tf.data.TFRecordDataset, several epochs"
    _prefix = "seq"

    def tf_epoch_code(self) -> str:
        return tfrecord_dataset_code(self._gs_paths())

    def synthesize(self) -> dict[str, Any]:
        record_len = self.record_size + RECORD_OVERHEAD
        return interleave_trace(self.objects(), record_len, 1, 1, self.epochs)


@dataclass(frozen=True)
class InterleavedShards(_TFRecordShards):
    """``tf.data`` interleave over N TFRecord shards (cycle_length, block_length), no parallelism."""

    name: str = "interleave"
    shards: int = 8
    records_per_shard: int = 48
    record_size: int = 8 * KiB
    cycle_length: int = 4
    block_length: int = 2
    description = "tf.data interleave over N TFRecord shards (cycle_length, block_length)"
    _prefix = "inter"

    def tf_epoch_code(self) -> str:
        return interleave_code(self._gs_paths(), self.cycle_length, self.block_length)

    def synthesize(self) -> dict[str, Any]:
        record_len = self.record_size + RECORD_OVERHEAD
        return interleave_trace(
            self.objects(), record_len, self.cycle_length, self.block_length, self.epochs
        )


@dataclass(frozen=True)
class RandomRecords(Workload):
    """Shuffled random access to fixed-size records of one file via ``tf.io.gfile.GFile``.

    Each epoch opens the file, visits every record once in a seeded random order, and for each
    does ``seek(record payload offset)`` + ``read(record_size)``.
    """

    name: str = "random-records"
    records: int = 256
    record_size: int = 4 * KiB
    seed: int = 0
    epochs: int = 2
    description = "shuffled random access to records of a given size (GFile seek + read)"

    def _name(self) -> str:
        return f"{self.bucket}/random/records.tfrecord"

    def objects(self) -> dict[str, int]:
        return {self._name(): self.records * (self.record_size + RECORD_OVERHEAD)}

    def files(self) -> Iterator[tuple[str, bytes]]:
        name = self._name()
        yield (
            name,
            tfrecord_bytes([_payload(name, i, self.record_size) for i in range(self.records)]),
        )

    def order(self, epoch: int) -> list[int]:
        idx = list(range(self.records))
        random.Random(f"{self.seed}|{epoch}").shuffle(idx)
        return idx

    def offsets(self, epoch: int) -> list[int]:
        step = self.record_size + RECORD_OVERHEAD
        return [i * step + 12 for i in self.order(epoch)]

    def tf_epoch_code(self) -> str:
        # the offsets are passed in by the recorder as the variable ``offsets``
        return gfile_random_code("gs://" + self._name(), self.record_size)

    def synthesize(self) -> dict[str, Any]:
        obj = self._name()
        epoch_offsets = (self.offsets(epoch) for epoch in range(self.epochs))
        return gfile_random_trace(obj, self.objects()[obj], self.record_size, epoch_offsets)


@dataclass(frozen=True)
class CheckpointRestore(Workload):
    """Checkpoint restore: TF restores ``variables`` float32 variables from one large data file.

    Recorded only: the checkpoint is written by TF itself (locally, then uploaded), and restore
    reads the ``.index`` table and the variables from the ``.data`` file through TF's bundle
    reader. Sizes of the objects are known after writing (:meth:`objects` is filled in then).
    """

    name: str = "checkpoint-restore"
    variables: int = 16
    floats_per_variable: int = 64 * 1024
    epochs: int = 1
    description = "checkpoint restore: one large file, many variable reads (tf.train.Checkpoint)"
    recorded_handles = "switch"
    sizes: dict[str, int] = field(default_factory=dict, compare=False)

    def objects(self) -> dict[str, int]:
        return dict(self.sizes)

    def logical_bytes(self) -> int:
        return self.variables * self.floats_per_variable * 4

    def tf_write_code(self) -> str:
        """Run in the worker with variable ``outdir``: writes the checkpoint, returns its files."""
        return checkpoint_write_code(self.variables, self.floats_per_variable)

    def tf_epoch_code(self) -> str:
        prefix = "gs://" + self.bucket + "/ckpt/ckpt"
        return checkpoint_read_code(prefix, self.variables, self.floats_per_variable)


@dataclass(frozen=True)
class SmallFiles(Workload):
    """Many small files, each read whole by ``tf.io.read_file``: request-latency bound; with the
    block cache on every read also stats through the stat cache (metadata requests)."""

    name: str = "small-files"
    files_count: int = 64
    file_size: int = 2 * KiB
    description = "many small files read whole with tf.io.read_file (stat-cache bound)"

    def _names(self) -> list[str]:
        return [f"{self.bucket}/small/file-{i:05d}.bin" for i in range(self.files_count)]

    def objects(self) -> dict[str, int]:
        return {n: self.file_size for n in self._names()}

    def files(self) -> Iterator[tuple[str, bytes]]:
        for i, name in enumerate(self._names()):
            yield name, _payload(name, i, self.file_size)

    def tf_epoch_code(self) -> str:
        return read_files_code(["gs://" + n for n in self._names()])

    def synthesize(self) -> dict[str, Any]:
        return read_files_trace(self.objects(), self.epochs)


#: The workloads ``gcs-hook tune --workload NAME`` knows, at their default (small) sizes.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        SequentialShards(),
        InterleavedShards(),
        RandomRecords(),
        CheckpointRestore(),
        SmallFiles(),
    )
}
# + "tensorboard" and "checkpoint-poller", registered by benchmarks.workloads.live (imported at
# the end of this module)


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


# live workloads (files that change while they are read): their module registers them here
import benchmarks.workloads.live  # noqa: E402, F401
from benchmarks.workloads.limits import SCALE_LIMITS, check_scale  # noqa: E402 (re-export)
