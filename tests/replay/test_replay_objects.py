"""Issue 11 finding 4: replay objects are created lazily — never built whole up front, and in
the fake GCS only when an op can observe them (real TF on such a trace:
tests/replay/test_replay_compare.py, ``LAZY_TRACE``)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from emulator.replay import replay
from emulator.replay.isolation import Isolation
from emulator.replay.objects import (
    MAX_UPLOAD_BYTES,
    LazyObjectTransport,
    TraceObject,
    content_range,
    write_plan,
)
from emulator.replay.trace import object_content
from gcs_hook.cli import app

MiB = 1024 * 1024
HUGE = 10**10  # 10 GB: a MemoryError if anything builds it


@given(
    size=st.integers(0, 2000),
    start=st.integers(0, 2100),
    n=st.integers(0, 300),
    version=st.integers(1, 3),
)
def test_content_range_is_the_slice_of_the_whole_object(size, start, n, version):
    full = object_content("b/o.bin", version, size)
    assert content_range("b/o.bin", version, size, start, n) == full[start : start + n]


def _read_trace(size: int, offset: int) -> dict:
    return replay.load_replay_trace(
        {
            "config": {"block_size": MiB, "max_bytes": 4 * MiB, "max_staleness": 0},
            "objects": {"b/unread.bin": HUGE, "b/read.bin": size},
            "ops": [
                {"op": "open", "handle": "h", "object": "b/read.bin"},
                {"op": "read", "handle": "h", "offset": offset, "n": 100},
            ],
        }
    )


def test_model_engine_reads_a_small_range_of_a_huge_object_without_building_it():
    trace = _read_trace(HUGE, 5 * 10**9)
    tracemalloc.start()
    try:
        result = replay.run_model(trace)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * MiB  # one 1 MiB block and its digests, not 10 GB
    block = 5 * 10**9 // MiB * MiB
    assert result["requests"] == [
        {"kind": "metadata", "object": "b/read.bin"},
        {"kind": "media", "object": "b/read.bin", "range": [block, block + MiB - 1]},
    ]
    expected = content_range("b/read.bin", 1, HUGE, 5 * 10**9, 100)
    assert result["reads"][0]["sha256"] == hashlib.sha256(expected).hexdigest()
    assert result["reads"][0]["returned"] == 100


def test_lazy_model_engine_equals_the_byte_building_store_on_small_objects():
    """Same requests and bytes as when the store held every object's bytes."""
    from emulator.model.transport import MemoryTransport
    from emulator.replay.simulation import run_trace

    for seed in range(40):
        trace = replay.random_trace(seed)
        lazy = replay.run_model(trace)
        eager = run_trace(trace, replay_fs(trace, MemoryTransport()), engine="model").to_dict()
        assert replay.compare(lazy, {"engine": "eager", **eager}) is None, seed


def replay_fs(trace, transport):
    from emulator.model.clock import VirtualClock
    from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig

    age = trace.get("stat_cache_max_age")
    return GcsFilesystemModel(
        transport,
        trace.get("config"),
        stat_cache_max_age=5 if age is None else age,
        clock=VirtualClock(replay.TRACE_START_FRACTION),
        retry=RetryConfig(init_delay_us=0),
    )


def test_lazy_transport_holds_sizes_and_counts_bytes():
    store = LazyObjectTransport()
    store.put_trace_object("b/o", 2, HUGE)
    assert store.stat("b", "o").size == HUGE
    assert store.read_range("b", "o", HUGE - 10, 100) == content_range(
        "b/o", 2, HUGE, HUGE - 10, 10
    )
    assert store.bytes_received == 10
    store.delete_trace_object("b/o")
    store.delete_trace_object("b/o")  # a missing object: nothing happens
    assert not store.exists("b", "o")


