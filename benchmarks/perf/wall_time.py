"""Predicted vs measured wall time of real tf.data programs on a shaped bucket (issue 17).

Run: ``python -m benchmarks.perf.wall_time [--runs 3] [--programs sequential,interleave,...]
[--fake]``

- The bucket: ``gcs-hook serve --tls --timing HIDDEN.json`` in its own process, a fake GCS
  whose answers follow a timing profile the predictor is never told (:data:`HIDDEN`: lognormal
  first-byte latency with median 30 ms and p99 90 ms, 32 MiB/s per stream, a 64 MiB/s
  aggregate cap shared by concurrent responses, 2 ms per request).
- The programs (:data:`PROGRAM_CODE`), over 4 TFRecord files of 6 MiB in 256 KiB records:
  ``sequential`` (one reader), ``interleave`` (tf.data ``interleave``, 4 parallel readers),
  ``interleave-work`` (the same, 40 ms of work per element behind ``prefetch``: compute-bound)
  and ``follower`` (TensorBoard-like: polls the 4 files in turn, reads what is new since its
  last poll in 1 MiB chunks, sleeps 50 ms between polls).
- Each program is recorded once with ``record --upstream`` (:func:`benchmarks.record.upstream.
  record_upstream`) through the pass-through front; the timing profile is fitted from that
  recording (:mod:`benchmarks.sweep.fit`) and every configuration's wall time predicted from
  the trace (:mod:`benchmarks.sweep.wall`), as ``tune --workload TRACE`` does.
- Measured: real TF runs the same program straight against the bucket, ``--runs`` times per
  configuration (cache off first, then each cache set with ``configure_gcs``), each run on
  its own copy of the files (a cold cache); the median is compared with the prediction.
- ``--fake``: the programs are also recorded in fake mode (``gcs-hook record``, no shaping)
  and predicted with the hidden profile given explicitly (``tune --timing``).

Traffic goes only to 127.0.0.1 and is bounded: ``(1 + configs x runs)`` x 24 MiB per program.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from benchmarks.perf.servers import ServeProcess
from benchmarks.workloads.files import tfrecord_bytes

MiB = 1 << 20
BUCKET = "bench-wall"
FILES, FILE_MIB, RECORD_KIB = 4, 6, 256
CONFIGS: list[tuple[str, tuple[int, int] | None]] = [
    ("off", None),
    ("1MiB/8MiB", (1 * MiB, 8 * MiB)),
    ("4MiB/32MiB", (4 * MiB, 32 * MiB)),
    ("8MiB/64MiB", (8 * MiB, 64 * MiB)),
]

#: The bucket's timing: what the shaped bucket applies and the predictor is not told.
HIDDEN = {
    "format": "gcs-hook-timing-profile", "version": 1, "latency_median_s": 0.030,
    "latency_p99_s": 0.090, "stream_bandwidth_Bps": 32 * MiB,
    "aggregate_bandwidth_Bps": 64 * MiB, "per_request_overhead_s": 0.002, "seed": 17,
    "source": "benchmarks.perf.wall_time: the shaped bucket (hidden from the predictor)",
}  # fmt: skip

PROGRAM_CODE = """
import time
import tensorflow as tf

def run_program(name, files):
    if name == "sequential":
        return sum(1 for _ in tf.data.TFRecordDataset(files))
    if name in ("interleave", "interleave-work"):
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=4, deterministic=True)
        if name == "interleave":
            return sum(1 for _ in ds)
        n = 0
        for _ in ds.prefetch(8):
            time.sleep(0.040)  # the work per element (a training step), behind prefetch
            n += 1
        return n
    if name == "follower":
        pos = {f: 0 for f in files}
        handles = {f: tf.io.gfile.GFile(f, "rb") for f in files}
        n, done = 0, set()
        while len(done) < len(files):
            for f in files:
                if f in done:
                    continue
                h = handles[f]
                h.seek(pos[f])
                chunk = h.read(1 << 20)
                pos[f] += len(chunk)
                n += len(chunk)
                if len(chunk) < (1 << 20):
                    done.add(f)
            time.sleep(0.050)  # the next poll
        return n
    raise ValueError(name)
"""

SCRIPT = (
    PROGRAM_CODE
    + """
import json, sys
t0 = time.perf_counter()
n = run_program(sys.argv[1], sys.argv[2:])
print(json.dumps({"seconds": time.perf_counter() - t0, "n": n}))
"""
)

RUN_CODE = (
    PROGRAM_CODE
    + """
from gcs_hook import BlockCacheParams, configure_gcs
if cache is not None:
    configure_gcs(block_cache=BlockCacheParams(block_size=cache[0], max_bytes=cache[1],
                                               max_staleness=0))
