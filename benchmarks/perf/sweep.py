"""Benchmark: a 100-configuration sweep over a 10 GiB-logical workload in the size-only model.

Target: < 10 s on this 2-core machine (fast engine, all local cores). Prints the number of ops,
the sweep time with 1 process and with all cores side by side, and the per-configuration cost;
also times the reference model engine on a few configurations for the speed ratio.

    python -m benchmarks.perf.sweep
"""

from __future__ import annotations

import os
import time

from benchmarks.sweep import CacheConfig, run_sweep
from benchmarks.sweep.timing import GcsTiming
from benchmarks.workloads import SequentialShards
from gcs_hook.units import GiB, KiB, MiB


def grid_100() -> list[CacheConfig]:
    blocks = [256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB]
    maxes = [256 * MiB, 1 * GiB, 2 * GiB, 4 * GiB, 12 * GiB]
    stales = [0, 10, 60, 600]
    return [CacheConfig(b, m, s) for s in stales for m in maxes for b in blocks]


def main() -> None:
    # 64 shards x 1639 records x (100 KiB + 16 B) = 10.0 GiB logical, 2 epochs
    w = SequentialShards(shards=64, records_per_shard=1639, record_size=100 * KiB, epochs=2)
    t0 = time.perf_counter()
    trace = w.synthesize()
    t_syn = time.perf_counter() - t0
    grid = grid_100()
    print(
        f"workload: {w.logical_bytes() / GiB:.2f} GiB logical x {w.epochs} epochs, "
        f"{len(trace['ops']):,} ops (synthesized in {t_syn:.2f} s); {len(grid)} configurations"
    )
    cores = os.cpu_count() or 1
    timings = {}
    for workers in sorted({1, cores}):
        t0 = time.perf_counter()
        results = run_sweep(trace, grid, epochs=w.epochs, workers=workers)
        timings[workers] = time.perf_counter() - t0
        print(
            f"fast engine, {workers} process(es): {timings[workers]:.2f} s "
            f"({timings[workers] / len(grid) * 1000:.0f} ms per configuration per process)"
        )
    best = min(results, key=lambda r: r.predicted_s)
    print(f"best: {best.config} -> {best.epoch_s:.1f} s/epoch predicted")
    if cores > 1:
        print(f"speed-up with {cores} processes: {timings[1] / timings[cores]:.2f}x")
    target = timings[cores]
    print(
        f"RESULT 100-config sweep over 10 GiB: {target:.2f} s (target < 10 s): "
        f"{'PASS' if target < 10 else 'FAIL'}"
    )
    # reference model engine on 2 configurations, same trace (one process). Its virtual clock
    # only moves on sleep ops, so compare requests under a frozen timing (no stat-cache expiry)
    sample = [CacheConfig(4 * MiB, 2 * GiB, 0), CacheConfig(64 * MiB, 2 * GiB, 0)]
    frozen = GcsTiming(0.0, 1e30, 0.0)
    t0 = time.perf_counter()
    model = run_sweep(trace, sample, timing=frozen, engine="model", workers=1)
    t_model = (time.perf_counter() - t0) / len(sample)
    fast = run_sweep(trace, sample, timing=frozen, workers=1)
    same = [(m.requests, m.bytes_fetched) for m in model] == [
        (f.requests, f.bytes_fetched) for f in fast
    ]
    per_fast = timings[1] / len(grid)
    print(
        f"model engine: {t_model:.2f} s per configuration vs fast {per_fast:.3f} s "
        f"({t_model / per_fast:.0f}x); same requests and bytes: {same}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {cores} cores")


if __name__ == "__main__":
    main()
