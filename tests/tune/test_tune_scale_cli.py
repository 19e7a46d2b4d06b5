"""``gcs-hook tune`` at scale: bounded --param values, --workers capped at the cores, sampling
flags, and sampled/exact sweeps reported in summary.json."""

from __future__ import annotations

import json

import pytest
from _support import cli_in_process, one_error_line
from test_tune_cli import run_cli

from benchmarks.sweep.parallel import max_workers
from benchmarks.workloads import SequentialShards


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "records_per_shard=1000000000"], "is over the limit of 4 TiB per object"),
        (["--param", "shards=10000000"], "10,000,000 objects is over the limit"),
        (["--param", "epochs=100000"], "epochs=100000 is over the limit"),
        (["--workload", "random-records", "--param", "records=1000000000"], "records="),
        (["--workload", "small-files", "--param", "file_size=8TiB"], "file_size="),
        (["--sample-rate", "2"], "--sample-rate must be in (0, 1]"),
        (["--sample-rate", "0"], "--sample-rate must be in (0, 1]"),
        (["--exact", "--sample-rate", "0.5"], "exclude each other"),
    ],
)
def test_out_of_bounds_values_one_line_exit_2(tmp_path, args, needle) -> None:
    out = tmp_path / "out"
    res = cli_in_process("tune", *args, "--out", str(out), cwd=tmp_path)
    assert needle in one_error_line(res)
    assert not out.exists()


def test_workers_capped_at_the_cores_and_sampling_reported(tmp_path) -> None:
    trace = SequentialShards(shards=40, records_per_shard=40, record_size=100_000).synthesize()
    path = tmp_path / "job.json"
    path.write_text(json.dumps(trace))
    out = tmp_path / "report"
    res = run_cli(
        "--workload", str(path), "--memory-budget", "64MiB", "--quick", "--workers", "52",
        "--sample-rate", "0.5", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"--workers 52 capped at the {max_workers()} cores" in res.stderr
    doc = json.loads((out / "summary.json").read_text())
    sampling = doc["sampling"]
    assert sampling["exact"] is False and sampling["sample_rate"] == 0.5
    assert 0 < sampling["sampled_reads"] < sampling["total_reads"]
    assert len(sampling["error_estimates"]) == len(doc["results"])
    assert "sampled at R = 0.5" in res.stdout
    assert "error estimate ~" in res.stdout and "an estimate, not a bound" in res.stdout
    assert "≤" not in res.stdout + res.stderr
    exact = run_cli(
        "--workload", str(path), "--memory-budget", "64MiB", "--quick", "--exact",
        "--out", str(tmp_path / "exact"), cwd=tmp_path,
    )  # fmt: skip
    assert exact.returncode == 0, exact.stderr
    doc = json.loads((tmp_path / "exact" / "summary.json").read_text())
    assert doc["sampling"]["exact"] is True and doc["sampling"]["sample_rate"] == 1.0


def test_columnar_trace_file_sweeps_like_its_json(tmp_path) -> None:
    from emulator.replay.columnar import from_dict, save_columnar

    trace = SequentialShards(shards=5, records_per_shard=40, record_size=100_000).synthesize()
    (tmp_path / "job.json").write_text(json.dumps(trace))
    save_columnar(from_dict(trace), tmp_path / "job.npz")
    docs = []
    for name in ("job.json", "job.npz"):
        out = tmp_path / f"out-{name}"
        res = run_cli("--workload", str(tmp_path / name), "--memory-budget", "64MiB", "--quick",
                      "--out", str(out), cwd=tmp_path)  # fmt: skip
        assert res.returncode == 0, res.stderr
        docs.append(json.loads((out / "summary.json").read_text()))
    assert docs[0]["results"] == docs[1]["results"]
    assert docs[0]["recommendation"] == docs[1]["recommendation"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    res = run_cli("--workload", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o"),
                  cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "is not a valid trace" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