t0 = time.perf_counter()
n = run_program(name, files)
result = {"seconds": time.perf_counter() - t0, "n": n}
"""
)


def _files(copy: int) -> list[str]:
    return [f"gs://{BUCKET}/c{copy}/part-{i}.tfrecord" for i in range(FILES)]


def _write_data(root: str, copies: int) -> None:
    records = [os.urandom(RECORD_KIB * 1024 - 16) for _ in range(FILE_MIB * 1024 // RECORD_KIB)]
    blob = tfrecord_bytes(records)
    for c in range(copies):
        d = os.path.join(root, BUCKET, f"c{c}")
        os.makedirs(d)
        for i in range(FILES):
            with open(os.path.join(d, f"part-{i}.tfrecord"), "wb") as fh:
                fh.write(blob)


def _record(program: str, script: str, bucket: ServeProcess) -> dict[str, Any]:
    from benchmarks.record.upstream import record_upstream
    from emulator.fakegcs.upstream import UpstreamConfig

    assert bucket.tls_port is not None and bucket.ca is not None
    cfg = UpstreamConfig(("127.0.0.1", bucket.tls_port), bucket.ca)
    env = {"GOOGLE_AUTH_TOKEN_FOR_TESTING": "bench", "NO_GCE_CHECK": "true"}
    rec = record_upstream([sys.executable, script, program, *_files(0)], upstream=cfg,
                          extra_env=env)  # fmt: skip
    if rec.returncode != 0:
        raise RuntimeError(f"recording {program} failed (exit {rec.returncode})")
    return rec.result.trace


def _record_fake(program: str, script: str, data_dir: str) -> dict[str, Any]:
    from benchmarks.record.program import record_program

    rec = record_program([sys.executable, script, program, *_files(0)], data_dir=data_dir)
    return rec.result.trace


def _measure(program: str, bucket: ServeProcess, runs: int) -> dict[str, list[float]]:
    from emulator.replay.tf_worker import TfWorker

    env = {**bucket.env, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "bench", "NO_GCE_CHECK": "true"}
    out: dict[str, list[float]] = {}
    copy = 1
    with TfWorker(env) as w:
        for name, cache in CONFIGS:
            out[name] = []
            for _ in range(runs):
                got = w.run(RUN_CODE, name=program, files=_files(copy),
                            cache=list(cache) if cache else None, timeout=300)  # fmt: skip
                out[name].append(got["seconds"])
                copy += 1
    return out


def _predict(trace: dict[str, Any], profile: Any) -> dict[str, Any]:
    from benchmarks.sweep.grid import CacheConfig
    from benchmarks.sweep.wall import predict_wall

    out = {}
    for name, cache in CONFIGS:
        cfg = CacheConfig(*cache, 0) if cache else CacheConfig(0, 0, 0)
        w, _ = predict_wall(trace, cfg, profile)
        out[name] = w
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--programs", default="sequential,interleave,interleave-work,follower")
    ap.add_argument("--fake", action="store_true", help="also record in fake mode (+--timing)")
    ap.add_argument("--keep", metavar="DIR", help="also write each recorded trace to DIR")
    args = ap.parse_args()
    from benchmarks.sweep.fit import fit_profile, trace_samples
    from emulator.fakegcs.profile import TimingProfile

    programs = args.programs.split(",")
    hidden = TimingProfile.from_json(HIDDEN)
    t_start = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-wall-") as tmp:
        data = os.path.join(tmp, "data")
        _write_data(data, 1 + len(CONFIGS) * args.runs)
        script = os.path.join(tmp, "program.py")
        with open(script, "w") as fh:
            fh.write(SCRIPT)
        prof = os.path.join(tmp, "hidden.json")
        with open(prof, "w") as fh:
            json.dump(HIDDEN, fh)
        bucket = ServeProcess(
            data, "--tls", "--timing", prof, "--state-file", os.path.join(tmp, "state.json")
        )  # the shaped bucket
        try:
            for program in programs:
                trace = _record(program, script, bucket)
                if args.keep:
                    from emulator.atomic_files import write_atomic

                    os.makedirs(args.keep, exist_ok=True)
                    write_atomic(os.path.join(args.keep, f"{program}.json"), json.dumps(trace))
                fit = fit_profile(trace_samples(trace))
                print(f"## {program}: recorded {len(trace['ops'])} ops, "
                      f"{trace['recorded']['lanes']} lanes", flush=True)  # fmt: skip
                for line in fit.lines():
                    print("   " + line)
                pred = _predict(trace, fit.profile)
                fake_pred = None
                if args.fake:
                    fake_pred = _predict(_record_fake(program, script, data), hidden)
                measured = _measure(program, bucket, args.runs)
                for name, _ in CONFIGS:
                    m = statistics.median(measured[name])
                    p = pred[name]
                    row = {"program": program, "config": name, "measured_s": m,
                           "runs": measured[name], "predicted_s": p.wall_s,
                           "error": p.wall_s / m - 1, "io_bound": p.io_bound_fraction}  # fmt: skip
                    if fake_pred is not None:
                        row["fake_predicted_s"] = fake_pred[name].wall_s
                        row["fake_error"] = fake_pred[name].wall_s / m - 1
                    rows.append(row)
                    extra = (f"  fake+--timing {row['fake_predicted_s']:6.2f} s "
                             f"({row['fake_error'] * 100:+5.1f} %)" if fake_pred else "")  # fmt: skip
                    print(f"   {name:<11} measured {m:6.2f} s  predicted {p.wall_s:6.2f} s "
                          f"({row['error'] * 100:+5.1f} %)  I/O-bound {p.io_bound_fraction:4.0%}"
                          f"{extra}", flush=True)  # fmt: skip
        finally:
            bucket.close()
    worst = max(abs(r["error"]) for r in rows) if rows else 0.0
    print(f"\n| program | config | measured s (median of {args.runs}) | predicted s | error |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['program']} | {r['config']} | {r['measured_s']:.2f} | "
              f"{r['predicted_s']:.2f} | {r['error'] * 100:+.1f} % |")  # fmt: skip
    print(f"\nworst |error| {worst * 100:.1f} % (target <= 10 %); "
          f"{time.monotonic() - t_start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