def test_write_plan_keeps_only_writes_that_an_op_can_observe():
    trace = {
        "objects": {"b/a": 10, "b/unread": HUGE, "b/d/x": 5, "b/gone": HUGE},
        "ops": [
            {"op": "open", "handle": "h", "object": "b/a"},
            {"op": "overwrite", "object": "b/a", "size": HUGE},  # replaced before any read
            {"op": "overwrite", "object": "b/a", "size": 20},
            {"op": "read", "handle": "h", "offset": 0, "n": 1},  # observes version 3
            {"op": "delete", "object": "b/gone"},
            {"op": "stat", "object": "b/d"},  # lists d/: observes b/d/x
            {"op": "overwrite", "object": "b/a", "size": 30},  # nothing reads it after
            {"op": "close", "handle": "h"},
        ],
    }
    assert write_plan(trace) == {
        "b/a": [None, None, 20, None],
        "b/unread": [None],
        "b/d/x": [5],
        "b/gone": [None],
    }


def test_isolation_writes_only_observed_objects_to_the_fake_gcs(gcs_emulator):
    trace = replay.load_replay_trace(
        {
            "objects": {"b/unread.bin": HUGE, "b/a.bin": 3000},
            "ops": [
                {"op": "open", "handle": "h", "object": "b/a.bin"},
                {"op": "overwrite", "object": "b/a.bin", "size": HUGE},
                {"op": "overwrite", "object": "b/a.bin", "size": 50},
                {"op": "read", "handle": "h", "offset": 0, "n": 100},
            ],
        }
    )
    iso = Isolation(gcs_emulator, trace, "lazytest")
    try:
        iso.create(trace["objects"])
        bucket = iso.buckets["b"]
        assert gcs_emulator.backend.list_objects(bucket) == []  # a.bin's v1 is never read
        iso.put("b/a.bin", HUGE)  # skipped: overwritten before the next read
        iso.put("b/a.bin", 50)
        assert gcs_emulator.backend.list_objects(bucket) == ["a.bin"]
        assert gcs_emulator.backend.get_object(bucket, "a.bin") == object_content("b/a.bin", 3, 50)
        assert (iso.uploads, iso.skipped) == (1, 3)
    finally:
        iso.drop()


def test_isolation_streams_an_object_larger_than_the_in_memory_limit(gcs_emulator):
    size = 9 * MiB + 7
    trace = {
        "objects": {"b/big.bin": size},
        "ops": [
            {"op": "open", "handle": "h", "object": "b/big.bin"},
            {"op": "read", "handle": "h", "offset": 0, "n": 1},
        ],
    }
    iso = Isolation(gcs_emulator, trace, "lazybig")
    try:
        iso.create(trace["objects"])
        data = gcs_emulator.backend.get_object(iso.buckets["b"], "big.bin")
        assert data == TraceObject("b/big.bin", 1, size).read(0, size)
    finally:
        iso.drop()


def test_an_observed_object_too_large_to_upload_is_one_replay_error_before_any_write(
    gcs_emulator,
):
    trace = _read_trace(MAX_UPLOAD_BYTES + 1, 0)
    with pytest.raises(replay.ReplayError, match="memory transport reads objects of any size"):
        Isolation(gcs_emulator, trace, "lazyerr")


def test_model_over_gcsfs_with_a_huge_unread_object(gcs_emulator):
    trace = _read_trace(3000, 1000)
    over_gcsfs = replay.run_model(trace, transport="gcsfs", emulator=gcs_emulator)
    assert replay.compare(replay.run_model(trace), over_gcsfs) is None


def test_cli_model_engine_replays_a_trace_with_a_huge_unread_object(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(_read_trace(3000, 0)))
    result = CliRunner().invoke(app, ["replay", str(path), "--engine", "model", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["reads"]) == 1


@pytest.mark.parametrize("args", [["--engine", "tf"], ["--compare"], ["--transport", "gcsfs"]])
def test_cli_refuses_an_object_too_large_to_upload_before_anything_runs(tmp_path, args):
    path = tmp_path / "too-big.json"
    path.write_text(json.dumps(_read_trace(MAX_UPLOAD_BYTES + 1, 0)))
    result = CliRunner().invoke(
        app, ["replay", str(path), *args, "--backend", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    lines = [ln for ln in (result.stderr or result.output).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gcs-hook: error: ")
    assert "memory transport reads objects of any size" in lines[0]
