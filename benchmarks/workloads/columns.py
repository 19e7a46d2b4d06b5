"""Workload traces synthesized straight into columns, optionally for a subset of the objects.

:func:`synthesize_columns` returns the same trace as ``Workload.synthesize()`` (tests check
``to_dict`` equality up to handle names) as a :class:`~emulator.replay.columnar.ColumnarTrace`,
without one Python object per read:

- TFRecord shards (``tfrecord-epochs``, ``interleave``): one shard's reads are a template
  (taken from the reference :class:`~benchmarks.workloads.synth.TfRecordStream`, per record
  consumed); a compiled loop (numba) replays ``InterleaveDataset``'s round robin over the shards
  and writes each kept shard's template ops straight into preallocated columns, epoch after
  epoch. Memory: the output columns (25 bytes per op) and nothing per read besides.
- ``small-files``: numpy (each file is open, ``size // 1 MiB + 1`` reads, close).
- ``random-records``: a compiled copy of the reference GFile stream, one epoch at a time.

``keep`` (a bool per object, in ``objects()`` order) leaves out the ops of the other objects:
that is how sampled sweeps synthesize only their sample, in the order the full trace has them;
handles are then numbered among the kept objects' opens, and each kept open's ``n`` counts the
opens left out since the previous kept open (as ``ColumnarTrace.select_objects`` does).

Invariant: ``synthesize_columns(w, keep)`` equals ``from_dict(w.synthesize()).select_objects(keep)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from benchmarks.workloads.files import RECORD_OVERHEAD
from benchmarks.workloads.synth import (
    GFILE_BUFFER,
    READ_FILE_CHUNK,
    TFRECORD_BUFFER,
    TfRecordStream,
    TraceBuilder,
)
from emulator.replay.columnar import CLOSE, OPEN, READ, ColumnarTrace, from_dict

__all__ = ["estimated_reads", "synthesize_columns"]


def synthesize_columns(workload: Any, keep: np.ndarray | None = None) -> ColumnarTrace:
    """The workload's synthesized trace as columns, restricted to ``keep`` if given."""
    from benchmarks.workloads.builtin import (
        InterleavedShards,
        RandomRecords,
        SequentialShards,
        SmallFiles,
    )

    objects = workload.objects()
    if keep is None:
        keep = np.ones(len(objects), bool)
    keep = np.asarray(keep, bool)
    if isinstance(workload, SequentialShards):
        return _shards(workload, objects, keep, 1, 1)
    if isinstance(workload, InterleavedShards):
        return _shards(workload, objects, keep, workload.cycle_length, workload.block_length)
    if isinstance(workload, SmallFiles):
        return _read_files(objects, keep, workload.epochs)
    if isinstance(workload, RandomRecords):
        return _random_records(workload, objects, keep)
    return from_dict(workload.synthesize()).select_objects(keep)


# --------------------------------------------------------------------------- TFRecord shards


def _shard_template(size: int, record_len: int) -> tuple[np.ndarray, ...]:
    """One shard's ops per ``next_record`` call: (call starts, kinds, offsets, ns, records)."""
    tb = TraceBuilder({"x": size})
    stream = TfRecordStream(tb, "x", size, record_len, TFRECORD_BUFFER)
    starts = [0]
    records = 0
    while stream.next_record():
        records += 1
        starts.append(len(tb.ops))
    starts.append(len(tb.ops))
    kinds = {"open": OPEN, "read": READ, "close": CLOSE}
    tkind = np.array([kinds[o["op"]] for o in tb.ops], np.uint8)
    toff = np.array([o.get("offset", 0) for o in tb.ops], np.int64)
    tn = np.array([o.get("n", 0) for o in tb.ops], np.int64)
    return np.array(starts, np.int64), tkind, toff, tn, np.int64(records)


