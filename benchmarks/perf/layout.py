"""Benchmark: what the layout costs at run time (issue 16).

Prints, side by side in one run, medians of ``--repeats`` runs:

1. **Import time** of the entry points in a fresh interpreter each (``python -c "import X"``):
   the CLI (every ``gcs-hook`` command pays it), the model (``emulator.model.gcs_model``, which now
   imports ``gcs_hook.units``/``tf_defaults`` for its one home of constants), the sweep and the
   tune pipeline.
2. **The pure-Python sweep engine** (:func:`benchmarks.sweep.engine_python.simulate_fast`, split
   into stage methods) against the compiled engine on the same trace and configurations: reads
   per second, cache on and cache off, and the ratio.

    python -m benchmarks.perf.layout [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from benchmarks.sweep import CacheConfig, simulate_columnar, simulate_fast, to_columnar
from benchmarks.sweep.engine_python import compile_ops
from benchmarks.workloads import RandomRecords
from gcs_hook.units import KiB, MiB

MODULES = ("gcs_hook.cli", "emulator.model.gcs_model", "benchmarks.sweep", "benchmarks.tune")


def import_seconds(module: str) -> float:
    """Seconds for a fresh interpreter to import ``module`` (minus a bare interpreter's start)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def engine_rates(repeats: int) -> None:
    w = RandomRecords(records=100_000, record_size=4 * KiB, epochs=2)
    trace = w.synthesize()
    reads = sum(1 for op in trace["ops"] if op["op"] == "read")
    ops = compile_ops(trace)
    ct = to_columnar(trace)
    configs = {"cache on": CacheConfig(256 * KiB, 64 * MiB, 0), "cache off": CacheConfig(0, 0, 0)}
    simulate_columnar(ct, configs["cache on"])  # compile / load the kernel outside the timing
    print(f"trace: {reads:,} reads ({w.name}, {w.records:,} records, {w.epochs} epochs)")
    for label, config in configs.items():
        py, comp = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a, _ = simulate_fast(ops, config)
            py.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = simulate_columnar(ct, config).result
            comp.append(time.perf_counter() - t0)
        assert (a.requests, a.bytes_fetched) == (b.requests, b.bytes_fetched), (a, b)
        p, c = statistics.median(py), statistics.median(comp)
        print(
            f"  {label:9s}: python {reads / p / 1e6:6.2f} M reads/s, compiled "
            f"{reads / c / 1e6:6.2f} M reads/s (compiled {p / c:5.1f}x), {a.requests:,} requests"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("import time, fresh interpreter (median):")
    for module in MODULES:
        secs = statistics.median(import_seconds(module) for _ in range(args.repeats))
        print(f"  {module:18s} {secs * 1000:7.1f} ms")
    engine_rates(args.repeats)


if __name__ == "__main__":
    main()
