"""Byte-moving sequential read of a 256 MiB object: the model over gcsfs vs real TensorFlow,
both through the same front (one fake GCS), same cache configuration, same 1 MiB positional
reads on one random-access file (prints MB/s and the ratio; target model >= 0.8x TF).

Both readers run in their own subprocess so neither competes with the in-process front for the
GIL: TF via :class:`emulator.replay.tf_worker.TfWorker` + the project's random-access ops (cache
configured through ``GCS_READ_CACHE_*`` env vars before import; a fresh TF process per run so
the cold pass is cold), the model via
``python -m benchmarks.perf.model_vs_tf --child ...``. Each configuration runs TF and model
alternately (``--repeat`` times) and reports the best run of each.

Usage: python -m benchmarks.perf.model_vs_tf [--size-mib 256] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from gcs_hook.units import MiB

CHUNK = MiB

CONFIGS = {
    # name: (block_size, max_bytes, max_staleness) in bytes/bytes/seconds; None = TF defaults
    "tf-defaults (cache off, 64 MiB buffer)": None,
    "cache on: 16 MiB blocks, 512 MiB max": (16 * MiB, 512 * MiB, 0),
}

TF_CODE = """
import time
from gcs_hook import native_ops
ops = native_ops.load()
ops.gcs_random_access_open(handle="bench", path=path)
got = 0
t0 = time.perf_counter()
for p in range(passes):
    off = 0
    while True:
        data, code, msg = ops.gcs_random_access_read(handle="bench", offset=off, n=chunk)
        n = len(data.numpy())
        got += n
        off += n
        if n < chunk:
            break
    if p == 0:
        first = time.perf_counter() - t0
dt = time.perf_counter() - t0
ops.gcs_random_access_close(handle="bench")
result = {"bytes": got, "seconds": dt, "first_pass_seconds": first}
"""


def child(url: str, path: str, config: str, passes: int) -> None:
    """Model side (runs in a subprocess): read the object sequentially, print JSON timing."""
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    from emulator.model.clock import RealClock
    from emulator.model.gcs_model import GcsFilesystemModel
    from emulator.model.transport import GcsfsTransport

    params = json.loads(config)
    if params is not None:
        params = dict(zip(("block_size", "max_bytes", "max_staleness"), params, strict=True))
    fs = gcsfs.GCSFileSystem(endpoint_url=url, token="anon", skip_instance_cache=True)
    model = GcsFilesystemModel(GcsfsTransport(fs, record=False), params, clock=RealClock())
    f = model.open(path)
    got = 0
    first = 0.0
    t0 = time.perf_counter()
    for p in range(passes):
        off = 0
        while True:
            n = f.read(off, CHUNK).returned
            got += n
            off += n
            if n < CHUNK:
                break
        if p == 0:
            first = time.perf_counter() - t0
    dt = time.perf_counter() - t0
    print(json.dumps({"bytes": got, "seconds": dt, "first_pass_seconds": first}))


def run_model(url: str, path: str, config: tuple | None, passes: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.perf.model_vs_tf",
            "--child",
            url,
            path,
            json.dumps(config),
            str(passes),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def tf_env_for(em, config: tuple | None) -> dict[str, str]:
    env = em.tf_env()
    env["GCS_RETRY_CONFIG_INIT_DELAY_TIME_US"] = "0"
    if config is not None:
        block, max_bytes, stale = config
        env["GCS_READ_CACHE_BLOCK_SIZE_MB"] = str(block // MiB)
        env["GCS_READ_CACHE_MAX_SIZE_MB"] = str(max_bytes // MiB)
        env["GCS_READ_CACHE_MAX_STALENESS"] = str(stale)
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", nargs=4, metavar=("URL", "PATH", "CONFIG", "PASSES"))
    args = ap.parse_args()
    if args.child:
        url, path, config, passes = args.child
        child(url, path, config, int(passes))
        return

    from emulator.fakegcs.session import GcsEmulator
    from emulator.replay.tf_worker import TfWorker

    size = args.size_mib * MiB
    with GcsEmulator() as em:
        em.backend.create_bucket("bench")
        em.backend.put_object("bench", "big.bin", os.urandom(size))
        path = "gs://bench/big.bin"
        print(
            f"== sequential read of {args.size_mib} MiB in 1 MiB positional reads, through the "
            f"front ({em.url}); best of {args.repeat}"
        )
        for name, config in CONFIGS.items():
            passes = 1 if config is None else 2
            best_tf: dict | None = None
            best_model: dict | None = None
            for _ in range(args.repeat):
                # A fresh TF process per run: TF's block cache lives as long as its process.
                with TfWorker(tf_env_for(em, config), timeout=600) as tf:
                    r = tf.run(TF_CODE, path=path, chunk=CHUNK, passes=passes)
                assert r["bytes"] == size * passes, r
                if best_tf is None or r["first_pass_seconds"] < best_tf["first_pass_seconds"]:
                    best_tf = r
                m = run_model(em.url, path, config, passes)
                assert m["bytes"] == size * passes, m
                if best_model is None or m["first_pass_seconds"] < best_model["first_pass_seconds"]:
                    best_model = m
            assert best_tf and best_model
            tf_mbs = size / best_tf["first_pass_seconds"] / 1e6
            model_mbs = size / best_model["first_pass_seconds"] / 1e6
            print(f"  {name}")
            print(
                f"    cold pass: TF {tf_mbs:8.1f} MB/s   model+gcsfs {model_mbs:8.1f} MB/s   "
                f"ratio model/TF {model_mbs / tf_mbs:.2f}"
            )
            if passes == 2:
                tf_warm = size / (best_tf["seconds"] - best_tf["first_pass_seconds"]) / 1e6
                m_warm = size / (best_model["seconds"] - best_model["first_pass_seconds"]) / 1e6
                print(
                    f"    warm pass: TF {tf_warm:8.1f} MB/s   model+gcsfs {m_warm:8.1f} MB/s   "
                    f"ratio model/TF {m_warm / tf_warm:.2f}"
                )


if __name__ == "__main__":
    main()
