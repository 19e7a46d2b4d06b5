"""The built-in workloads whose files do not change while they are read: TFRecord shards read
in order or interleaved, random records, a checkpoint restore, many small files.

Each is a frozen dataclass whose fields are its parameters (defaults: small sizes); the registry
is :data:`benchmarks.workloads.WORKLOADS`. Invariant: :meth:`~Workload.synthesize` gives the
RandomAccessFile reads a recording gives (tests/tune/test_workloads.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workloads.base import TFRecordShards, Workload
from benchmarks.workloads.files import RECORD_OVERHEAD, tfrecord_bytes
from benchmarks.workloads.files import payload as file_payload
from benchmarks.workloads.synth import gfile_random_trace, interleave_trace, read_files_trace
from benchmarks.workloads.tf_programs import (
    checkpoint_read_code,
    checkpoint_write_code,
    gfile_random_code,
    interleave_code,
    read_files_code,
    tfrecord_dataset_code,
)
from gcs_hook.units import KiB

__all__ = [
    "CheckpointRestore",
    "InterleavedShards",
    "RandomRecords",
    "SequentialShards",
    "SmallFiles",
]


@dataclass(frozen=True)
class SequentialShards(TFRecordShards):
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
class InterleavedShards(TFRecordShards):
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
            tfrecord_bytes([file_payload(name, i, self.record_size) for i in range(self.records)]),
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
            yield name, file_payload(name, i, self.file_size)

    def tf_epoch_code(self) -> str:
        return read_files_code(["gs://" + n for n in self._names()])

    def synthesize(self) -> dict[str, Any]:
        return read_files_trace(self.objects(), self.epochs)