@njit(cache=True)
def _interleave_emit(
    n_files, keep, records, tstart, tkind, toff, tn, cycle, block, epochs,
    out_kind, out_handle, out_obj, out_off, out_n,
):  # fmt: skip
    """InterleaveDataset's round robin (see workloads_synth.interleave_trace) over identical
    shards; writes the kept shards' template ops into the ``out_*`` columns; returns the count."""
    pos = 0
    next_handle = 0
    left_out = 0  # opens of shards not kept since the last kept open
    slot_file = np.empty(cycle, np.int64)
    slot_call = np.empty(cycle, np.int64)
    slot_handle = np.empty(cycle, np.int64)
    for _epoch in range(epochs):
        slot_file[:] = -1
        pending = 0
        end_of_input = False
        num_open = 0
        idx = 0
        block_index = 0
        while (not end_of_input) or num_open > 0:
            f = slot_file[idx]
            if f >= 0:
                j = slot_call[idx]
                for q in range(tstart[j], tstart[j + 1]):
                    k = tkind[q]
                    if keep[f]:
                        out_n[pos] = tn[q]
                        if k == 0:  # open
                            slot_handle[idx] = next_handle
                            next_handle += 1
                            out_n[pos] = left_out
                            left_out = 0
                        out_kind[pos] = k
                        out_handle[pos] = slot_handle[idx]
                        out_obj[pos] = f
                        out_off[pos] = toff[q]
                        pos += 1
                    elif k == 0:
                        left_out += 1
                slot_call[idx] = j + 1
                if j < records:
                    block_index += 1
                    if block_index == block:
                        block_index = 0
                        idx = (idx + 1) % cycle
                    continue
                slot_file[idx] = -1
                num_open -= 1
                block_index = 0
                idx = (idx + 1) % cycle
            elif not end_of_input:
                if pending >= n_files:
                    end_of_input = True
                else:
                    slot_file[idx] = pending
                    slot_call[idx] = 0
                    pending += 1
                    num_open += 1
            else:
                block_index = 0
                idx = (idx + 1) % cycle
    return pos


def _shards(workload: Any, objects: dict[str, int], keep: np.ndarray, cycle: int, block: int):
    sizes = list(objects.values())
    if len(set(sizes)) > 1:  # not produced by the built-in workloads; reference path
        return from_dict(workload.synthesize()).select_objects(keep)
    record_len = workload.record_size + RECORD_OVERHEAD
    tstart, tkind, toff, tn, records = _shard_template(sizes[0] if sizes else 0, record_len)
    total = int(keep.sum()) * workload.epochs * int(tkind.size)
    cols = {
        "kind": np.empty(total, np.uint8),
        "handle": np.empty(total, np.int32),
        "obj": np.empty(total, np.int32),
        "offset": np.empty(total, np.int64),
        "n": np.empty(total, np.int64),
    }
    count = _interleave_emit(
        len(sizes), keep, records, tstart, tkind, toff, tn, cycle, block, workload.epochs,
        cols["kind"], cols["handle"], cols["obj"], cols["offset"], cols["n"],
    )  # fmt: skip
    if count != total:
        raise AssertionError(f"interleave synthesized {count} ops, expected {total}")
    return ColumnarTrace(names=list(objects), sizes=np.array(sizes, np.int64), **cols)


# --------------------------------------------------------------------------- small files


def _read_files(objects: dict[str, int], keep: np.ndarray, epochs: int) -> ColumnarTrace:
    """``tf.io.read_file`` of every kept object, each epoch: open, reads of 1 MiB until one
    comes back short, close."""
    sizes = np.array(list(objects.values()), np.int64)
    ids = np.flatnonzero(keep).astype(np.int32)
    reads = sizes[ids] // READ_FILE_CHUNK + 1  # the last read comes back short (maybe empty)
    per_file = reads + 2
    one_epoch = int(per_file.sum())
    starts = np.concatenate([[0], np.cumsum(per_file)[:-1]])
    kind = np.full(one_epoch, READ, np.uint8)
    kind[starts] = OPEN
    kind[starts + per_file - 1] = CLOSE
    obj = np.repeat(ids, per_file)
    local = np.arange(one_epoch) - np.repeat(starts, per_file)  # 0 open, 1.. reads
    offset = np.where(kind == READ, (local - 1) * READ_FILE_CHUNK, 0).astype(np.int64)
    n = np.where(kind == READ, READ_FILE_CHUNK, 0).astype(np.int64)
    handle_one = np.repeat(np.arange(ids.size, dtype=np.int32), per_file)
    n_all = np.tile(n, epochs)
    if ids.size < sizes.size:  # an open's n: the files left out since the previous kept open
        position = (np.arange(epochs)[:, None] * sizes.size + ids[None, :]).ravel()
        gaps = np.diff(np.concatenate([[-1], position])) - 1
        n_all[np.flatnonzero(np.tile(kind, epochs) == OPEN)] = gaps
    return ColumnarTrace(
        names=list(objects),
        sizes=sizes,
        kind=np.tile(kind, epochs),
        handle=np.concatenate([handle_one + e * ids.size for e in range(epochs)]).astype(np.int32),
        obj=np.tile(obj, epochs),
        offset=np.tile(offset, epochs),
        n=n_all,
    )


# --------------------------------------------------------------------------- random records


