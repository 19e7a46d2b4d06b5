"""Sweep engines agree with the model; grid, timing model and recommendation under a budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _support import TRACE_DIR

from benchmarks.sweep import (
    CacheConfig,
    best_under_budget,
    default_grid,
    run_sweep,
    simulate_fast,
    simulate_model,
)
from benchmarks.sweep.timing import GcsTiming, response_bytes
from benchmarks.tune.report import recommendation_line, write_report
from benchmarks.workloads import (
    InterleavedShards,
    RandomRecords,
    SequentialShards,
    SmallFiles,
)
from gcs_hook.tf_defaults import TF_DEFAULT_BLOCK_SIZE as TF_DEFAULT_BUFFER

KiB, MiB, GiB = 1024, 1024**2, 1024**3
TRACES = sorted(TRACE_DIR.glob("*.json"))


def _in_fast_scope(path: Path) -> bool:
    """Traces without overwrite/delete/configure ops or missing objects (the fast engine's scope)."""
    from benchmarks.sweep import compile_ops

    try:
        compile_ops(json.loads(path.read_text()))
    except NotImplementedError:
        return False
    return True


FAST_TRACES = [p for p in TRACES if _in_fast_scope(p)]
#: a timing under which no virtual time passes (the model's clock only moves on sleep ops)
FROZEN = GcsTiming(0.0, 1e30, 0.0)

WORKLOADS = [
    SequentialShards(shards=3, records_per_shard=30, record_size=40_000, epochs=2),
    InterleavedShards(
        shards=5, records_per_shard=20, record_size=30_000, cycle_length=3, block_length=2, epochs=2
    ),  # fmt: skip
    RandomRecords(records=60, record_size=20_000, epochs=2),
    SmallFiles(files_count=12, file_size=5_000, epochs=3),
]
CONFIGS = [
    CacheConfig(0, 0, 0),
    CacheConfig(256 * KiB, 256 * KiB, 0),
    CacheConfig(256 * KiB, 1 * MiB, 0),
    CacheConfig(1 * MiB, 2 * MiB, 0),
    CacheConfig(1 * MiB, 64 * MiB, 0),
    CacheConfig(4 * MiB, 4 * MiB, 0),
]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.name)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_fast_engine_sends_the_models_requests(workload, config) -> None:
    trace = workload.synthesize()
    fast, fast_reqs = simulate_fast(trace, config, timing=FROZEN, keep_requests=True)
    model, model_reqs = simulate_model(trace, config, timing=FROZEN, keep_requests=True)
    assert fast_reqs == model_reqs
    assert (fast.requests, fast.bytes_fetched) == (model.requests, model.bytes_fetched)


def _trace_config(trace: dict) -> tuple[CacheConfig, int]:
    cfg = trace.get("config") or {"block_size": TF_DEFAULT_BUFFER, "max_bytes": 0}
    config = CacheConfig(cfg["block_size"], cfg["max_bytes"], cfg.get("max_staleness", 0))
    # with the cache off, the block size given at start-up is the read-ahead buffer
    return config, config.block_size if config.block_size else 0


def test_shared_traces_in_fast_scope() -> None:
    assert len(FAST_TRACES) >= 10, [p.stem for p in FAST_TRACES]


@pytest.mark.parametrize("path", FAST_TRACES, ids=lambda p: p.stem)
def test_fast_engine_matches_model_on_shared_traces(path) -> None:
    trace = json.loads(path.read_text())
    config, buffer = _trace_config(trace)
    _, fast_reqs = simulate_fast(
        trace, config, timing=FROZEN, keep_requests=True, buffer_size=buffer
    )
    _, model_reqs = simulate_model(
        trace, config, timing=FROZEN, keep_requests=True, buffer_size=buffer
    )
    assert fast_reqs == model_reqs


def test_staleness_and_stat_age_follow_virtual_time() -> None:
    obj = "b/o"
    trace = {
        "config": None,
        "objects": {obj: 3 * MiB},
        "ops": [
            {"op": "open", "handle": "h", "object": obj},
            {"op": "read", "handle": "h", "offset": 0, "n": 10},
            {"op": "sleep", "seconds": 1.5},
            {"op": "read", "handle": "h", "offset": MiB, "n": 10},
            {"op": "sleep", "seconds": 2.0},
            {"op": "read", "handle": "h", "offset": MiB, "n": 10},
            {"op": "sleep", "seconds": 3.0},
            {"op": "read", "handle": "h", "offset": 0, "n": 10},
        ],
    }
    config = CacheConfig(MiB, 4 * MiB, 2)
    _, fast = simulate_fast(trace, config, timing=FROZEN, keep_requests=True)
    _, model = simulate_model(trace, config, timing=FROZEN, keep_requests=True)
    assert fast == model
    kinds = [r["kind"] for r in fast]
    # t=3.5: block 0 (t=0) is stale, the whole file is dropped → block 1 refetched;
    # t=6.5: stat entry (t=0) older than 5 s → a new metadata request
    assert kinds == ["metadata", "media", "media", "media", "metadata", "media"]


def test_timing_prices_requests_and_416() -> None:
    sizes = {"b/o": 1000}
    assert response_bytes({"kind": "media", "object": "b/o", "range": [0, 4095]}, sizes) == 1000
    assert response_bytes({"kind": "media", "object": "b/o", "range": [1000, 1999]}, sizes) == 0
    t = GcsTiming(0.01, 1000.0, 0.002)
    cost = t.cost([{"kind": "media", "object": "b/o", "range": [0, 499]}], sizes)
    assert cost.bytes_fetched == 500 and math.isclose(cost.seconds, 0.012 + 0.5)
    with pytest.raises(ValueError):
        GcsTiming(-1.0)
    with pytest.raises(ValueError):
        GcsTiming(0.0, 0.0)


