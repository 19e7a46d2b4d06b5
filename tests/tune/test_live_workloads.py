"""The live workloads against the real client code, real TF through the front.

- ``tensorboard``: TensorBoard's own ``EventMultiplexer`` reloading event files a trainer
  appends to. The synthesized trace (with ``tail`` ops) sends exactly the recorded requests with
  the recording settings, and predicts real runs exactly for cache off and cache-on configs
  (media requests, bytes, metadata requests).
- ``checkpoint-poller``: ``tf.train.latest_checkpoint`` + ``tf.train.Checkpoint.restore``
  while a trainer saves with ``tf.train.CheckpointManager``: the recorded trace predicts real
  cache-on runs (requests exactly; bytes up to the few bytes by which the ``checkpoint`` state
  file, which holds timestamps, differs between runs), and the stale poll it predicts is the
  one TF returned.
"""

from __future__ import annotations

import uuid

import pytest

from benchmarks.record import RECORDING_CONFIG
from benchmarks.record.live import record_live
from benchmarks.sweep import CacheConfig, run_sweep
from benchmarks.workloads import get_workload
from benchmarks.workloads.live import run_live
from emulator.replay.simulation import simulate

MiB = 1024 * 1024
pytestmark = pytest.mark.tf


def _real(emulator, workload, config: CacheConfig, tf_worker_factory, trainer=False) -> dict:
    emulator.backend.create_bucket(workload.bucket)
    try:
        env = {}
        if config.cache_on:
            env = {"GCS_READ_CACHE_BLOCK_SIZE_MB": str(config.block_size // MiB),
                   "GCS_READ_CACHE_MAX_SIZE_MB": str(config.max_bytes // MiB)}  # fmt: skip
        from emulator.replay.tf_worker import TfWorker

        mark = emulator.ledger.mark()
        with TfWorker({**emulator.tf_env(), **env}) as reader:
            if trainer:  # one trainer process for every run (it only saves locally)
                out = run_live(workload, emulator, reader, trainer=tf_worker_factory())
            else:
                out = run_live(workload, emulator, reader)
        emulator.ledger.wait_quiet()
        recs = [r for r in emulator.ledger.since(mark)
                if r.bucket == workload.bucket and r.principal == "test-token"]  # fmt: skip
        media = [r for r in recs if r.kind == "media"]
        return {"requests": len(media), "bytes": sum(r.bytes_out for r in media),
                "metadata": sum(r.kind == "metadata" for r in recs), "out": out}  # fmt: skip
    finally:
        emulator.backend.delete_bucket(workload.bucket)


def _bucket(name: str) -> str:
    return f"{name[:4]}-{uuid.uuid4().hex[:12]}"


def test_tensorboard_synthesized_equals_real_tensorboard(
    gcs_emulator, tf_worker_factory, tmp_path
) -> None:
    pytest.importorskip("tensorboard")
    base = get_workload("tensorboard", runs=3, event_bytes=100_000, initial_events=8,
                        events_per_reload=8, reloads=3, reload_interval_s=2)  # fmt: skip
    w = base.with_params(bucket=_bucket("tb"))
    trace, recorded = record_live(w, gcs_emulator)
    sim = simulate(w.synthesize(), RECORDING_CONFIG, buffer_size=0, record_requests=True,
                   stat_cache_max_age=0)  # fmt: skip
    assert [r for r in sim.requests if r["kind"] != "list"] == recorded
    configs = [
        CacheConfig(0, 0, 0),
        CacheConfig(MiB, 2 * MiB, 0),
        CacheConfig(8 * MiB, 16 * MiB, 0),
    ]
    predicted = run_sweep(base.synthesize(), configs, engine="model", workers=1)
    rows = []
    for config, pred in zip(configs, predicted, strict=True):
        real = _real(
            gcs_emulator, base.with_params(bucket=_bucket("tb")), config, tf_worker_factory
        )
        rows.append((config.as_dict(), pred.media_requests, real["requests"],
                     pred.media_bytes_fetched, real["bytes"]))  # fmt: skip
        assert (pred.media_requests, pred.media_bytes_fetched, pred.metadata_requests) == (
            real["requests"], real["bytes"], real["metadata"]), rows[-1]  # fmt: skip
    print("\ntensorboard: config, requests predicted/real, bytes predicted/real")
    for row in rows:
        print(row)
    _tune_advice_on_the_recording(trace, tmp_path)


def _tune_advice_on_the_recording(trace: dict, tmp_path) -> None:
    """Issue 18: the README's command on real TensorBoard's recording (the trainer appended
    over 3 reloads). A follower re-reads what it has; appended bytes keep the old ones, so no
    configuration is hazardous for it and cache off is not flagged; the advice fetches at most
    1.1x the cache-off bytes (a large block re-fetches whole blocks of every growing file)."""
    import json
    import subprocess
    import sys

    path = tmp_path / "tensorboard.json"
    path.write_text(json.dumps(trace))
    res = subprocess.run(
        [sys.executable, "-c", "from gcs_hook.cli import main; main()", "tune", "--workload",
         str(path), "--json", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    (off,) = [r for r in rows if r["config"] is None]
    flags = ("stale_reads", "torn_reads", "torn_files", "errors")
    assert not any(off[k] for k in flags), off
    (best,) = [r for r in rows if r["recommended"]]
    assert best["config"] is None or best["bytes_fetched"] <= 1.1 * off["bytes_fetched"], best


def test_checkpoint_poller_predicted_and_stale_poll(gcs_emulator, tf_worker_factory) -> None:
    base = get_workload("checkpoint-poller", variables=4, floats_per_variable=64 * 1024,
                        checkpoints=2, poll_interval_s=2)  # fmt: skip
    trace, _ = record_live(
        base.with_params(bucket=_bucket("cp")), gcs_emulator, trainer=tf_worker_factory()
    )
    assert {"overwrite", "read", "stat", "sleep"} <= {op["op"] for op in trace["ops"]}
    configs = [CacheConfig(MiB, 16 * MiB, 0), CacheConfig(8 * MiB, 16 * MiB, 0)]
    off, *predicted = run_sweep(trace, [CacheConfig(0, 0, 0), *configs], engine="model",
                                workers=1)  # fmt: skip
    assert not off.hazardous and not off.stale_files  # cache off: no hazard flagged
    for config, pred in zip(configs, predicted, strict=True):
        w = base.with_params(bucket=_bucket("cp"))
        real = _real(gcs_emulator, w, config, tf_worker_factory, trainer=True)
        assert pred.media_requests == real["requests"]
        assert pred.metadata_requests == real["metadata"]
        assert abs(pred.media_bytes_fetched - real["bytes"]) < 64  # state-file timestamps
        # polls: [after save 1, again, after save 2 (stale while the stat entry is fresh), again]
        polls = [p[0] for p in real["out"][1:]]
        stale_seen = polls[2] is not None and polls[2].endswith("ckpt-1")
        assert stale_seen == (pred.stale_reads > 0), (polls, pred)
        # torn: a restore whose variables are not all of the checkpoint it named (variable 0
        # of checkpoint k holds k); TF's answers against the model's torn-file count
        torn_real = sum(
            1 for p, value in (r for r in real["out"][1:])
            if p is not None and value != float(int(p.rsplit("-", 1)[1]))
        )  # fmt: skip
        assert pred.torn_files == torn_real, (real["out"], pred)
