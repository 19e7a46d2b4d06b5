"""Benchmark: 100-configuration sweeps at dataset scale — time and peak memory, sampled and exact.

Workload: ``tfrecord-epochs`` with 256 KiB records, 656 per shard (164 MiB shards), 2 epochs, at
10 GiB, 100 GiB, 1 TiB and 10 TiB logical (62 to 64,000 shards; ~4 k reads per GiB and epoch).
Each case runs in a fresh subprocess (2 sweep workers); the parent samples the proportional set
size (PSS: shared pages counted once across processes) of that process and all its children
every 20 ms and prints the peak, with wall time, reads, R and the sampled-vs-exact error where
both ran. Then the log-log slope of sweep time against reads per mode, and the engines' speed
side by side (reads per second, one process, same trace): today's pure-Python engine vs the
compiled one.

    python -m benchmarks.perf.scale                 # all sizes (10 TiB: sampled only)
    python -m benchmarks.perf.scale --sizes 10,100  # GiB
    python -m benchmarks.perf.scale --legacy        # BEFORE: today's engine, bounded

Targets (issue 10): 10 TiB sampled < 60 s and < 4 GiB; error ≤ 1 %; exact engine ≤ 100 B/read
and ≥ 5x the reads/s of today's engine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

from gcs_hook.units import GiB, KiB, MiB

SHARD = 656 * (256 * KiB + 16)


def grid_100():
    from benchmarks.sweep import CacheConfig

    blocks = [256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB]
    maxes = [256 * MiB, 1 * GiB, 2 * GiB, 4 * GiB, 12 * GiB]
    stales = [0, 10, 60, 600]
    return [CacheConfig(b, m, s) for s in stales for m in maxes for b in blocks]


def workload(gib: float):
    from benchmarks.workloads import SequentialShards

    shards = max(1, round(gib * GiB / SHARD))
    return SequentialShards(shards=shards, records_per_shard=656, record_size=256 * KiB, epochs=2)


# --------------------------------------------------------------------------- one case (child)


def run_case(gib: float, mode: str, workers: int, max_configs: int) -> dict:
    from benchmarks.sweep.sampling import run_sampled_sweep, workload_sweep_inputs

    w = workload(gib)
    grid = grid_100()[:max_configs]
    t0 = time.perf_counter()
    if mode == "legacy":  # today's path: dict trace, Python engine, copies per worker
        from benchmarks.sweep import run_sweep

        trace = w.synthesize()
        reads = sum(1 for op in trace["ops"] if op["op"] == "read")
        results = run_sweep(trace, grid, engine="python", workers=workers)
        rows = [[r.requests, r.bytes_fetched] for r in results]
        return {"seconds": time.perf_counter() - t0, "reads": reads, "rate": 1.0,
                "configs": len(grid), "rows": rows, "error_estimate": 0.0}  # fmt: skip
    sweep = run_sampled_sweep(
        configs=grid, exact=(mode == "exact"), workers=workers, epochs=w.epochs,
        **workload_sweep_inputs(w),
    )  # fmt: skip
    return {
        "seconds": time.perf_counter() - t0,
        "reads": sweep.total_reads,
        "sampled_reads": sweep.sampled_reads,
        "rate": sweep.rate,
        "configs": len(grid),
        "error_estimate": sweep.max_error,
        "rows": [[r.requests, r.bytes_fetched] for r in sweep.results],
        "best": _best(sweep.results),
    }


def _best(results) -> list[int]:
    from benchmarks.sweep import best_under_budget

    b = best_under_budget(results, 12 * GiB)
    return [b.config.block_size, b.config.max_bytes, b.config.max_staleness] if b else []


# --------------------------------------------------------------------------- parent


def _tree_pss(root: int) -> int:
    """PSS bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def measure(gib: float, mode: str, workers: int, max_configs: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.perf.scale", "--child", str(gib), mode,
           str(workers), str(max_configs)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"case {gib} GiB {mode} failed ({proc.returncode})")
    doc = json.loads(out.strip().splitlines()[-1])
    doc["peak_pss"] = peak
    return doc


