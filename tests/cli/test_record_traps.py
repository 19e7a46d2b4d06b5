"""``record``/``serve`` traps (issue 18): a bucket directory GCS would refuse, and a ledger
recorded without the recording settings, are refused before anything starts, in one line."""

from __future__ import annotations

import json
import uuid

import pytest
from _support import cli_in_process, one_error_line
from test_cli_values import run_cli

from benchmarks.record import PROGRAM_RECORDING_ENV

MiB = 1024 * 1024


@pytest.mark.parametrize("bucket", ["tb", "My_Logs", "-logs", "a" * 64])
def test_data_with_an_invalid_bucket_directory_is_refused_with_the_rule(tmp_path, bucket) -> None:
    (tmp_path / "seed" / bucket).mkdir(parents=True)
    (tmp_path / "seed" / bucket / "events").write_bytes(b"x" * 10)
    out = tmp_path / "job.json"
    # in-process; the --from-ledger refusals below run the console script in a real process
    seed = str(tmp_path / "seed")
    rec = one_error_line(cli_in_process("record", "--data", seed, "--out", str(out), "--", "true"))
    assert "is not a valid GCS bucket name" in rec and "3-63 characters" in rec
    assert not out.exists()
    serve = one_error_line(cli_in_process("serve", "--data", seed, "--duration", "1"))
    assert "is not a valid GCS bucket name" in serve and "starting and ending" in serve


def _ledger(tmp_path, emulator, tf_worker_factory, env: dict[str, str]):  # noqa: ANN001
    """A JSONL ledger of real TF reading an object through the front with ``env``."""
    bucket = f"lg-{uuid.uuid4().hex[:10]}"
    emulator.backend.create_bucket(bucket)
    emulator.backend.put_object(bucket, "data.bin", b"d" * (3 * MiB))
    mark = emulator.ledger.mark()
    with tf_worker_factory(env) as worker:
        worker.run(
            "f = tf.io.gfile.GFile(path, 'rb')\n"
            "for off in range(0, 3 * 2**20, 200_000):\n"
            "    f.seek(off); f.read(50_000)\n"
            "result = None\n",
            path=f"gs://{bucket}/data.bin",
        )
    emulator.ledger.wait_quiet()
    path = tmp_path / f"ledger-{len(env)}-{uuid.uuid4().hex[:6]}.jsonl"
    with open(path, "w") as fh:
        for rec in emulator.ledger.since(mark):
            if rec.bucket == bucket:
                fh.write(json.dumps(rec.to_json()) + "\n")
    return path


@pytest.mark.tf
def test_from_ledger_refuses_a_ledger_without_the_recording_settings(
    tmp_path, gcs_emulator, tf_worker_factory
) -> None:
    pytest.importorskip("tensorflow")
    block_cache = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "8"}
    for env, needle in (({}, "64 MiB read-ahead"), (block_cache, "whole 1 MiB block")):
        ledger = _ledger(tmp_path, gcs_emulator, tf_worker_factory, env)
        out = tmp_path / "job.json"
        line = one_error_line(run_cli("record", "--from-ledger", str(ledger), "--out", str(out)))
        assert "not recorded with the recording settings" in line and needle in line, line
        assert "GCS_READ_CACHE_BLOCK_SIZE_MB=0" in line and "gcs-hook record -- CMD" in line
        assert not out.exists()
    good = _ledger(tmp_path, gcs_emulator, tf_worker_factory, dict(PROGRAM_RECORDING_ENV))
    ok = run_cli("record", "--from-ledger", str(good), "--out", str(tmp_path / "ok.json"))
    assert ok.returncode == 0, ok.stderr
    trace = json.loads((tmp_path / "ok.json").read_text())
    assert sum(op["op"] == "read" for op in trace["ops"]) >= 10
