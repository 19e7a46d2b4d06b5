"""Benchmark: the error of sampled sweeps against exact ones, every built-in workload, 10 GiB-1 TiB.

For each synthesizable workload (checkpoint-restore is recorded with TF, not synthesized: its
sweeps are always exact) at 10 GiB, 100 GiB and 1 TiB logical, it runs the default grid
(64 GiB budget, 214 configurations) exactly and sampled (R = 1/16, raised to keep at least 64
sampled units, and the R that ``tune`` would choose), and prints a Markdown table: R, reads simulated, the largest relative error on
requests and on bytes over all configurations, the largest estimated error, and whether the
recommended configuration is the same at 2 GiB and 64 GiB budgets. docs/scale.md holds its
output.

    python -m benchmarks.perf.sample_error [--sizes 10,100,1024]
"""

from __future__ import annotations

import argparse
import math
import time

from gcs_hook.units import GiB, KiB, MiB


def workloads(gib: float):
    from benchmarks.workloads import get_workload

    shard = 656 * (256 * KiB + 16)
    shards = max(8, round(gib * GiB / shard))
    yield get_workload("tfrecord-epochs", shards=shards, records_per_shard=656,
                       record_size=256 * KiB, epochs=2)  # fmt: skip
    yield get_workload("interleave", shards=shards, records_per_shard=656,
                       record_size=256 * KiB, cycle_length=8, block_length=4, epochs=2)  # fmt: skip
    if gib <= 100:  # one file, never sampled: at 1 TiB its exact sweep (65 M random reads)
        # takes minutes here
        yield get_workload("random-records", records=round(gib * GiB / (64 * KiB + 16)),
                           record_size=64 * KiB, epochs=2)  # fmt: skip
    yield get_workload("small-files", files_count=round(gib * GiB / MiB), file_size=MiB, epochs=2)


def main() -> None:
    from benchmarks.sweep import best_under_budget, default_grid
    from benchmarks.sweep.sampling import choose_rate, run_sampled_sweep, workload_sweep_inputs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1024", help="logical GiB, comma-separated")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    grid = default_grid(64 * GiB)
    print(f"default grid, 64 GiB budget: {len(grid)} configurations, 2 epochs\n")
    print("| workload | logical | R | reads simulated | max err requests | max err bytes "
          "| max est. | same best (2 GiB / 64 GiB) | exact s | sampled s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for gib in (float(s) for s in args.sizes.split(",")):
        for w in workloads(gib):
            inputs = workload_sweep_inputs(w)
            t0 = time.perf_counter()
            exact = run_sampled_sweep(configs=grid, exact=True, workers=args.workers,
                                      epochs=w.epochs, **inputs)  # fmt: skip
            t_exact = time.perf_counter() - t0
            n_units = len(inputs["names"]) // inputs["unit_size"]
            auto = choose_rate(inputs["total_reads"], len(grid), n_units, workers=args.workers)
            # a fixed R of 1/16 where that keeps >= 64 units, else the smallest such power of 2
            fixed = 2.0 ** math.ceil(math.log2(max(1 / 16, min(1.0, 64 / max(1, n_units)))))
            for rate in sorted({fixed, auto}, reverse=True):
                t0 = time.perf_counter()
                s = run_sampled_sweep(configs=grid, rate=rate, workers=args.workers,
                                      epochs=w.epochs, **inputs)  # fmt: skip
                t_s = time.perf_counter() - t0
                err_r = max(_rel(a.requests, b.requests) for a, b in zip(s.results, exact.results,
                                                                          strict=True))  # fmt: skip
                err_b = max(_rel(a.bytes_fetched, b.bytes_fetched)
                            for a, b in zip(s.results, exact.results, strict=True))  # fmt: skip
                same = "/".join(
                    "yes" if best_under_budget(s.results, b).config
                    == best_under_budget(exact.results, b).config else "NO"
                    for b in (2 * GiB, 64 * GiB)
                )  # fmt: skip
                label = f"{s.rate:.4g}" + (" (auto)" if rate == auto else "")
                print(f"| {w.name} | {w.logical_bytes() / GiB:,.0f} GiB | {label} | "
                      f"{s.sampled_reads:,} of {s.total_reads:,} | {err_r:.3%} | {err_b:.3%} | "
                      f"{s.max_error:.3%} | {same} | {t_exact:.1f} | {t_s:.1f} |",
                      flush=True)  # fmt: skip


def _rel(a: int, b: int) -> float:
    return abs(a - b) / b if b else float(a != b)


if __name__ == "__main__":
    main()
