"""``tune`` takes every trace ``replay`` accepts: write/overwrite/delete/configure, growing and
shrinking objects, missing objects, fault cases. Never a crash; bytes at request time."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchmarks.sweep import CacheConfig, run_sweep
from benchmarks.sweep.timing import GcsTiming
from benchmarks.tune.advice import recommend, results_json
from benchmarks.tune.inputs import choose_engine
from emulator.replay.random_traces import random_trace
from emulator.replay.simulation import simulate
from gcs_hook.cli import app

MiB = 1024 * 1024


def _with_writes(trace: dict, seed: int) -> dict:
    """Some overwrites and deletes become the program's own (``write``, ``remove``); a write may
    create a new object; some reads are followed by a ``tail`` on the same handle."""
    rng = random.Random(seed)
    ops = []
    for op in trace["ops"]:
        if op["op"] == "overwrite" and rng.random() < 0.5:
            op = {"op": "write", "object": op["object"], "size": op["size"]}
        elif op["op"] == "delete" and rng.random() < 0.5:
            op = {"op": "remove", "object": op["object"]}
        ops.append(op)
        if op["op"] == "read" and rng.random() < 0.15:  # a follower on the same handle
            ops.append({"op": "tail", "handle": op["handle"], "chunk": max(8192, op["n"])})
        if rng.random() < 0.05:
            ops.append({"op": "write", "object": "fz/new.bin", "size": rng.randint(0, 50_000)})
    return dict(trace, ops=ops)


def _configs(trace: dict) -> list[CacheConfig]:
    cfg = trace.get("config") or {"block_size": 0, "max_bytes": 0}
    own = CacheConfig(cfg["block_size"], cfg["max_bytes"], cfg.get("max_staleness", 0))
    return [CacheConfig(0, 0, 0), own, CacheConfig(4096, 16384, 0), CacheConfig(65536, 65536, 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), timed=st.booleans(), faults=st.booleans())
def test_sweep_and_advice_never_crash_on_replayable_traces(seed, timed, faults) -> None:
    trace = _with_writes(random_trace(seed, timed=timed, faults=faults), seed)
    trace.pop("faults", None)
    engine, _ = choose_engine(trace)
    results = run_sweep(trace, _configs(trace), engine=engine, workers=1)
    assert len(results) == 4
    best, _ = recommend(results, 2**40)
    assert best in results
    doc = results_json(results, best)
    json.dumps(doc)
    for r, d in zip(results, doc, strict=True):
        assert d["requests"] == r.media_requests >= 0
        assert d["bytes_fetched"] >= 0 and d["stale_reads"] >= 0 and d["errors"] >= 0


def test_bytes_are_priced_at_the_size_when_requested() -> None:
    """An object that grows from 1 MiB to 3 MiB: the second read's fetches carry 3 MiB."""
    trace = {
        "objects": {"b/log": MiB},
        "ops": [
            {"op": "open", "handle": "h", "object": "b/log"},
            {"op": "read", "handle": "h", "offset": 0, "n": 4 * MiB},
            {"op": "write", "object": "b/log", "size": 3 * MiB},
            {"op": "read", "handle": "h", "offset": 0, "n": 4 * MiB},
            {"op": "close", "handle": "h"},
        ],
    }
    (res,) = run_sweep(trace, [CacheConfig(MiB, 8 * MiB, 0)], engine="model", workers=1)
    assert res.media_bytes_fetched == MiB + 3 * MiB
    assert res.media_requests == 2 + 4  # block 1 is short (EOF); then blocks 0-3 of 3 MiB


def test_the_clock_moves_with_requests() -> None:
    """60 reads of 1 MiB blocks at 1 s each: the stat entry (5 s) expires along the way."""
    slow = GcsTiming(
        first_byte_latency_s=1.0, bandwidth_bytes_per_s=MiB * 1024, per_request_overhead_s=0
    )
    ops = [{"op": "open", "handle": "h", "object": "b/o"}]
    ops += [{"op": "read", "handle": "h", "offset": i * MiB, "n": 10} for i in range(60)]
    trace = {"objects": {"b/o": 60 * MiB}, "ops": ops}
    (res,) = run_sweep(
        trace, [CacheConfig(MiB, 64 * MiB, 0)], engine="model", timing=slow, workers=1
    )
    (fast,) = run_sweep(
        trace, [CacheConfig(MiB, 64 * MiB, 0)], engine="fast", timing=slow, workers=1
    )
    assert res.metadata_requests > 1
    assert (res.requests, res.predicted_s) == (fast.requests, fast.predicted_s)
    frozen = simulate(trace, {"block_size": MiB, "max_bytes": 64 * MiB, "max_staleness": 0})
    assert frozen.requests_by_kind["metadata"] == 1  # without request time, no expiry


def test_cli_json_on_a_fault_case_with_writes(tmp_path) -> None:
    trace = _with_writes(random_trace(7, timed=True, faults=True), 7)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace))
    res = CliRunner().invoke(
        app,
        ["tune", "-w", str(path), "--configs", "4KiB/16KiB/0,64KiB/64KiB/1,off", "--json",
         "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [d["config"] for d in doc] == [
        {"block_size": 4096, "max_bytes": 16384, "max_staleness": 0},
        {"block_size": 65536, "max_bytes": 65536, "max_staleness": 1},
        None,
    ]
    assert sum(d["recommended"] for d in doc) == 1


def test_model_engine_in_a_process_pool() -> None:
    """The pool workers must not compile for the fast engine (it raised NotImplementedError in
    the initializer: BrokenProcessPool with any --workers)."""
    trace = _with_writes(random_trace(11), 11)
    trace["ops"].append({"op": "overwrite", "object": "fz/o0.bin", "size": 5})
    configs = [CacheConfig(0, 0, 0)] + [CacheConfig(4096 * k, 16384 * k, 0) for k in (1, 2, 4)]
    pooled = run_sweep(trace, configs, engine="model", workers=2)
    single = run_sweep(trace, configs, engine="model", workers=1)
    assert pooled == single