def engine_speed(gib: float) -> tuple[float, float, int]:
    """Reads/s of the Python and the compiled engine, one process, 3 configs of the grid."""
    from benchmarks.sweep import CacheConfig, compile_ops, simulate_columnar, simulate_fast
    from benchmarks.workloads.columns import synthesize_columns

    w = workload(gib)
    trace = w.synthesize()
    compiled = compile_ops(trace)
    ct = synthesize_columns(w)
    configs = [CacheConfig(0, 0, 0), CacheConfig(256 * KiB, GiB, 0), CacheConfig(16 * MiB, GiB, 60)]
    simulate_columnar(ct, configs[1])  # load the compiled kernel
    t0 = time.perf_counter()
    for c in configs:
        simulate_fast(compiled, c)
    t_py = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in configs:
        simulate_columnar(ct, c)
    t_c = time.perf_counter() - t0
    reads = ct.n_reads * len(configs)
    return reads / t_py, reads / t_c, ct.n_reads


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(seconds) against log(reads)."""
    xs = [math.log(r) for r, _ in points]
    ys = [math.log(max(s, 1e-6)) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1024,10240", help="logical GiB, comma-separated")
    ap.add_argument("--exact-max-gib", type=float, default=1024, help="largest exact case")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--legacy", action="store_true", help="today's engine (BEFORE numbers)")
    ap.add_argument("--legacy-configs", type=int, default=100, help="configs for legacy cases")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    modes = ["legacy"] if args.legacy else ["sampled", "exact"]
    print(f"100-config sweep, tfrecord-epochs (164 MiB shards, 256 KiB reads, 2 epochs), "
          f"{args.workers} workers; peak = PSS of all processes")  # fmt: skip
    print(f"{'logical':>9} {'mode':>8} {'reads':>12} {'R':>8} {'configs':>7} {'time s':>8} "
          f"{'peak MiB':>9} {'B/read':>7} {'err est':>8} {'err meas':>8} same-best")  # fmt: skip
    timings: dict[str, list[tuple[int, float]]] = {m: [] for m in modes}
    for gib in sizes:
        exact_doc = None
        for mode in reversed(modes):  # exact first, to measure the sampled error against it
            if mode == "exact" and gib > args.exact_max_gib:
                print(f"{gib:>7.0f}Gi {mode:>8} {'(not feasible here: skipped)':>40}")
                continue
            configs = args.legacy_configs if mode == "legacy" else 100
            doc = measure(gib, mode, args.workers, configs)
            timings[mode].append((doc["reads"] * doc["configs"], doc["seconds"]))
            err = same = ""
            if mode == "exact":
                exact_doc = doc
            elif mode == "sampled" and exact_doc is not None:
                worst = max(abs(a - b) / b for ra, rb in zip(doc["rows"], exact_doc["rows"],
                            strict=True) for a, b in zip(ra, rb, strict=True) if b)  # fmt: skip
                err = f"{worst:.3%}"
                same = "yes" if doc["best"] == exact_doc["best"] else "NO"
            print(f"{gib:>7.0f}Gi {mode:>8} {doc['reads']:>12,} {doc['rate']:>8.4g} "
                  f"{doc['configs']:>7} {doc['seconds']:>8.1f} {doc['peak_pss'] / MiB:>9.0f} "
                  f"{doc['peak_pss'] / doc['reads']:>7.1f} {doc['error_estimate']:>8.3%} "
                  f"{err:>8} {same}", flush=True)  # fmt: skip
    for mode, pts in timings.items():
        if len(pts) >= 2:
            print(f"log-log slope of sweep time vs reads x configs ({mode}): {slope(pts):.2f}")
    if not args.legacy:
        py, comp, n = engine_speed(min(sizes))
        print(f"engine speed, one process, {n:,} reads x 3 configs: python {py / 1e6:.2f} M "
              f"reads/s, compiled {comp / 1e6:.1f} M reads/s ({comp / py:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        gib, mode, workers, max_configs = sys.argv[2:6]
        print(json.dumps(run_case(float(gib), mode, int(workers), int(max_configs))))
    else:
        main()
