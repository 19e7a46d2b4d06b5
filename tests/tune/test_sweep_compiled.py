"""The compiled columnar engine is exact: property tests against the Python engine and the model.

Random traces (hypothesis) of open/read/close/stat/sleep over a few objects, with block sizes
that are not powers of two, reads at block edges, past EOF, ``n`` = 0, ``n`` > ``max_bytes``,
runs of reads inside one block (what the engine collapses) and several handles per object.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import TRACE_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.sweep import (
    CacheConfig,
    fast_engine_covers,
    run_sweep,
    simulate_columnar,
    simulate_fast,
    simulate_model,
)
from benchmarks.sweep.timing import GcsTiming
from benchmarks.workloads import InterleavedShards, SequentialShards, SmallFiles
from emulator.replay.columnar import from_dict

FROZEN = GcsTiming(0.0, 1e30, 0.0)  # no virtual time passes but for sleep ops
TIMED = GcsTiming(0.4, 50_000.0, 0.1)  # requests take ~0.5-1 s: stat age and staleness act


@st.composite
def traces(draw):
    block = draw(st.sampled_from([7, 100, 1000, 4096]))
    n_obj = draw(st.integers(1, 3))

    def size():
        k = draw(st.integers(0, 5))
        return max(0, k * block + draw(st.sampled_from([0, -1, 1, block // 2])))

    objects = {f"b/o{i}": size() for i in range(n_obj)}
    names = list(objects)
    ops, open_h = [], {}
    for _ in range(draw(st.integers(1, 60))):
        choice = draw(st.sampled_from(["open", "read", "read", "read", "run", "close", "stat",
                                       "sleep"]))  # fmt: skip
        if choice == "open" or (choice in ("read", "run", "close") and not open_h):
            h = f"h{draw(st.integers(0, 4))}"
            if h in open_h:
                continue
            obj = draw(st.sampled_from(names))
            open_h[h] = obj
            ops.append({"op": "open", "handle": h, "object": obj})
        elif choice == "read":
            h = draw(st.sampled_from(sorted(open_h)))
            size = objects[open_h[h]]
            off = draw(st.sampled_from([0, block - 1, block, size, size + 3,
                                        draw(st.integers(0, max(1, 2 * size)))]))  # fmt: skip
            n = draw(st.sampled_from([0, 1, block, 2 * block + 1, 10 * block,
                                      draw(st.integers(0, 3 * block))]))  # fmt: skip
            ops.append({"op": "read", "handle": h, "offset": off, "n": n})
        elif choice == "run":  # consecutive small reads inside one block
            h = draw(st.sampled_from(sorted(open_h)))
            b = draw(st.integers(0, 4))
            for j in range(draw(st.integers(2, 6))):
                off = b * block + (j * block) // 7
                ops.append({"op": "read", "handle": h, "offset": off, "n": max(1, block // 9)})
        elif choice == "close":
            h = draw(st.sampled_from(sorted(open_h)))
            del open_h[h]
            ops.append({"op": "close", "handle": h})
        elif choice == "stat":
            ops.append({"op": "stat", "object": draw(st.sampled_from(names))})
        else:
            ops.append({"op": "sleep", "seconds": draw(st.sampled_from([0.5, 1.0, 2.5, 6.0]))})
    max_bytes = draw(st.sampled_from([0, block - 1, block, 2 * block + 3, 3 * block, 50 * block]))
    stale = draw(st.sampled_from([0, 0, 1, 3]))
    age = draw(st.sampled_from([None, 0, 1, 5]))
    trace = {"config": None, "objects": objects, "ops": ops}
    if age is not None:
        trace["stat_cache_max_age"] = age
    bs = block if max_bytes else draw(st.sampled_from([0, block]))
    return trace, CacheConfig(bs, max_bytes, stale), draw(st.sampled_from([block, 3 * block]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), st.sampled_from([FROZEN, TIMED]))
def test_compiled_engine_equals_python_engine(case, timing) -> None:
    trace, config, buffer = case
    ref, ref_reqs = simulate_fast(
        trace, config, timing=timing, buffer_size=buffer, keep_requests=True
    )
    run = simulate_columnar(
        from_dict(trace), config, timing=timing, buffer_size=buffer, keep_requests=True
    )
    assert run.requests == ref_reqs
    assert run.result == ref  # requests, bytes, clock, peak cache bytes
    assert int(run.obj_reqs.sum()) == ref.requests
    assert int(run.obj_bytes.sum()) == ref.bytes_fetched


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_compiled_engine_equals_the_model(case) -> None:
    trace, config, buffer = case
    model, model_reqs = simulate_model(
        trace, config, timing=FROZEN, buffer_size=buffer, keep_requests=True
    )
    run = simulate_columnar(trace, config, timing=FROZEN, buffer_size=buffer, keep_requests=True)
    assert run.requests == model_reqs
    assert (run.result.requests, run.result.bytes_fetched) == (
        model.requests,
        model.bytes_fetched,
    )


def test_runs_inside_a_block_are_collapsed() -> None:
    """Sequential 256 KiB reads with 16 MiB blocks: the loop steps per block, not per read."""
    w = SequentialShards(shards=2, records_per_shard=400, record_size=100_000, epochs=1)
    ct = from_dict(w.synthesize())
    config = CacheConfig(16 * 2**20, 1 * 2**30, 0)
    run = simulate_columnar(ct, config)
    assert run.result == simulate_fast(w.synthesize(), config)[0]
    blocks = run.result.media_requests
    assert ct.n_reads > 20 * blocks  # many reads per block ...
    assert run.steps < 4 * blocks + 2 * len(w.objects()) * 2  # ... but steps per block


@pytest.mark.parametrize(
    "path", sorted(TRACE_DIR.glob("*.json")), ids=lambda p: p.stem
)  # fmt: skip
def test_covers_says_when_the_fast_engine_applies(path) -> None:
    trace = json.loads(path.read_text())
    covered = fast_engine_covers(trace)
    try:
        from_dict(trace)
        converts = True
    except NotImplementedError:
        converts = False
    assert covered == converts


@pytest.mark.parametrize(
    "workload",
    [
        SequentialShards(shards=3, records_per_shard=30, record_size=40_000, epochs=2),
        InterleavedShards(shards=6, records_per_shard=30, record_size=50_000),
        SmallFiles(files_count=12, file_size=5_000, epochs=3),
    ],
    ids=lambda w: w.name,
)
def test_parallel_columnar_sweep_equals_python_engine(workload) -> None:
    trace = workload.synthesize()
    grid = [CacheConfig(0, 0, 0), CacheConfig(2**18, 2**20, 0), CacheConfig(2**20, 2**24, 60)]
    fast = run_sweep(trace, grid, workers=2)
    python = run_sweep(trace, grid, workers=1, engine="python")
    assert [r.as_row() for r in fast] == [r.as_row() for r in python]
    assert np.all([r.requests > 0 for r in fast])
