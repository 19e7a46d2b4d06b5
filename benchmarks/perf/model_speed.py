"""Speed of the Python model (prints numbers; no assertions).

1. Block-trace replay, >= 5 M whole-block reads (Zipf over block ids), all engines on the same
   binary oracleGeneral trace in the same run (Python engines timed including reading the file;
   libcachesim timed on ``process_trace`` only): libcachesim's LRU (C), a plain ``OrderedDict``
   LRU baseline, :func:`emulator.replay.simulation.replay_block_trace` (TF's byte-accounted LRU, tight
   loop) and the full size-only :class:`~emulator.model.block_cache.BlockCache`. Requests/s and
   ratios; miss ratios printed to show the engines agree. Target: tight loop >= 1/5 libcachesim.
2. Sweep speed: :func:`emulator.replay.simulation.simulate` (the full model: stat cache, signatures,
   block cache) on a 10 GiB-logical sequential workload (512 KiB reads, as TF's GFile issues
   them) for several cache configurations; configs/s and a projection for 100 configs on 2
   processes.
3. Cache-hit throughput of the byte-moving model: a 256 MiB object, 16 MiB blocks, 1 MiB reads;
   the second pass is all cache hits. Target: >= 1 GB/s.

Usage: python -m benchmarks.perf.model_speed [--requests 5000000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import OrderedDict

import numpy as np

from emulator.model.block_cache import BlockCache
from emulator.model.clock import VirtualClock
from emulator.model.gcs_model import GcsFilesystemModel
from emulator.model.transport import MemoryTransport
from emulator.replay.simulation import (
    read_oracle_general,
    replay_block_trace,
    simulate,
    write_oracle_general,
)
from emulator.replay.trace import CacheConfig
from gcs_hook.units import GiB, MiB


def ordered_dict_lru(keys: list, capacity: int) -> int:
    """The baseline: count-capacity LRU on an OrderedDict; returns hits."""
    od: OrderedDict = OrderedDict()
    move, pop = od.move_to_end, od.popitem
    hits = 0
    for k in keys:
        if k in od:
            move(k)
            hits += 1
        else:
            od[k] = None
            if len(od) > capacity:
                pop(False)
    return hits


def bench_block_replay(n_requests: int, unique_blocks: int, cache_blocks: int) -> None:
    block = MiB
    rng = np.random.default_rng(0)
    ids = (rng.zipf(1.2, n_requests) % unique_blocks).astype(np.uint64)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "blocks.oracleGeneral.bin")
        write_oracle_general(path, ids, block)
        print(
            f"== block-trace replay: {n_requests:,} reads, {unique_blocks:,} block ids (Zipf 1.2), "
            f"cache {cache_blocks:,} x 1 MiB blocks"
        )
        rates: dict[str, float] = {}
        try:
            import libcachesim as lcs

            # Generous to libcachesim: reader opened and cache built outside the timing, hash
            # table sized for the working set (the default hashpower 24 halves its speed here).
            reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
            cache = lcs.LRU(cache_blocks * block, hashpower=20)
            t0 = time.perf_counter()
            miss_ratio, _ = cache.process_trace(reader)
            dt = time.perf_counter() - t0
            rates["libcachesim LRU"] = n_requests / dt
            print(
                f"  libcachesim LRU        {n_requests / dt / 1e6:7.2f} M req/s  miss {miss_ratio:.4f}"
            )
        except ImportError:
            print("  libcachesim not installed: skipped")

        t0 = time.perf_counter()
        keys = read_oracle_general(path)[0].tolist()
        hits = ordered_dict_lru(keys, cache_blocks)
        dt = time.perf_counter() - t0
        rates["OrderedDict LRU"] = n_requests / dt
        print(
            f"  OrderedDict LRU        {n_requests / dt / 1e6:7.2f} M req/s  "
            f"miss {1 - hits / n_requests:.4f}"
        )

        t0 = time.perf_counter()
        obj_ids, _ = read_oracle_general(path)
        res = replay_block_trace(obj_ids, block, cache_blocks * block)
        dt = time.perf_counter() - t0
        rates["replay_block_trace"] = n_requests / dt
        print(
            f"  replay_block_trace     {n_requests / dt / 1e6:7.2f} M req/s  "
            f"miss {1 - res.hit_ratio:.4f}"
        )

        t0 = time.perf_counter()
        obj_ids, sizes = read_oracle_general(path)
        res = replay_block_trace(obj_ids, sizes, cache_blocks * block)
        dt = time.perf_counter() - t0
        rates["replay_block_trace (per-request sizes)"] = n_requests / dt
        print(
            f"  replay (sizes column)  {n_requests / dt / 1e6:7.2f} M req/s  "
            f"miss {1 - res.hit_ratio:.4f}"
        )

        cache = BlockCache(
            block, cache_blocks * block, 0, lambda f, o, n: n, VirtualClock(), size_only=True
        )
        read = cache.read
        t0 = time.perf_counter()
        for k in read_oracle_general(path)[0].tolist():
            read("gs://b/o", k * block, block)
        dt = time.perf_counter() - t0
        rates["BlockCache (full model)"] = n_requests / dt
        print(
            f"  BlockCache size-only   {n_requests / dt / 1e6:7.2f} M req/s  "
            f"miss {cache.stats.misses / n_requests:.4f}"
        )
        ref = rates.get("libcachesim LRU")
        if ref:
            for name, rate in rates.items():
                print(f"  ratio {name} / libcachesim = {rate / ref:.2f}")
        print(
            f"  ratio replay_block_trace / OrderedDict = "
            f"{rates['replay_block_trace'] / rates['OrderedDict LRU']:.2f}"
        )


def sequential_trace(total_bytes: int, shard_bytes: int, read_size: int) -> dict:
    shards = max(1, total_bytes // shard_bytes)
    objects = {f"bkt/shard-{i:04d}": shard_bytes for i in range(shards)}
    ops: list[dict] = []
    for i, name in enumerate(objects):
        h = f"h{i}"
        ops.append({"op": "open", "handle": h, "object": name})
        for off in range(0, shard_bytes + 1, read_size):  # the final read hits EOF
            ops.append({"op": "read", "handle": h, "offset": off, "n": read_size})
        ops.append({"op": "close", "handle": h})
    return {"config": None, "objects": objects, "ops": ops}


def bench_sweep(quick: bool) -> None:
    total = (1 if quick else 10) * GiB
    trace = sequential_trace(total, GiB // 4, 512 * 1024)
    n_reads = sum(1 for op in trace["ops"] if op["op"] == "read")
    configs = [
        None,
        CacheConfig(MiB, 64 * MiB),
        CacheConfig(8 * MiB, 256 * MiB),
        CacheConfig(16 * MiB, 512 * MiB),
        CacheConfig(64 * MiB, 1024 * MiB),
        CacheConfig(256 * 1024, 16 * MiB),
    ]
    from emulator.replay.trace import load_trace

    t0 = time.perf_counter()
    loaded = load_trace(trace)
    t_load = time.perf_counter() - t0
    print(
        f"== simulate(): {total / GiB:.0f} GiB-logical sequential workload, {n_reads:,} reads "
        f"of 512 KiB (trace load {t_load:.2f} s, once)"
    )
    times = []
    for cfg in configs:
        t0 = time.perf_counter()
        res = simulate(
            loaded,
            cfg
            if cfg is not None
            else {"block_size": 64 * MiB, "max_bytes": 0, "max_staleness": 0},
        )
        dt = time.perf_counter() - t0
        times.append(dt)
        print(
            f"  {str(cfg):60s} {dt * 1000:7.1f} ms  requests {res.requests_by_kind}  "
            f"fetched {res.bytes_fetched / GiB:.2f} GiB"
        )
    mean = sum(times) / len(times)
    print(
        f"  mean {mean * 1000:.1f} ms/config → 100 configs on 2 processes ≈ "
        f"{100 * mean / 2:.1f} s (+ one trace load per process)"
    )


def bench_cache_hits() -> None:
    size = 256 * MiB
    data = os.urandom(size)
    transport = MemoryTransport()
    transport.put("bkt", "big", data)
    fs = GcsFilesystemModel(transport, CacheConfig(16 * MiB, 512 * MiB), clock=VirtualClock())
    f = fs.open("gs://bkt/big")
    chunk = MiB
    print("== byte-moving model, 256 MiB object, 16 MiB blocks, 1 MiB reads (MemoryTransport)")
    for label in ("first pass (fills cache)", "second pass (all hits)"):
        t0 = time.perf_counter()
        got = 0
        for off in range(0, size, chunk):
            got += f.read(off, chunk).returned
        dt = time.perf_counter() - t0
        print(f"  {label:26s} {got / dt / 1e9:6.2f} GB/s  ({got / MiB:.0f} MiB in {dt:.3f} s)")
    assert got == size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5_000_000)
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    args = ap.parse_args()
    n = 500_000 if args.quick else args.requests
    bench_block_replay(n, 200_000, 5_000)
    bench_sweep(args.quick)
    bench_cache_hits()


if __name__ == "__main__":
    main()