@njit(cache=True)
def _gfile_emit(size, buffer, record_size, offsets, out_off, out_n, start):
    """One epoch of ``GFile``: ``seek(off)`` + ``read(record_size)`` per offset — the reads of
    :class:`~benchmarks.workloads.synth.GFileStream`, written from ``out[start]`` on; returns
    the next free row, or -1 for a seek past the end of the file (not modelled)."""
    pos_out = start
    under = 0  # the underlying RandomAccessInputStream's position
    limit = 0  # bytes in the buffer
    pos = 0  # position inside the buffer
    eof = False
    for t in range(offsets.shape[0]):
        target = offsets[t]
        # seek
        lower = under - limit
        tell = under - (limit - pos)
        skip = -1
        if target < lower:
            under = 0
            pos = 0
            limit = 0
            eof = False
            skip = target
        elif target < tell:
            pos -= tell - target
        else:
            skip = target - tell
        if skip >= 0:
            if pos + skip < limit:
                pos += skip
            else:
                m = skip - (limit - pos)
                if m > 0:
                    out_off[pos_out] = under + m - 1
                    out_n[pos_out] = 1
                    pos_out += 1
                    if under + m - 1 >= size:
                        return -1
                    under += m
                pos = 0
                limit = 0
        # read
        got = 0
        while got < record_size:
            if pos == limit:
                if eof:
                    break
                out_off[pos_out] = under
                out_n[pos_out] = buffer
                pos_out += 1
                filled = max(0, min(buffer, size - under))
                under += filled
                pos = 0
                limit = filled
                if filled == 0:
                    eof = True
                    break
            take = min(limit - pos, record_size - got)
            pos += take
            got += take
    return pos_out


def _random_records(workload: Any, objects: dict[str, int], keep: np.ndarray) -> ColumnarTrace:
    """One GFile per epoch over the one object (compiled; numpy rows for open and close)."""
    names = list(objects)
    sizes = np.array(list(objects.values()), np.int64)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in ("kind", "handle", "obj", "offset", "n")}
    if keep.all():
        size = int(sizes[0])
        worst = 2 + (workload.record_size // GFILE_BUFFER + 3) * workload.records
        for epoch in range(workload.epochs):
            offsets = np.array(workload.offsets(epoch), np.int64)
            off = np.zeros(worst, np.int64)
            n = np.zeros(worst, np.int64)
            end = _gfile_emit(size, GFILE_BUFFER, workload.record_size, offsets, off, n, 1)
            if end < 0:
                raise NotImplementedError("seek past end of file")
            rows = end + 1  # open, reads, close
            kind = np.full(rows, READ, np.uint8)
            kind[0], kind[-1] = OPEN, CLOSE
            off[0] = off[rows - 1] = n[0] = n[rows - 1] = 0
            parts["kind"].append(kind)
            parts["handle"].append(np.full(rows, epoch, np.int32))
            parts["obj"].append(np.zeros(rows, np.int32))
            parts["offset"].append(off[:rows].copy())
            parts["n"].append(n[:rows].copy())
    dtypes = {"kind": np.uint8, "handle": np.int32, "obj": np.int32, "offset": np.int64,
              "n": np.int64}  # fmt: skip
    cols = {c: (np.concatenate(p) if p else np.zeros(0, dtypes[c])) for c, p in parts.items()}
    return ColumnarTrace(names=names, sizes=sizes, **cols)


def estimated_reads(workload: Any) -> np.ndarray:
    """Per object (``objects()`` order), the reads of the full trace, all epochs — exact for
    the shard workloads and small-files, computed without synthesizing the trace."""
    from benchmarks.workloads.builtin import (
        InterleavedShards,
        RandomRecords,
        SequentialShards,
        SmallFiles,
    )

    objects = workload.objects()
    sizes = np.array(list(objects.values()), np.int64)
    shards = isinstance(workload, SequentialShards | InterleavedShards)
    if shards and len(set(sizes.tolist())) <= 1:
        record_len = workload.record_size + RECORD_OVERHEAD
        _, tkind, _, _, _ = _shard_template(int(sizes[0]) if sizes.size else 0, record_len)
        per_file = int(np.count_nonzero(tkind == READ))
        return np.full(sizes.size, per_file * workload.epochs, np.int64)
    if isinstance(workload, SmallFiles):
        return (sizes // READ_FILE_CHUNK + 1) * workload.epochs
    if isinstance(workload, RandomRecords):
        return np.full(sizes.size, 2 * workload.records * workload.epochs, np.int64)
    ct = synthesize_columns(workload)
    reads = ct.kind == READ
    return np.bincount(ct.obj[reads], minlength=sizes.size).astype(np.int64)
