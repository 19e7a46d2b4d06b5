"""Benchmark: predicted vs measured time with real TensorFlow through the shaped front.

For each workload below, several block cache configurations are run in real TF (fresh process
per configuration) reading through the front with 80 ms first-byte latency and 8 MiB/s per
connection, alternating with unshaped passes that measure this machine's own cost. Prints, per
configuration: requests predicted/measured, model seconds, local baseline, predicted
(model + baseline), measured, and the errors of the calibrated and the bare prediction.
Target: |error| <= 15 % for >= 3 configurations. Bounded: about a minute per workload.

    python -m benchmarks.perf.predicted_vs_measured [--repeats N] [--workloads a,b]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from benchmarks.sweep import CacheConfig
from benchmarks.tune import MEASURE_TIMING
from benchmarks.tune.measure import measure_configs
from benchmarks.workloads import MEASURE_SCALE, get_workload
from gcs_hook.units import GiB, KiB, MiB

CONFIGS = {
    "tfrecord-epochs": [
        CacheConfig(0, 0, 0),
        CacheConfig(64 * MiB, 1 * GiB, 0),
        CacheConfig(4 * MiB, 4 * MiB, 0),
        CacheConfig(256 * KiB, 256 * MiB, 0),
    ],
    "interleave": [
        CacheConfig(0, 0, 0),
        CacheConfig(1 * MiB, 4 * MiB, 0),
        CacheConfig(16 * MiB, 256 * MiB, 0),
    ],
    "small-files": [
        CacheConfig(0, 0, 0),
        CacheConfig(1 * MiB, 64 * MiB, 0),
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workloads", default="tfrecord-epochs,interleave,small-files")
    args = ap.parse_args()
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from emulator.fakegcs.session import GcsEmulator

    t = MEASURE_TIMING
    print(
        f"shaping: {t.first_byte_latency_s * 1000:.0f} ms first byte, "
        f"{t.bandwidth_bytes_per_s / MiB:.0f} MiB/s per connection, repeats={args.repeats} "
        f"(min kept); load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'workload':16s} {'configuration':24s} {'req p/m':>8s} {'model':>7s} "
        f"{'local':>6s} {'pred':>7s} {'meas':>7s} {'error':>7s} {'bare':>7s}"
    )
    print(header)
    all_ms = []
    with GcsEmulator() as emu:
        for name in args.workloads.split(","):
            w = get_workload(name, **MEASURE_SCALE[name], bucket=f"bench-{uuid.uuid4().hex[:10]}")
            t0 = time.perf_counter()
            ms = measure_configs(w, CONFIGS[name], emu, t, repeats=args.repeats)
            for m in ms:
                all_ms.append(m)
                print(
                    f"{name:16s} {m.label:24s} {m.predicted_requests:>3d}/{m.measured_requests:<4d}"
                    f" {m.predicted_s:6.2f}s {m.baseline_s:5.2f}s {m.calibrated_s:6.2f}s"
                    f" {m.measured_s:6.2f}s {m.error_pct:+6.1f}% {m.raw_error_pct:+6.1f}%"
                )
            print(f"  ({name}: {time.perf_counter() - t0:.0f} s)")
    within = [m for m in all_ms if abs(m.error_pct) <= 15]
    same_requests = all(m.predicted_requests == m.measured_requests for m in all_ms)
    worst = max(abs(m.error_pct) for m in all_ms)
    print(
        f"RESULT {len(within)}/{len(all_ms)} configurations within 15 % (worst {worst:.1f} %); "
        f"requests predicted == measured for all: {same_requests}"
    )


if __name__ == "__main__":
    main()
