"""Benchmark: what the model engine's live-file bookkeeping costs, side by side in one run.

The sweep's model engine (``benchmarks.sweep.engine_model.simulate_model``) runs
``emulator.replay.simulation.simulate`` with ``cost=`` (each request moves the virtual clock)
and ``count_hazards=True`` (every read's bytes classified by generation). This times the same
trace and configuration with and without them and prints the ratio. Target: the bookkeeping
costs at most 2x.

    python -m benchmarks.perf.model_engine_hazards [--records N] [--repeats N]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.sweep.timing import DEFAULT_TIMING
from benchmarks.workloads import get_workload
from emulator.replay.simulation import simulate
from gcs_hook.units import MiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    trace = get_workload("random-records", records=args.records, record_size=16 * 1024,
                         epochs=1).synthesize()  # fmt: skip
    config = {"block_size": MiB, "max_bytes": 64 * MiB, "max_staleness": 0}

    def cost(kind: str, nbytes: int) -> float:
        return DEFAULT_TIMING.request_seconds(nbytes)

    plain, full = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        t0 = time.perf_counter()
        simulate(trace, config)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        simulate(trace, config, cost=cost, count_hazards=True)
        full.append(time.perf_counter() - t0)
    p, f = min(plain), min(full)
    print(f"{len(trace['ops']):,} ops: plain {p:.3f} s, with clock + hazards {f:.3f} s, "
          f"ratio {f / p:.2f}x (target <= 2x)")  # fmt: skip


if __name__ == "__main__":
    main()
