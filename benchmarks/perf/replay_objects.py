"""Cost of replay objects: built whole up front (the old way) vs lazy (prints numbers; no assertions).

1. The model engine over the 45 suite traces and N random traces, side by side in one run:
   ``run_model`` (objects held as name/version/size, each GET's bytes computed from the digests
   that cover it, :mod:`emulator.replay.objects`) against the same traces on a plain
   ``MemoryTransport`` whose objects are built whole before the first op. Seconds and ratio.
2. One 100-byte read of a 10 GB object (and a second 10 GB object nothing reads) with 1 MiB
   blocks: seconds and peak traced memory of the lazy engine. The eager store would need 20 GB.
3. ``content_range`` throughput for 1 MiB and 64 MiB ranges (what a block fetch and TF's default
   buffered-reader refill cost the lazy store), MB/s.

Usage: python -m benchmarks.perf.replay_objects [--random 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

from emulator.model.clock import VirtualClock
from emulator.model.gcs_model import GcsFilesystemModel, RetryConfig
from emulator.model.transport import MemoryTransport
from emulator.replay import replay
from emulator.replay.objects import content_range
from emulator.replay.simulation import run_trace
from gcs_hook.units import MiB

TRACE_DIR = Path(__file__).resolve().parent.parent / "tests" / "replay" / "traces"


def _eager(trace: dict) -> None:
    """The model engine as it was: every object's bytes built by run_trace's default store."""
    age = trace.get("stat_cache_max_age")
    fs = GcsFilesystemModel(
        MemoryTransport(),
        trace.get("config"),
        stat_cache_max_age=replay.DEFAULT_STAT_CACHE_MAX_AGE if age is None else age,
        clock=VirtualClock(replay.TRACE_START_FRACTION),
        retry=RetryConfig(init_delay_us=0),
    )
    run_trace({k: v for k, v in trace.items() if k != "faults"}, fs, engine="model")


def bench_suite(random_count: int, rounds: int) -> None:
    traces = [replay.load_replay_trace(p) for p in replay.trace_paths(TRACE_DIR)]
    traces += [replay.random_trace(s) for s in range(random_count)]
    print(f"1. model engine, {len(traces)} traces ({random_count} random), {rounds} rounds")
    for r in range(rounds):
        t0 = time.perf_counter()
        for trace in traces:
            replay.run_model(trace)
        lazy = time.perf_counter() - t0
        t0 = time.perf_counter()
        for trace in traces:
            _eager(trace)
        eager = time.perf_counter() - t0
        print(
            f"   round {r}: lazy {lazy:.3f} s, eager {eager:.3f} s, lazy/eager {lazy / eager:.2f}"
        )


def bench_huge() -> None:
    trace = replay.load_replay_trace(
        {
            "config": {"block_size": MiB, "max_bytes": 4 * MiB, "max_staleness": 0},
            "objects": {"b/huge.bin": 10**10, "b/unread.bin": 10**10},
            "ops": [
                {"op": "open", "handle": "h", "object": "b/huge.bin"},
                {"op": "read", "handle": "h", "offset": 5 * 10**9, "n": 100},
            ],
        }
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    replay.run_model(trace)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"2. 100 B read of a 10 GB object (+ a 10 GB unread one): {seconds:.3f} s, "
        f"peak {peak / MiB:.1f} MiB traced (eager: 20,000 MB of objects)"
    )


def bench_content_range() -> None:
    print("3. content_range")
    for size in (MiB, 64 * MiB):
        t0 = time.perf_counter()
        content_range("b/o.bin", 1, 10**10, 12345, size)
        seconds = time.perf_counter() - t0
        print(f"   {size // MiB} MiB range: {seconds:.3f} s, {size / seconds / 1e6:.0f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=100, help="random traces added (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of section 1 (default 3)")
    args = parser.parse_args()
    bench_suite(args.random, args.rounds)
    bench_huge()
    bench_content_range()


if __name__ == "__main__":
    main()
