"""gcsfs readers: the model against real gcsfs, and what recording costs.

    python -m benchmarks.perf.gcsfs [--rounds 3]

Prints, for the built-in ``gcsfs-mixed`` job (footer walks, a sequential pass in 1 MiB reads,
48 seeded random 64 KiB records) and ``gcsfs-parquet`` (pyarrow reading two columns of a
Parquet file), recorded once with gcsfs's defaults:

1. predicted vs real media requests and bytes for ``readahead``, ``blockcache``, ``bytes`` and
   ``none`` at 1 MiB and 8 MiB blocks (real: the program run with that configuration through
   the front);
2. the job's wall time run plainly and under ``record`` (fsspec shim + peer attribution), side
   by side in each round, medians of ``--rounds``;
3. how long the model takes to sweep the default grid of the recorded trace.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from benchmarks.record.gcsfs import gcsfs_job_cmd, record_gcsfs_workload, seed_gcsfs_job
from benchmarks.sweep.engine_fsspec import default_grid, gcsfs_ops, label, sweep_gcsfs
from emulator.model.fsspec_cache import FsspecCacheConfig

MiB = 1024 * 1024
CONFIGS = [
    FsspecCacheConfig(t, b)
    for t in ("readahead", "blockcache", "bytes", "none")
    for b in (1 * MiB, 8 * MiB)
]


def _real(emu, mode: str, config: FsspecCacheConfig | None) -> tuple[int, int, float]:
    env = {**os.environ, **emu.tf_env(test_token=None)}
    mark = emu.ledger.mark()
    t0 = time.monotonic()
    subprocess.run(gcsfs_job_cmd(mode, config), env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    emu.ledger.wait_quiet(quiet_s=0.05, timeout=30)
    media = [r for r in emu.ledger.since(mark) if r.kind == "media"]
    return len(media), sum(r.bytes_out for r in media), seconds


def model_vs_real(emu, name: str, mode: str) -> None:
    from emulator.replay.trace import load_trace

    ops = gcsfs_ops(load_trace(record_gcsfs_workload(name)))
    rows = sweep_gcsfs(ops, CONFIGS)
    print(f"\n{name}: predicted / real media requests and bytes")
    print(f"{'config':18} {'requests':>14} {'bytes':>27}")
    equal = 0
    for row in rows:
        n, nbytes, _ = _real(emu, mode, row.config)
        equal += (row.requests, row.bytes_fetched) == (n, nbytes)
        print(f"{label(row.config):18} {row.requests:>6} / {n:<6} "
              f"{row.bytes_fetched:>12,} / {nbytes:<12,}")  # fmt: skip
    print(f"equal: {equal} of {len(rows)}")
    t0 = time.monotonic()
    grid = default_grid()
    sweep_gcsfs(ops, grid)
    print(f"model: {len(grid)} configurations of {len(ops)} ops in "
          f"{time.monotonic() - t0:.2f} s")  # fmt: skip


def recording_cost(emu, rounds: int) -> None:
    from benchmarks.record.program import record_program

    plain, recorded = [], []
    for _ in range(rounds):  # side by side in each round
        plain.append(_real(emu, "mixed", None)[2])
        t0 = time.monotonic()
        rec = record_program(gcsfs_job_cmd("mixed"), emulator=emu)
        recorded.append(time.monotonic() - t0)
        assert rec.returncode == 0
    p, r = statistics.median(plain), statistics.median(recorded)
    print(f"\ngcsfs-mixed wall time, median of {rounds}: plain {p:.2f} s, under record "
          f"{r:.2f} s (x{r / p:.2f}; includes converting the trace)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from emulator.fakegcs.session import GcsEmulator

    with GcsEmulator() as emu:
        seed_gcsfs_job(emu, "parquet")  # the bucket holds every object of the job
        model_vs_real(emu, "gcsfs-mixed", "mixed")
        model_vs_real(emu, "gcsfs-parquet", "parquet")
        recording_cost(emu, args.rounds)


if __name__ == "__main__":
    main()
