"""Trace format: loading, validation errors, deterministic content, result documents."""

from __future__ import annotations

import glob
import hashlib
import json

import pytest
from _support import TRACE_DIR

from emulator.replay.trace import (
    CacheConfig,
    ReadOp,
    SleepOp,
    TraceError,
    TraceResult,
    dump_trace,
    load_result,
    load_trace,
    object_content,
)

EXAMPLE = {
    "config": {"block_size": 1048576, "max_bytes": 4194304, "max_staleness": 0},
    "stat_cache_max_age": 5,
    "objects": {"bkt/a.bin": 3000000, "bkt/b.bin": 500},
    "ops": [
        {"op": "open", "handle": "h1", "object": "bkt/a.bin"},
        {"op": "read", "handle": "h1", "offset": 0, "n": 100},
        {"op": "close", "handle": "h1"},
        {"op": "overwrite", "object": "bkt/a.bin", "size": 2000000},
        {"op": "stat", "object": "bkt/a.bin"},
        {"op": "configure", "config": {"block_size": 262144, "max_bytes": 1048576}},
        {"op": "sleep", "seconds": 1.5},
        {"op": "delete", "object": "bkt/b.bin"},
    ],
}


def test_example_loads_and_round_trips(tmp_path):
    t = load_trace(EXAMPLE)
    assert t.config == CacheConfig(1048576, 4194304, 0)
    assert t.ops[1] == ReadOp("h1", 0, 100) and t.ops[6] == SleepOp(1.5)
    assert t.ops[5].config.max_staleness == 0
    p = tmp_path / "t.json"
    p.write_text(dump_trace(t))
    assert load_trace(p) == t
    assert load_trace(str(p)) == t
    assert load_trace(json.dumps(EXAMPLE)) == t


def test_null_config_means_tf_defaults():
    t = load_trace({"config": None, "objects": {}, "ops": []})
    assert t.config is None and t.stat_cache_max_age is None


@pytest.mark.parametrize(
    "mutate,where",
    [
        (
            lambda d: d["ops"].append({"op": "read", "handle": "zz", "offset": 0, "n": 1}),
            "not open",
        ),
        (lambda d: d["ops"].append({"op": "read", "handle": "h1", "offset": -1, "n": 1}), "ops[8]"),
        (lambda d: d["ops"].append({"op": "jump"}), "unknown op"),
        (
            lambda d: d["ops"].append({"op": "open", "handle": "x", "object": "nobucket"}),
            "bucket/path",
        ),
        (lambda d: d["ops"].append({"op": "sleep", "seconds": float("nan")}), "finite"),
        (lambda d: d["ops"].append({"op": "open", "handle": "x"}), "missing"),
        (lambda d: d["ops"].append({"op": "close", "handle": "h1", "x": 1}), "unknown keys"),
        (lambda d: d.update(config={"block_size": 1}), "max_bytes"),
        (lambda d: d.update(objects={"bkt/a": -5}), "size"),
        (lambda d: d.update(extra=1), "top-level"),
        (lambda d: d.update(ops={}), "list"),
    ],
)
def test_invalid_traces_raise_clear_errors(mutate, where):
    doc = json.loads(json.dumps(EXAMPLE))
    mutate(doc)
    before = json.dumps(doc)
    with pytest.raises(TraceError, match=where.replace("[", r"\[").replace("]", r"\]")):
        load_trace(doc)
    assert json.dumps(doc) == before  # validation changes nothing


def test_unreadable_and_non_json_sources():
    with pytest.raises(TraceError, match="cannot read"):
        load_trace("/nonexistent/trace.json")
    with pytest.raises(TraceError, match="JSON"):
        load_trace("{not json")


def test_object_content_is_the_specified_digest_chain():
    data = object_content("bkt/a.bin", 2, 100)
    expect = b"".join(hashlib.sha256(f"bkt/a.bin|2|{i}".encode()).digest() for i in range(4))
    assert data == expect[:100]
    assert object_content("bkt/a.bin", 1, 0) == b""
    assert object_content("bkt/a.bin", 1, 64) != object_content("bkt/a.bin", 2, 64)
    with pytest.raises(ValueError):
        object_content("x/y", 0, 5)


def test_result_round_trip():
    doc = {
        "engine": "tf",
        "requests": [{"kind": "metadata", "object": "bkt/a.bin"}],
        "reads": [
            {"handle": "h", "offset": 0, "n": 1, "returned": 1, "sha256": "ab", "error": None}
        ],
    }
    r = load_result(doc)
    assert isinstance(r, TraceResult) and r.to_dict() == doc
    assert load_result(r.to_json()).to_dict() == doc
    with pytest.raises(TraceError):
        load_result({"engine": "x"})


def test_suite_traces_all_load():
    paths = sorted(glob.glob(str(TRACE_DIR / "*.json")))
    for p in paths:
        load_trace(p)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("bkt/..", "'..' is not allowed"),
        ("bkt/.", "'.' is not allowed"),
        ("bkt/a\rb", "carriage return or line feed"),
        ("bkt/" + "x" * 1025, "the limit is 1024 bytes"),
        ("bkt/.well-known/acme-challenge/x", "acme-challenge"),
    ],
)
def test_object_names_follow_gcs_rules(name, needle):
    """Issue 11: a trace cannot name an object GCS (and so the fake) would refuse."""
    for doc in (
        {"objects": {name: 10}, "ops": []},
        {"objects": {}, "ops": [{"op": "open", "handle": "h", "object": name}]},
    ):
        with pytest.raises(TraceError, match=needle):
            load_trace(doc)
    # What GCS allows stays allowed, '..' inside a longer name included.
    load_trace({"objects": {"bkt/a/../b": 1, "bkt/" + "é" * 512: 1}, "ops": []})
