"""Training-input workloads: real TFRecord files, the TF program that reads them, and their traces.

A :class:`Workload` knows three things:

1. **Objects** — real files to write to the fake GCS (:meth:`Workload.files`): TFRecord shards
   (length, masked CRC32C of the length, payload, masked CRC32C of the payload — the format
   ``tf.data.TFRecordDataset`` reads), or plain small files.
2. **The TensorFlow program** that reads them the way a training input pipeline does
   (:meth:`Workload.tf_epoch_code`, one call per epoch, run in a ``TfWorker``). Recording runs it
   through the front and turns the ledger into a trace (:mod:`benchmarks.record`).
3. **A synthesized trace** (:meth:`Workload.synthesize`), the RandomAccessFile-level reads TF
   issues for that program, derived from how TF's readers work, so the same workload can be swept
   at any scale (10 GiB logically) without writing the bytes. Tests check that the synthesized
   trace equals the recorded one at small sizes.

How TF reads, as used by the synthesizers (TF 2.21; checked against recordings):
- ``TFRecordDataset(buffer_size=256 KiB)`` wraps each file in a ``BufferedInputStream`` of
  256 KiB: the filesystem sees ``Read(k * 256 KiB, 256 KiB)`` for k = 0, 1, ... in order, each
  issued only when the record being parsed needs bytes past the buffer, until a read comes back
  short (recorded: no further read at the file's size after a short read; a file whose size is
  a multiple of 256 KiB needs one more read that comes back empty) — :data:`TFRECORD_EOF_PROBE`.
- ``interleave(cycle_length, block_length)`` without parallelism: the deterministic round robin
  of ``InterleaveDataset`` (an exhausted slot is refilled from the next file when the cycle comes
  back to it).
- ``tf.io.read_file`` (``ReadFileToString``) sends NO stat here (recorded): it reads
  ``Read(k * 1 MiB, 1 MiB)`` until a read comes back short (:data:`READ_FILE_CHUNK`).
- ``tf.io.gfile.GFile`` uses a 512 KiB ``BufferedInputStream``: a ``seek`` outside the buffer
  costs a 1-byte ``Read(target - 1, 1)`` (RandomAccessInputStream::SkipNBytes probes the last
  skipped byte) and the next ``read`` fills 512 KiB from the target.

Invariants: object names are ``bucket/path``; every size is the exact byte length of what
:meth:`Workload.files` produces; synthesized traces follow docs/trace-format.md.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import google_crc32c

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
    "get_workload",
    "tfrecord_bytes",
    "workload_names",
]

KiB = 1024
MiB = 1024 * 1024

#: Bytes a TFRecord adds around each payload: 8 length + 4 CRC + 4 CRC.
RECORD_OVERHEAD = 16
#: ``tf.data.TFRecordDataset``'s default read buffer (python/data/ops/readers.py).
TFRECORD_BUFFER = 256 * KiB
#: ``tf.io.gfile.GFile``'s read buffer (python/lib/io/file_io.py).
GFILE_BUFFER = 512 * KiB
#: ``tf.io.read_file`` reads whole files in chunks of this size (recorded).
READ_FILE_CHUNK = 1 * MiB
#: Whether the TFRecord reader sends one more read at the file size after a short read.
TFRECORD_EOF_PROBE = False

_MASK_DELTA = 0xA282EAD8


_TICK = "import time as _time\n_t_last = _time.perf_counter()\n"


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    masked = (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
    return struct.pack("<I", masked)


def tfrecord_bytes(payloads: list[bytes]) -> bytes:
    """The TFRecord file holding ``payloads`` in order (uncompressed)."""
    parts = []
    for p in payloads:
        header = struct.pack("<Q", len(p))
        parts += [header, _masked_crc(header), p, _masked_crc(p)]
    return b"".join(parts)


def _payload(seed: str, index: int, size: int) -> bytes:
    return random.Random(f"{seed}|{index}").randbytes(size)


class _Trace:
    """Builds a trace: handle names, ops, object sizes."""

    def __init__(self, objects: dict[str, int]) -> None:
        self.objects = dict(objects)
        self.ops: list[dict[str, Any]] = []
        self._n = 0

    def open(self, obj: str) -> str:
        self._n += 1
        handle = f"h{self._n}"
        self.ops.append({"op": "open", "handle": handle, "object": obj})
        return handle

    def read(self, handle: str, offset: int, n: int) -> None:
        self.ops.append({"op": "read", "handle": handle, "offset": offset, "n": n})

    def close(self, handle: str) -> None:
        self.ops.append({"op": "close", "handle": handle})

    def stat(self, obj: str) -> None:
        self.ops.append({"op": "stat", "object": obj})

    def build(self) -> dict[str, Any]:
        return {"config": None, "objects": self.objects, "ops": self.ops}


class _TfRecordStream:
    """The reads a 256 KiB BufferedInputStream over one TFRecord file sends, record by record."""

    def __init__(self, trace: _Trace, obj: str, size: int, record_len: int, buffer: int) -> None:
        self.trace, self.obj, self.size = trace, obj, size
        self.record_len, self.buffer = record_len, buffer
        self.handle: str | None = None
        self.pos = 0  # bytes consumed
        self.filled = 0  # bytes buffered so far (end of the last fill)
        self.eof = False
        self.done = False

    def _need(self, end: int) -> bool:
        """Make bytes up to ``end`` available; False if EOF comes first."""
        if self.handle is None:
            self.handle = self.trace.open(self.obj)
        while self.filled < end:
            if self.eof:
                return False
            self.trace.read(self.handle, self.filled, self.buffer)
            got = max(0, min(self.buffer, self.size - self.filled))
            self.filled += got
            if got < self.buffer and (got == 0 or not TFRECORD_EOF_PROBE):
                self.eof = True
        return True

    def next_record(self) -> bool:
        """Consume one record; False (and the handle closed) at end of file."""
        if self.done:
            return False
        if self.pos + self.record_len <= self.size and self._need(self.pos + self.record_len):
            self.pos += self.record_len
            return True
        if not self.eof:
            self._need(self.pos + 12)  # header read at EOF → fills until a fill comes back empty
        self.done = True
        if self.handle is not None:
            self.trace.close(self.handle)
        return False


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


#: TfWorker code that counts the records of dataset ``ds`` (the tail of a shard epoch).
_COUNT_RECORDS = (
    "count = 0\n"
    "for _rec in ds:\n"
    "    count += 1\n"
    "    _t_last = _time.perf_counter()\n"
    "result = count\n"
)


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
        return f"{_TICK}ds = tf.data.TFRecordDataset({self._gs_paths()!r})\n" + _COUNT_RECORDS

    def synthesize(self) -> dict[str, Any]:
        return _interleave_trace(self.objects(), self.record_size, 1, 1, self.epochs)


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
        return (
            f"{_TICK}ds = tf.data.Dataset.from_tensor_slices({self._gs_paths()!r})\n"
            "ds = ds.interleave(tf.data.TFRecordDataset,"
            f" cycle_length={self.cycle_length}, block_length={self.block_length})\n"
            + _COUNT_RECORDS
        )

    def synthesize(self) -> dict[str, Any]:
        return _interleave_trace(
            self.objects(), self.record_size, self.cycle_length, self.block_length, self.epochs
        )


def _interleave_trace(
    objects: dict[str, int], record_size: int, cycle: int, block: int, epochs: int
) -> dict[str, Any]:
    """Reads of ``InterleaveDataset(TFRecordDataset)`` over ``objects`` (in order), all epochs."""
    trace = _Trace(objects)
    record_len = record_size + RECORD_OVERHEAD
    names = list(objects)
    for _epoch in range(epochs):
        pending = iter(names)
        slots: list[_TfRecordStream | None] = [None] * cycle
        end_of_input = False
        num_open = 0
        idx = 0
        block_index = 0
        while not end_of_input or num_open > 0:
            cur = slots[idx]
            if cur is not None:
                if cur.next_record():
                    block_index += 1
                    if block_index == block:
                        block_index = 0
                        idx = (idx + 1) % cycle
                    continue
                slots[idx] = None
                num_open -= 1
                block_index = 0
                idx = (idx + 1) % cycle
            elif not end_of_input:
                name = next(pending, None)
                if name is None:
                    end_of_input = True
                else:
                    slots[idx] = _TfRecordStream(
                        trace, name, objects[name], record_len, TFRECORD_BUFFER
                    )
                    num_open += 1
            else:
                block_index = 0
                idx = (idx + 1) % cycle
    return trace.build()


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
        return (
            f"{_TICK}f = tf.io.gfile.GFile({'gs://' + self._name()!r}, 'rb')\n"
            "total = 0\n"
            "for off in offsets:\n"
            "    f.seek(off)\n"
            f"    total += len(f.read({self.record_size}))\n"
            "    _t_last = _time.perf_counter()\n"
            "f.close()\n"
            "result = total\n"
        )

    def synthesize(self) -> dict[str, Any]:
        obj = self._name()
        size = self.objects()[obj]
        trace = _Trace(self.objects())
        for epoch in range(self.epochs):
            handle = trace.open(obj)
            stream = _GFileStream(trace, handle, size, GFILE_BUFFER)
            for off in self.offsets(epoch):
                stream.seek(off)
                stream.read(self.record_size)
            trace.close(handle)
        return trace.build()


class _GFileStream:
    """The RandomAccessFile reads of TF's BufferedInputStream over RandomAccessInputStream."""

    def __init__(self, trace: _Trace, handle: str, size: int, buffer: int) -> None:
        self.trace, self.handle, self.size, self.buffer = trace, handle, size, buffer
        self.under = 0  # underlying RandomAccessInputStream position
        self.buf_start = 0
        self.limit = 0  # bytes in the buffer
        self.pos = 0  # position inside the buffer
        self.eof = False  # file_status_ is OUT_OF_RANGE

    def tell(self) -> int:
        return self.under - (self.limit - self.pos)

    def _skip_under(self, n: int) -> None:
        if n > 0:
            self.trace.read(self.handle, self.under + n - 1, 1)
            if self.under + n - 1 < self.size:
                self.under += n
                return
            # past EOF: TF then reads in chunks; not needed by these workloads
            raise NotImplementedError("seek past end of file")

    def seek(self, target: int) -> None:
        lower = self.under - self.limit
        if target < lower:
            self.under, self.pos, self.limit, self.eof = 0, 0, 0, False
            self._skip(target)
        elif target < self.tell():
            self.pos -= self.tell() - target
        else:
            self._skip(target - self.tell())

    def _skip(self, n: int) -> None:
        if self.pos + n < self.limit:
            self.pos += n
            return
        self._skip_under(n - (self.limit - self.pos))
        self.pos = self.limit = 0

    def read(self, n: int) -> int:
        got = 0
        while got < n:
            if self.pos == self.limit:
                if self.eof:
                    break
                self.trace.read(self.handle, self.under, self.buffer)
                filled = max(0, min(self.buffer, self.size - self.under))
                self.under += filled
                self.pos, self.limit = 0, filled
                if filled == 0:
                    self.eof = True
                    break
            take = min(self.limit - self.pos, n - got)
            self.pos += take
            got += take
        return got


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
        return (
            "import os\n"
            "vs = {f'v{i}': tf.Variable(tf.random.stateless_uniform("
            f"[{self.floats_per_variable}], seed=[i, 7])) for i in range({self.variables})}}\n"
            "ckpt = tf.train.Checkpoint(**vs)\n"
            "prefix = ckpt.write(os.path.join(outdir, 'ckpt'))\n"
            "result = sorted(os.listdir(outdir))\n"
        )

    def tf_epoch_code(self) -> str:
        return (
            _TICK + "vs = {f'v{i}': tf.Variable(tf.zeros("
            f"[{self.floats_per_variable}])) for i in range({self.variables})}}\n"
            "ckpt = tf.train.Checkpoint(**vs)\n"
            f"ckpt.read({'gs://' + self.bucket + '/ckpt/ckpt'!r}).assert_consumed()\n"
            "_t_last = _time.perf_counter()\n"
            "result = float(sum(float(tf.reduce_sum(v)) for v in vs.values()))\n"
        )


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
        files = ["gs://" + n for n in self._names()]
        return (
            # one file after another (a tf.data map would be parallelized by tf.data's
            # map_parallelization and make the request order nondeterministic)
            f"{_TICK}total = 0\nfor _f in {files!r}:\n"
            "    total += int(tf.strings.length(tf.io.read_file(_f)))\n"
            "    _t_last = _time.perf_counter()\n"
            "result = total\n"
        )

    def synthesize(self) -> dict[str, Any]:
        trace = _Trace(self.objects())
        for _epoch in range(self.epochs):
            for name, size in self.objects().items():
                handle = trace.open(name)
                pos = 0
                while True:
                    trace.read(handle, pos, READ_FILE_CHUNK)
                    got = max(0, min(READ_FILE_CHUNK, size - pos))
                    pos += got
                    if got < READ_FILE_CHUNK:
                        break
                trace.close(handle)
        return trace.build()


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
}
