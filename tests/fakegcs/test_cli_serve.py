"""``gcs-hook serve / env / demo / doctor`` (real processes)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from typer.testing import CliRunner

from emulator.fakegcs.backend import docker_engine_error
from gcs_hook.cli import app

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
runner = CliRunner()


def one_error_line(result) -> str:
    out = (result.stderr if hasattr(result, "stderr") else result.output).strip()
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("gcs-hook: error: ")
    return lines[0]


def test_doctor_json():
    result = runner.invoke(app, ["doctor", "--json"])
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["python"]["ok"]
    assert checks["fake-gcs-server binary"]["ok"]
    assert checks["docker engine"]["required"] is False
    case = checks["container tests"]
    assert case["required"] is False
    if checks["docker engine"]["ok"]:
        assert case["ok"] and case["detail"].startswith("run: a Docker engine is reachable")
    elif os.geteuid() == 0 and (shutil.which("dockerd") or shutil.which("apt-get")):
        assert case["ok"] and "scripts/docker-engine.sh" in case["detail"]
    else:
        assert not case["ok"] and checks["docker engine"]["detail"] in case["detail"]
    for name in ("tensorflow", "C++ compiler", "TF GCS headers", "jsoncpp headers"):
        assert name in checks
    required_missing = [c for c in checks.values() if c["required"] and not c["ok"]]
    assert result.exit_code == (1 if required_missing else 0)


def test_serve_missing_data_dir(tmp_path):
    result = runner.invoke(app, ["serve", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "--data" in one_error_line(result) and "not a directory" in result.stderr


def test_serve_unknown_backend():
    result = runner.invoke(app, ["serve", "--backend", "floppy"])
    assert result.exit_code == 2
    assert "--backend" in one_error_line(result)


def test_serve_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port}" in one_error_line(result)


def test_serve_negative_duration():
    result = runner.invoke(app, ["serve", "--duration", "-1"])
    assert result.exit_code == 2 and "--duration" in one_error_line(result)


def test_serve_container_without_engine(monkeypatch, tmp_path):
    # an engine that is not there, whether or not this machine has one
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    reason = docker_engine_error()
    assert reason is not None
    result = runner.invoke(app, ["serve", "--backend", "container"])
    assert result.exit_code == 2
    assert f"container backend requested but {reason}" in one_error_line(result)


def test_env_without_running_instance(tmp_path):
    result = runner.invoke(app, ["env", "--state-file", str(tmp_path / "state.json")])
    assert result.exit_code == 2
    assert "no running 'gcs-hook serve'" in one_error_line(result)


def test_env_with_stale_state(tmp_path):
    state = tmp_path / "state.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.write_text(json.dumps({"pid": dead.pid, "front_url": "http://127.0.0.1:1", "env": {}}))
    result = runner.invoke(app, ["env", "--state-file", str(state)])
    assert result.exit_code == 2
    assert "no longer running" in one_error_line(result)


def test_serve_env_roundtrip(tmp_path):
    seed = tmp_path / "seed"
    (seed / "seed-bkt" / "d").mkdir(parents=True)
    (seed / "seed-bkt" / "d" / "x.bin").write_bytes(b"seeded bytes")
    state = tmp_path / "state.json"
    ledger = tmp_path / "ledger.jsonl"
    proc = subprocess.Popen(
        [*CLI, "serve", "--data", str(seed), "--state-file", str(state), "--ledger", str(ledger),
         "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        exports = {}
        while len(exports) < 7:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            assert line.startswith("export ")
            key, _, value = line[len("export ") :].strip().partition("=")
            exports[key] = shlex.split(value)[0]
        assert exports["https_proxy"].startswith("http://127.0.0.1:")
        assert exports["NO_GCE_CHECK"] == "true"
        assert os.path.exists(exports["CURL_CA_BUNDLE"])
        assert exports["GOOGLE_AUTH_TOKEN_FOR_TESTING"]
        assert oct(os.stat(state).st_mode & 0o777) == "0o600"
        result = runner.invoke(app, ["env", "--state-file", str(state)])
        assert result.exit_code == 0
        env_lines = dict(
            (ln[len("export ") :].split("=", 1)[0], shlex.split(ln.split("=", 1)[1])[0])
            for ln in result.stdout.splitlines()
        )
        assert env_lines == exports
        url = f"{exports['STORAGE_EMULATOR_HOST']}/download/storage/v1/b/seed-bkt/o/d%2Fx.bin?alt=media"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"seeded bytes"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:  # a failed assertion: stop it cleanly so it stops its server
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not state.exists()
    assert not os.path.exists(exports["CURL_CA_BUNDLE"])
    recs = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert [(r["kind"], r["bucket"], r["object"]) for r in recs] == [
        ("media", "seed-bkt", "d/x.bin")
    ]
    result = runner.invoke(app, ["env", "--state-file", str(state)])
    assert result.exit_code == 2


@pytest.mark.tf
def test_demo_reads_with_real_tf():
    proc = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "bytes match the backend" in proc.stdout
    assert "0-1048575" in proc.stdout and "1048576-2097151" in proc.stdout


@pytest.mark.parametrize(
    "args", [["--latency-ms", "-5"], ["--bandwidth-mbps", "nan"], ["--overhead-ms", "inf"]]
)
def test_serve_rejects_bad_shaping(args):
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 2
    assert "shaping" in one_error_line(result)


def test_serve_with_shaping_applies_it(tmp_path):
    state = tmp_path / "state.json"
    result = runner.invoke(
        app,
        ["serve", "--latency-ms", "20", "--bandwidth-mbps", "100", "--duration", "0.2",
         "--state-file", str(state)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "first_byte_latency_s=0.02" in result.stderr
    assert "bandwidth_bytes_per_s=100000000.0" in result.stderr
    assert not state.exists()
