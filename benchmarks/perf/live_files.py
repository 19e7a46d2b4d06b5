"""Benchmark: what TF 2.21 serves when an object changes under its caches (real TF, the front).

For each case a fresh TF process reads ``gs://…/ckpt`` (3 MiB, version 1) through the block
cache, another writer (the backend, like a trainer on another machine) overwrites it with
version 2 at t=0, and the reader polls (a new GFile every 0.1 s reading the first 100 bytes)
until it sees version 2. Prints the seconds it kept serving version 1:

- the stat-cache window: default ``GCS_STAT_CACHE_MAX_AGE`` (5 s) and 2 s;
- ``max_staleness`` 1 s with the default stat cache (blocks older than 1 s are dropped: the
  reader refetches, and the window can end before the stat entry expires);
- ``GCS_READ_CACHE_DISABLED=1`` with the cache configured (TensorBoard's documented
  workaround): whether TF 2.21 still serves version 1 (it is ignored);
- the cache off, for comparison (no window).

    python -m benchmarks.perf.live_files [--repeats N]

Bounded: each poll stops after 30 s; about a minute in all.
"""

from __future__ import annotations

import argparse
import statistics
import uuid

from emulator.fakegcs.session import GcsEmulator
from emulator.replay.tf_worker import TfWorker
from emulator.replay.trace import digest_chain
from gcs_hook.units import MiB

CASES = [
    ("cache 1MiB/8MiB, stat cache 5 s (default)", {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1",
     "GCS_READ_CACHE_MAX_SIZE_MB": "8"}),
    ("cache 1MiB/8MiB, GCS_STAT_CACHE_MAX_AGE=2", {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1",
     "GCS_READ_CACHE_MAX_SIZE_MB": "8", "GCS_STAT_CACHE_MAX_AGE": "2"}),
    ("cache 1MiB/8MiB, max_staleness 1 s", {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1",
     "GCS_READ_CACHE_MAX_SIZE_MB": "8", "GCS_READ_CACHE_MAX_STALENESS": "1"}),
    ("cache 1MiB/8MiB + GCS_READ_CACHE_DISABLED=1", {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1",
     "GCS_READ_CACHE_MAX_SIZE_MB": "8", "GCS_READ_CACHE_DISABLED": "1"}),
    ("cache off (TF default)", {}),
]  # fmt: skip

POLL = """
import time
def head():
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read(100)
first = head()
ready = True
"""
WAIT = """
t0 = time.time()
while time.time() - t0 < 30:
    if head() != first:
        break
    time.sleep(0.1)
result = time.time() - t0
"""


def stale_window(emu: GcsEmulator, env: dict[str, str]) -> float:
    bucket = f"live-{uuid.uuid4().hex[:10]}"
    emu.backend.create_bucket(bucket)
    try:
        emu.backend.put_object(bucket, "ckpt", digest_chain("v1", 3 * MiB))
        with TfWorker({**emu.tf_env(), **env}) as w:
            w.run(POLL, path=f"gs://{bucket}/ckpt")
            emu.backend.put_object(bucket, "ckpt", digest_chain("v2", 3 * MiB))
            return float(w.run(WAIT, timeout=60))
    finally:
        emu.backend.delete_bucket(bucket)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with GcsEmulator() as emu:
        for label, env in CASES:
            times = [stale_window(emu, env) for _ in range(args.repeats)]
            print(f"{label:48s} old version served for {min(times):5.2f}-{max(times):5.2f} s "
                  f"(median {statistics.median(times):.2f} s, {args.repeats} runs)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
