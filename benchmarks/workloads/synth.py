"""Synthesized traces: the RandomAccessFile-level reads TF issues for each workload, without TF.

Derived from how TF's readers work, so a workload can be swept at any scale without writing its
bytes; tests check that the synthesized trace equals the recorded one at small sizes.

How TF reads, as used here (TF 2.21; checked against recordings):
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

Invariants: traces follow docs/trace-format.md with ``config`` null; handles are ``h1, h2, ...``
in order of opening; every read is issued by an open handle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gcs_hook.units import KiB, MiB

__all__ = [
    "GFILE_BUFFER",
    "READ_FILE_CHUNK",
    "TFRECORD_BUFFER",
    "TFRECORD_EOF_PROBE",
    "TraceBuilder",
    "gfile_random_trace",
    "interleave_trace",
    "read_files_trace",
]


#: ``tf.data.TFRecordDataset``'s default read buffer (python/data/ops/readers.py).
TFRECORD_BUFFER = 256 * KiB
#: ``tf.io.gfile.GFile``'s read buffer (python/lib/io/file_io.py).
GFILE_BUFFER = 512 * KiB
#: ``tf.io.read_file`` reads whole files in chunks of this size (recorded).
READ_FILE_CHUNK = 1 * MiB
#: Whether the TFRecord reader sends one more read at the file size after a short read.
TFRECORD_EOF_PROBE = False


class TraceBuilder:
    """Builds a trace: handle names, ops, object sizes."""

    def __init__(self, objects: Mapping[str, int]) -> None:
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


class TfRecordStream:
    """The reads a 256 KiB BufferedInputStream over one TFRecord file sends, record by record."""

    def __init__(
        self, trace: TraceBuilder, obj: str, size: int, record_len: int, buffer: int
    ) -> None:
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


def interleave_trace(
    objects: Mapping[str, int], record_len: int, cycle: int, block: int, epochs: int
) -> dict[str, Any]:
    """Reads of ``InterleaveDataset(TFRecordDataset)`` over ``objects`` (in order), all epochs;
    ``record_len`` is a whole record's length (payload + overhead). ``cycle = block = 1`` is a
    plain ``TFRecordDataset`` over the files in order."""
    trace = TraceBuilder(objects)
    names = list(objects)
    for _epoch in range(epochs):
        pending = iter(names)
        slots: list[TfRecordStream | None] = [None] * cycle
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
                    slots[idx] = TfRecordStream(
                        trace, name, objects[name], record_len, TFRECORD_BUFFER
                    )
                    num_open += 1
            else:
                block_index = 0
                idx = (idx + 1) % cycle
    return trace.build()


class GFileStream:
    """The RandomAccessFile reads of TF's BufferedInputStream over RandomAccessInputStream."""

    def __init__(self, trace: TraceBuilder, handle: str, size: int, buffer: int) -> None:
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


def gfile_random_trace(
    obj: str, size: int, record_size: int, epoch_offsets: Iterable[list[int]]
) -> dict[str, Any]:
    """One ``GFile`` per epoch: ``seek(off)`` + ``read(record_size)`` for each offset."""
    trace = TraceBuilder({obj: size})
    for offsets in epoch_offsets:
        handle = trace.open(obj)
        stream = GFileStream(trace, handle, size, GFILE_BUFFER)
        for off in offsets:
            stream.seek(off)
            stream.read(record_size)
        trace.close(handle)
    return trace.build()


def read_files_trace(objects: Mapping[str, int], epochs: int) -> dict[str, Any]:
    """``tf.io.read_file`` of every object in order, each epoch."""
    trace = TraceBuilder(objects)
    for _epoch in range(epochs):
        for name, size in objects.items():
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
