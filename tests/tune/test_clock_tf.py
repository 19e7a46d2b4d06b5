"""Time moves with requests: with 1 s per request (the shaped front), TF's 2 s stat cache
expires during a run of reads that has no sleeps at all. The model engine, whose virtual clock
advances by each request's predicted time, sends the same requests as real TF; a model whose
clock moves only with ``sleep`` ops does not.
"""

from __future__ import annotations

import pytest

from benchmarks.sweep import CacheConfig, run_sweep
from benchmarks.sweep.timing import GcsTiming
from emulator.fakegcs.shaping import Shaping
from emulator.replay.replay import TfReplayer
from emulator.replay.simulation import simulate

MiB = 1024 * 1024
LATENCY_S = 1.0


def _trace() -> dict:
    ops = [{"op": "sleep", "seconds": 0}, {"op": "open", "handle": "h", "object": "clk/o"}]
    ops += [{"op": "read", "handle": "h", "offset": i * MiB, "n": 10} for i in range(8)]
    ops.append({"op": "close", "handle": "h"})
    return {
        "config": {"block_size": MiB, "max_bytes": 16 * MiB, "max_staleness": 0},
        "stat_cache_max_age": 2,
        "objects": {"clk/o": 8 * MiB},
        "ops": ops,
    }


@pytest.mark.tf
def test_stat_cache_expires_with_request_time_as_in_tf(gcs_emulator) -> None:
    pytest.importorskip("tensorflow")
    trace = _trace()
    timing = GcsTiming(LATENCY_S, 1e12, 0.0)
    moving = simulate(trace, record_requests=True,
                      cost=lambda kind, nbytes: timing.request_seconds(nbytes))  # fmt: skip
    frozen = simulate(trace, record_requests=True)
    assert moving.requests_by_kind["metadata"] == 3 and frozen.requests_by_kind["metadata"] == 1
    (fast,) = run_sweep(trace, [CacheConfig(MiB, 16 * MiB, 0)], timing=timing, workers=1)
    assert fast.metadata_requests == 3
    gcs_emulator.front.shaping = Shaping(first_byte_latency_s=LATENCY_S)
    try:
        with TfReplayer(gcs_emulator) as replayer:
            tf = replayer.run(trace)
    finally:
        gcs_emulator.front.shaping = None
    assert tf["requests"] == moving.requests
    print(f"\nreal TF: {len(tf['requests'])} requests, "
          f"{sum(r['kind'] == 'metadata' for r in tf['requests'])} metadata; model with moving "
          f"clock: {moving.virtual_seconds:.1f} s virtual")  # fmt: skip