def test_fast_engine_clock_advances_with_request_cost() -> None:
    trace = SequentialShards(shards=2, records_per_shard=10, record_size=100_000).synthesize()
    t = GcsTiming(0.05, 10 * MiB, 0.001)
    res, reqs = simulate_fast(trace, CacheConfig(MiB, 8 * MiB), timing=t, keep_requests=True)
    expected = t.cost(reqs, trace["objects"]).seconds
    assert math.isclose(res.predicted_s, expected, rel_tol=1e-9)


def test_default_grid_respects_budget_and_block_rule() -> None:
    grid = default_grid(256 * MiB)
    assert CacheConfig(0, 0, 0) in grid
    assert all(c.max_bytes <= 256 * MiB for c in grid)
    assert not [c for c in grid if 0 < c.max_bytes < c.block_size]
    # the memory column (max_bytes + the block in flight) fits: a 256 MiB block needs 512 MiB
    assert all(c.max_bytes + c.block_size <= 256 * MiB for c in grid if c.cache_on)
    assert {c.block_size for c in grid if c.cache_on} >= {256 * KiB, 64 * MiB}
    assert 256 * MiB not in {c.block_size for c in grid}
    assert len(default_grid(2 * GiB, quick=True)) < len(default_grid(2 * GiB))
    with pytest.raises(ValueError):
        default_grid(-1)


@pytest.mark.parametrize("budget", [0, 16 * MiB, 64 * MiB, 300 * MiB, 4 * GiB])
def test_recommendation_respects_memory_budget(budget) -> None:
    w = SequentialShards(shards=4, records_per_shard=80, record_size=200_000, epochs=3)
    trace = w.synthesize()
    grid = default_grid(4 * GiB, quick=True)  # deliberately includes configs over the budget
    results = run_sweep(trace, grid, epochs=3, workers=1)
    best = best_under_budget(results, budget)
    assert best is not None and best.memory_bytes <= budget  # the memory column, block included
    fitting = [r for r in results if r.memory_bytes <= budget]
    # a config whose max_bytes alone fits but whose block in flight does not is never chosen
    if 0 < budget < 4 * GiB:  # the 4 GiB grid fits its own budget, block included
        assert any(r.config.max_bytes <= budget < r.memory_bytes for r in results)
    assert best.predicted_s == min(r.predicted_s for r in fitting)
    line = recommendation_line(best)
    if best.config.cache_on:
        assert line.startswith("ConfigureGcsHook(block_cache=BlockCacheParams(block_size=")
        ns: dict = {}
        exec(  # the printed line is valid Python with the recommended values
            "from gcs_hook.params import BlockCacheParams\n"
            "def ConfigureGcsHook(block_cache=None):\n    return block_cache\n"
            f"p = {line}\n",
            ns,
        )
        p = ns["p"]
        assert (p.block_size, p.max_bytes, p.max_staleness) == (
            best.config.block_size, best.config.max_bytes, best.config.max_staleness,
        )  # fmt: skip
    else:
        assert line.startswith("ConfigureGcsHook()")
    if budget == 0:
        assert not best.config.cache_on
    if budget >= 300 * MiB:  # the whole 61 MiB dataset fits: later epochs hit the cache
        assert best.config.cache_on and best.bytes_fetched < 2 * w.logical_bytes()


def test_parallel_sweep_equals_sequential() -> None:
    trace = InterleavedShards(shards=6, records_per_shard=30, record_size=50_000).synthesize()
    grid = default_grid(512 * MiB, quick=True)
    seq = run_sweep(trace, grid, workers=1)
    seen = []
    par = run_sweep(trace, grid, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert [r.as_row() for r in par] == [r.as_row() for r in seq]
    assert seen and seen[-1] == (len(grid), len(grid))


def test_report_files(tmp_path) -> None:
    trace = SequentialShards(shards=2, records_per_shard=20, record_size=100_000).synthesize()
    results = run_sweep(trace, default_grid(64 * MiB, quick=True), epochs=2, workers=1)
    paths = write_report(
        tmp_path, results, budget=64 * MiB, title="t", summary={"workload": "x"},
        measurements=[{"label": "a", "predicted_s": 1.0, "measured_s": 1.1, "error_pct": 10.0}],
    )  # fmt: skip
    doc = json.loads(Path(paths["json"]).read_text())
    assert doc["recommendation"]["max_bytes"] <= 64 * MiB
    assert len(doc["results"]) == len(results)
    assert Path(paths["csv"]).read_text().count("\n") == len(results) + 1
    for key in ("heatmap", "measured"):
        assert Path(paths[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_on_a_local_dask_cluster_equals_local() -> None:
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    trace = SequentialShards(shards=3, records_per_shard=30, record_size=80_000).synthesize()
    grid = default_grid(256 * MiB, quick=True)
    local = run_sweep(trace, grid, workers=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP server: loopback, a free port
    ) as cluster:  # fmt: skip
        assert cluster.scheduler.http_server.address == "127.0.0.1"  # loopback only
        seen = []
        remote = run_sweep(
            trace, grid, scheduler=cluster.scheduler_address,
            progress=lambda d, t: seen.append(d),
        )  # fmt: skip
    assert [r.as_row() for r in remote] == [r.as_row() for r in local]
    assert seen[-1] == len(grid)
