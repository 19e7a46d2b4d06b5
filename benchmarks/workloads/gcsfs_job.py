"""A real gcsfs reader, the program behind the built-in gcsfs workloads and their checks.

    python -m benchmarks.workloads.gcsfs_job BUCKET --mode MODE [--cache-type T]
        [--block-size N] [--maxblocks K] [--seed S]

Modes (each reads objects :func:`make_objects` wrote):

- ``footer``: footer walks over ``foot.bin``: the last 8 bytes, then a 64 KiB footer, then
  four 256 KiB "column chunks" at seeded offsets (what a columnar reader does);
- ``sequential``: one pass over ``seq.bin`` in 1 MiB reads;
- ``random``: 48 seeded random 64 KiB records of ``rec.bin``;
- ``parquet``: pyarrow reads ``table.parquet`` through a gcsfs file object (footer, then the
  column chunks of two of its columns);
- ``mixed``: footer, sequential and random, in that order (what the tests record).

Without ``--cache-type`` each file is opened with gcsfs's defaults (the program a user would
write); with it, every open passes ``cache_type``/``block_size`` (and ``maxblocks`` for
``blockcache``). The filesystem is ``gcsfs.GCSFileSystem()``: on the fake GCS
(``STORAGE_EMULATOR_HOST``) that is anonymous, as a user's program would be. Prints one JSON
line: SHA-256 prefixes of what each mode read (the same whatever the cache).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import random
from collections.abc import Callable
from typing import Any

KiB, MiB = 1024, 1024 * 1024
#: Object name -> size of the job's files (``table.parquet`` is written by pyarrow).
SIZES = {"foot.bin": 6 * MiB + 12345, "seq.bin": 12 * MiB + 777, "rec.bin": 8 * MiB}
MODES = ("footer", "sequential", "random", "parquet", "mixed")


def object_bytes(name: str, size: int) -> bytes:
    """Deterministic content of ``name`` (a cheap seeded stream)."""
    return random.Random(name).randbytes(size)


def parquet_bytes(rows: int = 60_000) -> bytes:
    """A real Parquet file: 4 columns, 3 row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(7)
    table = pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "x": pa.array([rng.random() for _ in range(rows)], pa.float64()),
        "y": pa.array([rng.randrange(1 << 30) for _ in range(rows)], pa.int64()),
        "label": pa.array([f"row-{i % 977}" for i in range(rows)]),
    })  # fmt: skip
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=rows // 3, compression="none")
    return buf.getvalue()


def make_objects(modes: tuple[str, ...] = MODES) -> dict[str, bytes]:
    """The job's objects (name -> content) for the given modes."""
    out = {name: object_bytes(name, size) for name, size in SIZES.items()}
    if "parquet" in modes:
        out["table.parquet"] = parquet_bytes()
    return out


def _opener(fs: Any, bucket: str, args: argparse.Namespace) -> Callable[[str], Any]:
    kw: dict[str, Any] = {}
    if args.cache_type:
        kw = {"cache_type": args.cache_type, "block_size": args.block_size}
        if args.cache_type == "blockcache" and args.maxblocks:
            kw["cache_options"] = {"maxblocks": args.maxblocks}
    return lambda name: fs.open(f"{bucket}/{name}", "rb", **kw)


def footer(open_: Callable[[str], Any], rng: random.Random) -> str:
    h = hashlib.sha256()
    size = SIZES["foot.bin"]
    with open_("foot.bin") as f:
        for _ in range(3):
            f.seek(size - 8)
            h.update(f.read(8))
            f.seek(size - 8 - 64 * KiB)
            h.update(f.read(64 * KiB))
            for _ in range(4):
                f.seek(rng.randrange(0, size - 256 * KiB))
                h.update(f.read(256 * KiB))
    return h.hexdigest()[:16]


def sequential(open_: Callable[[str], Any], rng: random.Random) -> str:
    h = hashlib.sha256()
    with open_("seq.bin") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()[:16]


def random_records(open_: Callable[[str], Any], rng: random.Random) -> str:
    h = hashlib.sha256()
    rec = 64 * KiB
    with open_("rec.bin") as f:
        for _ in range(48):
            f.seek(rng.randrange(SIZES["rec.bin"] // rec) * rec)
            h.update(f.read(rec))
    return h.hexdigest()[:16]


def parquet(open_: Callable[[str], Any], rng: random.Random) -> str:
    import pyarrow.parquet as pq

    with open_("table.parquet") as f:
        pf = pq.ParquetFile(f)
        table = pf.read(columns=["id", "x"], use_threads=False)  # reads in one order
        pf.close()
    digest = hashlib.sha256(str(table.column("x")[-1]).encode()).hexdigest()[:16]
    del pf, table, f
    # blockcache's lru_cache holds the file in a reference cycle: without a collection now,
    # pyarrow's reader is destroyed at interpreter teardown and aborts the process
    gc.collect()
    return digest


STEPS = {"footer": footer, "sequential": sequential, "random": random_records, "parquet": parquet}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bucket")
    ap.add_argument("--mode", choices=MODES, default="mixed")
    ap.add_argument("--cache-type", default=None)
    ap.add_argument("--block-size", type=int, default=5 * MiB)
    ap.add_argument("--maxblocks", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    import gcsfs

    fs = gcsfs.GCSFileSystem()
    open_ = _opener(fs, args.bucket, args)
    rng = random.Random(args.seed)
    steps = ("footer", "sequential", "random") if args.mode == "mixed" else (args.mode,)
    print(json.dumps({step: STEPS[step](open_, rng) for step in steps}))


#: The built-in gcsfs workloads (``tune --workload NAME``): name → the job's ``--mode``.
WORKLOADS = {
    "gcsfs-mixed": "mixed",
    "gcsfs-parquet": "parquet",
    "gcsfs-sequential": "sequential",
    "gcsfs-random": "random",
}


if __name__ == "__main__":
    main()
