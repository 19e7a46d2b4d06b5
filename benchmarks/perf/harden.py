"""What the hardening of issue 19 costs (prints numbers; no assertions).

1. The one trace reader on a columnar trace of N ops (default 5 million: 1000 files, each
   opened, read sequentially in 64 KiB reads, closed): ``load_columnar`` alone (structure: members, dtypes,
   declared sizes; memory-mapped) against ``read_trace_file`` (the same plus every column
   checked against ``KIND_RULES`` and open-before-use), side by side, median of R rounds;
   seconds, ns per op, ratio, and the check's peak traced memory in bytes per op.
2. The same for the JSON form of a 200 000-op trace (``json`` parse + ``load_trace`` +
   limits) — what the check costs per op there.
3. A deflate bomb (1.1 GiB of zero rows in a ~1 MB ``.npz``): seconds to refusal and the
   process's peak-RSS growth (nothing is inflated).
4. ``write_atomic`` (exclusive create + fsync + rename) against a plain ``open``/``write`` of
   the same ~10 MB trace JSON (150 000 ops), median of R rounds.
5. ``persist_problem`` (the ``--persist`` symlink walk) per request for a 4-deep object name
   in a real directory tree, µs per call.

Usage: python -m benchmarks.perf.harden [--ops 5000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np

from emulator.atomic_files import write_atomic
from emulator.fakegcs.persist_guard import persist_problem
from emulator.replay.columnar import CLOSE, OPEN, READ, ColumnarTrace, load_columnar, save_columnar
from emulator.replay.limits import MAX_INFLATED_BYTES, TraceError
from emulator.replay.reader import CHECK_CHUNK_ROWS, check_columns, read_trace_file


def _median(fn, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_columns(ops: int, objects: int = 1000) -> ColumnarTrace:
    """``objects`` files each opened, read sequentially in 64 KiB reads, closed: ~``ops`` ops."""
    reads = max(1, ops // objects - 2)
    per = reads + 2
    kind = np.tile(np.array([OPEN] + [READ] * reads + [CLOSE], np.uint8), objects)
    obj = np.repeat(np.arange(objects, dtype=np.int32), per)
    offset = np.tile(np.array([0, *range(0, reads * 65536, 65536), 0], np.int64), objects)
    n = np.tile(np.array([0] + [65536] * reads + [0], np.int64), objects)
    names = [f"bench/shard-{i:05d}" for i in range(objects)]
    sizes = np.full(objects, reads * 65536, np.int64)
    return ColumnarTrace(names, sizes, kind, obj.copy(), obj, offset, n)


def _columnar(tmp: Path, ops: int, rounds: int) -> None:
    ct = synthetic_columns(ops)
    path = tmp / "big.npz"
    save_columnar(ct, path)
    n = len(ct)
    structure = _median(lambda: load_columnar(path), rounds)
    full = _median(lambda: read_trace_file(path), rounds)
    peaks = {}
    for size in (n // 5, n):
        small = synthetic_columns(size)
        tracemalloc.start()
        check_columns(small)
        peaks[len(small)] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"1. columnar trace, {n} ops ({path.stat().st_size / 1e6:.0f} MB file):")
    print(f"   load_columnar (structure only): {structure:.3f} s")
    print(f"   read_trace_file (+ every column checked): {full:.3f} s "
          f"({(full - structure) / n * 1e9:.1f} ns/op for the checks; ratio {full / structure:.1f}x)")  # fmt: skip
    shown = ", ".join(f"{p / 1e6:.0f} MB at {k} ops" for k, p in peaks.items())
    print(f"   check_columns peak traced memory: {shown} (chunks of {CHECK_CHUNK_ROWS} rows)")


def _json(tmp: Path, rounds: int) -> None:
    from emulator.replay.columnar import to_dict

    trace = to_dict(synthetic_columns(200_000, objects=200))
    path = tmp / "t.json"
    path.write_text(json.dumps(trace))
    n = len(trace["ops"])
    parse = _median(lambda: json.loads(path.read_text()), rounds)
    full = _median(lambda: read_trace_file(path), rounds)
    tracemalloc.start()
    read_trace_file(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    size = path.stat().st_size
    print(f"2. JSON trace, {n} ops ({size / 1e6:.1f} MB): json.loads {parse:.3f} s; read_trace_file "
          f"{full:.3f} s ({(full - parse) / n * 1e6:.2f} µs/op for validation and limits); peak "
          f"traced memory {peak / 1e6:.0f} MB = {peak / size:.1f}x the file")  # fmt: skip


def _bomb(tmp: Path) -> None:
    path = tmp / "bomb.npz"
    rows = (MAX_INFLATED_BYTES // 8) * 9 // 8
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.int64))
    header["shape"] = (rows,)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("n.npy", "w", force_zip64=True) as fh,
    ):
        np.lib.format.write_array_header_1_0(fh, header)
        zero = bytes(1 << 24)
        for _ in range(rows * 8 // len(zero)):
            fh.write(zero)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        read_trace_file(path)
    except TraceError as exc:
        message = str(exc)
    seconds = time.perf_counter() - t0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"3. deflate bomb ({path.stat().st_size / 1e6:.1f} MB file declaring {rows * 8 / 2**30:.2f} "
          f"GiB): refused in {seconds * 1e3:.1f} ms, peak RSS +{grown / 1024:.1f} MiB")  # fmt: skip
    print(f"   message: {message}")


def _writes(tmp: Path, rounds: int) -> None:
    from emulator.replay.columnar import to_dict

    text = json.dumps(to_dict(synthetic_columns(150_000, objects=100)), indent=1)

    def plain() -> None:
        with open(tmp / "plain.json", "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic = _median(lambda: write_atomic(tmp / "atomic.json", text), rounds)
    simple = _median(plain, rounds)
    print(f"4. writing a {len(text) / 1e6:.1f} MB trace: plain {simple * 1e3:.1f} ms, atomic "
          f"(O_EXCL + fsync + rename) {atomic * 1e3:.1f} ms (ratio {atomic / simple:.1f}x)")  # fmt: skip


def _persist(tmp: Path) -> None:
    root = tmp / "persist"
    (root / "bkt" / "a" / "b" / "c").mkdir(parents=True)
    (root / "bkt" / "a" / "b" / "c" / "d.bin").write_bytes(b"x")
    path = "/storage/v1/b/bkt/o/a%2Fb%2Fc%2Fd.bin"
    calls = 20_000
    t0 = time.perf_counter()
    for _ in range(calls):
        persist_problem(str(root), "GET", path, "alt=media", "", b"")
    per = (time.perf_counter() - t0) / calls
    print(f"5. --persist symlink walk for a 4-deep name: {per * 1e6:.1f} µs per request")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=5_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="harden-bench-") as d:
        tmp = Path(d)
        _columnar(tmp, args.ops, args.rounds)
        _json(tmp, args.rounds)
        _bomb(tmp)
        _writes(tmp, args.rounds)
        _persist(tmp)
    os.sync()


if __name__ == "__main__":
    main()
