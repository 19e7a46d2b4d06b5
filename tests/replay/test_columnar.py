"""Columnar traces: JSON round trip, the memory-mapped .npz file, sub-traces, and workloads
synthesized straight into columns equal to their JSON synthesizers."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from _support import TRACE_DIR

from benchmarks.workloads import (
    RECORD_OVERHEAD,
    InterleavedShards,
    RandomRecords,
    SequentialShards,
    SmallFiles,
)
from benchmarks.workloads.columns import synthesize_columns
from emulator.replay.columnar import (
    OPEN,
    from_dict,
    load_columnar,
    save_columnar,
    to_dict,
)

TRACE = {
    "config": {"block_size": 4096, "max_bytes": 8192, "max_staleness": 0},
    "stat_cache_max_age": 2,
    "objects": {"b/a": 10_000, "b/b": 5},
    "ops": [
        {"op": "open", "handle": "x", "object": "b/a"},
        {"op": "read", "handle": "x", "offset": 4000, "n": 200},
        {"op": "sleep", "seconds": 1.5},
        {"op": "stat", "object": "b/b"},
        {"op": "open", "handle": "y", "object": "b/b"},
        {"op": "read", "handle": "y", "offset": 0, "n": 0},
        {"op": "close", "handle": "x"},
        {"op": "open", "handle": "x", "object": "b/b"},
        {"op": "read", "handle": "x", "offset": 9, "n": 3},
        {"op": "sleep", "seconds": 0.25},
    ],
}


def _renamed(trace: dict) -> dict:
    """``trace`` with handles named as to_dict names them (h<id> in order of first use)."""
    ids: dict[str, str] = {}
    ops = []
    for op in trace["ops"]:
        op = dict(op)
        if "handle" in op:
            op["handle"] = ids.setdefault(op["handle"], f"h{len(ids)}")
        ops.append(op)
    return dict(trace, ops=ops)


def test_json_round_trip_keeps_every_op() -> None:
    ct = from_dict(TRACE)
    assert len(ct) == len(TRACE["ops"]) and ct.n_reads == 3
    assert ct.nbytes < 30 * len(ct) + 200
    assert to_dict(ct) == _renamed(TRACE)


def test_file_maps_columns_read_only_and_round_trips(tmp_path) -> None:
    path = tmp_path / "t.npz"
    save_columnar(from_dict(TRACE), path)
    with zipfile.ZipFile(path) as zf:  # stored, not compressed: mappable in place
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    ct = load_columnar(path)
    assert isinstance(ct.offset, np.memmap) and not ct.offset.flags.writeable
    assert to_dict(ct) == _renamed(TRACE)
    assert to_dict(load_columnar(path, mmap=False)) == _renamed(TRACE)


def test_bad_files_are_refused(tmp_path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a columnar trace"):
        load_columnar(other)
    path = tmp_path / "t.npz"
    save_columnar(from_dict(TRACE), path)
    arrays = dict(np.load(path))
    arrays["n"] = arrays["n"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="different lengths"):
        load_columnar(path)


@pytest.mark.parametrize("path", sorted(TRACE_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_suite_traces_convert_or_refuse(path) -> None:
    trace = json.loads(path.read_text())
    kinds = {op["op"] for op in trace["ops"]}
    if kinds - {"open", "read", "close", "stat", "sleep"}:
        with pytest.raises(NotImplementedError):
            from_dict(trace)
        return
    try:
        ct = from_dict(trace)
    except NotImplementedError:  # ops on objects the trace does not name
        return
    back = to_dict(ct)
    assert [o["op"] for o in back["ops"]] == [o["op"] for o in trace["ops"]]


def test_select_objects_counts_left_out_opens() -> None:
    trace = SmallFiles(files_count=10, file_size=3000, epochs=2).synthesize()
    ct = from_dict(trace)
    keep = np.zeros(10, bool)
    keep[[2, 7]] = True
    sub = ct.select_objects(keep)
    assert set(np.unique(sub.obj)) == {2, 7}
    opens = sub.kind == OPEN
    # epoch 1: 2 files before o2, 4 between o2 and o7; epoch 2: 2 after o7 + 2 before o2, 4
    assert sub.n[opens].tolist() == [2, 4, 4, 4]
    assert sorted(set(sub.handle.tolist())) == [0, 1, 2, 3]
    half = sub.select_objects(np.arange(10) == 7)  # nested: left-out opens add up
    assert half.n[half.kind == OPEN].tolist() == [7, 9]


WORKLOADS = [
    SequentialShards(shards=9, records_per_shard=30, record_size=40_000, epochs=2),
    SequentialShards(shards=1, records_per_shard=32, record_size=16 * 1024 - RECORD_OVERHEAD),
    InterleavedShards(
        shards=7, records_per_shard=41, record_size=30_000, cycle_length=3, block_length=5, epochs=3
    ),  # fmt: skip
    RandomRecords(records=60, record_size=20_000, epochs=2),
    RandomRecords(records=40, record_size=700_000, epochs=2),  # reads span several buffers
    SmallFiles(files_count=12, file_size=5_000, epochs=3),
    SmallFiles(files_count=5, file_size=2 * 2**20 + 5, epochs=2),
]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
def test_columns_synthesizers_equal_the_json_ones(workload) -> None:
    ref = from_dict(workload.synthesize())
    rng = np.random.default_rng(7)
    n = len(workload.objects())
    for keep in (None, rng.random(n) < 0.5, rng.random(n) < 0.2):
        if keep is not None and isinstance(workload, RandomRecords) and not keep.all():
            keep = np.zeros(n, bool)  # one object: all or nothing
        ct = synthesize_columns(workload, keep)
        exp = ref if keep is None else ref.select_objects(keep)
        for col in ("kind", "handle", "obj", "offset", "n"):
            assert np.array_equal(getattr(ct, col), getattr(exp, col)), col
