"""``gcs-hook tune``: bad arguments fail with one line and exit 2; a trace and a workload run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _support import cli_in_process, one_error_line

from benchmarks.workloads import SequentialShards

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()", "tune"]


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**__import__("os").environ, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
             "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workload", "no-such-workload"], "unknown workload 'no-such-workload'"),
        (["--memory-budget", "-1GiB"], "must not be negative"),
        (["--memory-budget", "lots"], "cannot read 'lots' as a size"),
        (["--memory-budget", "2XB"], "unknown size unit"),
        (["--backend", "ftp://x"], "--backend must be embedded, container or an http"),
        (["--param", "shards"], "--param wants KEY=VALUE"),
        (["--param", "colour=blue"], "has no parameter 'colour'"),
        (["--param", "shards=-3"], "is not a non-negative number"),
        (["--workload", "missing/trace.json"], "does not exist"),
        (["--latency-ms", "-5"], "bad timing"),
        (["--stat-cache-max-age", "-1"], "--stat-cache-max-age must be >= 0"),
        (["--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_bad_arguments_one_line_exit_2(tmp_path, args, needle) -> None:
    """In-process (the refusals are the command's own); the tests below run the console script
    in a real process for the exit-2 / one-line / no-traceback contract."""
    out = tmp_path / "out"
    res = cli_in_process("tune", *args, "--out", str(out), cwd=tmp_path)
    assert needle in one_error_line(res)
    assert not out.exists()  # bad input changes nothing


def test_unreachable_backend_one_line_exit_2(tmp_path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    res = run_cli("--backend", url, "--quick", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"backend {url} unreachable" in lines[0]
    assert not (tmp_path / "o").exists()


def test_container_backend_without_docker_one_line_exit_2(tmp_path) -> None:
    # an engine that is not there, whether or not this machine has one
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    res = run_cli("--backend", "container", "--out", str(tmp_path / "o"), cwd=tmp_path, env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "backend 'container' is unusable" in lines[0]


def test_invalid_trace_file_one_line_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"objects": {"b/o": 10}, "ops": [{"op": "fly"}]}))
    res = run_cli("--workload", str(bad), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a valid trace" in lines[0]


def test_trace_file_sweep_writes_report(tmp_path) -> None:
    trace = SequentialShards(shards=3, records_per_shard=40, record_size=100_000).synthesize()
    path = tmp_path / "job.json"
    path.write_text(json.dumps(trace))
    out = tmp_path / "report"
    res = run_cli(
        "--workload", str(path), "--memory-budget", "64MiB", "--quick", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "ConfigureGcsHook(" in res.stdout
    doc = json.loads((out / "summary.json").read_text())
    assert doc["recommendation"]["max_bytes"] <= 64 * 2**20
    assert doc["recommendation_line"] in res.stdout
    assert (out / "heatmap.png").stat().st_size > 10_000
    assert (out / "sweep.csv").exists()
    assert str(out / "heatmap.png") in res.stdout


@pytest.mark.tf
def test_named_workload_records_with_tf_and_checks_the_model(tmp_path) -> None:
    out = tmp_path / "o"
    res = run_cli(
        "--workload", "interleave", "--quick", "--no-measure", "--memory-budget", "512MiB",
        "--param", "shards=8", "--param", "records_per_shard=50", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "model check: OK" in res.stdout
    doc = json.loads((out / "summary.json").read_text())
    assert doc["workload"] == "interleave" and doc["workload_params"]["shards"] == 8
    assert doc["recommendation"]["max_bytes"] <= 512 * 2**20


@pytest.mark.tf
def test_the_readme_main_job_records_sweeps_and_measures(tmp_path) -> None:
    """``gcs-hook tune --quick`` as the README's first command runs it: the recording in real TF,
    the sweep, and the measured runs (the recommendation first, then cache off, in one TF
    process) with TF's requests equal to the predicted ones."""
    out = tmp_path / "o"
    res = run_cli("--quick", "--out", str(out), cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "done in" in res.stdout and "ConfigureGcsHook(" in res.stdout
    doc = json.loads((out / "summary.json").read_text())
    measured = doc["measured"]
    labels = [m["label"] for m in measured]
    assert "cache off" in labels and len(measured) == 3, labels
    for m in measured:
        assert m["measured_requests"] == m["predicted_requests"], m
