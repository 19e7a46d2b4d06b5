"""``gcs-hook record`` options of the pass-through issue without TensorFlow: one-line errors,
``--max-requests`` / ``--max-seconds`` ending a recording cleanly (real processes, a real fake
GCS), ``--redact-names``; and ``gcs-hook serve --tls`` answering HTTPS."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.record.upstream import redact_trace
from gcs_hook.cli import app

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
runner = CliRunner()

#: Reads bytes 0-99 of lim/x.bin from the fake GCS again and again (the program's own token).
LOOP = """
import os, time, urllib.request
url = os.environ["STORAGE_EMULATOR_HOST"] + "/download/storage/v1/b/lim/o/x.bin?alt=media"
hdr = {"Authorization": "Bearer " + os.environ["GOOGLE_AUTH_TOKEN_FOR_TESTING"],
       "Range": "bytes=0-99"}
while True:
    urllib.request.urlopen(urllib.request.Request(url, headers=hdr)).read()
    time.sleep(0.01)
"""


def _error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gcs-hook: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--upstream", "http://storage.googleapis.com"], "https://"),
        (["--upstream", "https://h/p"], "no path"),
        (["--upstream-ca", "x.pem"], "go with --upstream"),
        (["--connect-to", "a=127.0.0.1:1"], "go with --upstream"),
        (["--upstream", "https://127.0.0.1:1", "--connect-to", "nonsense"], "HOST=ADDR:PORT"),
        (["--upstream", "https://127.0.0.1:1", "--upstream-ca", "/nonexistent.pem"], "no such"),
        (["--upstream", "https://127.0.0.1:1", "--data", "."], "--data"),
        (["--upstream", "https://127.0.0.1:1", "--backend", "container"], "--backend"),
        (["--max-requests", "0"], "--max-requests"),
        (["--max-seconds", "-3"], "--max-seconds"),
        (["--max-seconds", "soon"], "--max-seconds"),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, needle) -> None:
    out = tmp_path / "t.json"
    result = runner.invoke(app, ["record", *args, "--out", str(out), "--", "true"])
    assert result.exit_code == 2
    assert needle in _error_line(result)
    assert not out.exists()


def test_upstream_with_from_ledger_is_refused(tmp_path) -> None:
    ledger = tmp_path / "l.jsonl"
    ledger.write_text("")
    result = runner.invoke(app, ["record", "--upstream", "https://storage.googleapis.com",
                                 "--from-ledger", str(ledger), "--out", str(tmp_path / "t")])  # fmt: skip
    assert result.exit_code == 2 and "--from-ledger" in _error_line(result)


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "data" / "lim").mkdir(parents=True)
    (tmp_path / "data" / "lim" / "x.bin").write_bytes(os.urandom(1000))
    return tmp_path / "data"


def _record(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "record", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def test_max_requests_stops_the_program_and_writes_the_trace(tmp_path, data_dir) -> None:
    out = tmp_path / "t.json"
    res = _record("--data", str(data_dir), "--out", str(out), "--max-requests", "5",
                  "--redact-names", "--", sys.executable, "-c", LOOP)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stopped by --max-requests" in res.stderr
    trace = json.loads(out.read_text())
    reads = [op for op in trace["ops"] if op["op"] == "read"]
    assert len(reads) == 5 and all((op["offset"], op["n"]) == (0, 100) for op in reads)
    # names hashed: same object → same name, and no trace of "lim" or "x.bin"
    [name] = trace["objects"]
    assert re.fullmatch(r"b[0-9a-f]{12}/o[0-9a-f]{24}", name)
    assert trace["objects"][name] == 1000
    assert "lim" not in out.read_text() and "x.bin" not in out.read_text()


def test_max_seconds_stops_a_program_that_would_run_on(tmp_path, data_dir) -> None:
    out = tmp_path / "t.json"
    t0 = time.monotonic()
    res = _record("--data", str(data_dir), "--out", str(out), "--max-seconds", "1.5", "--",
                  sys.executable, "-c", LOOP)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stopped by --max-seconds" in res.stderr
    assert time.monotonic() - t0 < 60  # it did not run on until the test's own timeout
    trace = json.loads(out.read_text())
    assert trace["objects"] == {"lim/x.bin": 1000}
    assert sum(op["op"] == "read" for op in trace["ops"]) >= 1


def test_redact_trace_keeps_structure() -> None:
    trace = {
        "config": None,
        "objects": {"b1/x": 10, "b1/y": 20},
        "ops": [
            {"op": "open", "handle": "h1", "object": "b1/x"},
            {"op": "read", "handle": "h1", "offset": 0, "n": 5},
            {"op": "stat", "object": "b1/y"},
            {"op": "overwrite", "object": "b1/x", "size": 3},
        ],
        "comment": "python job.py gs://b1/x",
    }
    key = b"k" * 32
    red = redact_trace(trace, key)
    x, y = red["ops"][0]["object"], red["ops"][2]["object"]
    assert red["objects"] == {x: 10, y: 20} and x != y
    assert red["ops"][3]["object"] == x and x.split("/")[0] == y.split("/")[0]
    assert "b1" not in json.dumps(red)
    assert redact_trace(trace, key) == red and redact_trace(trace)["objects"] != red["objects"]


def test_serve_tls_answers_https(tmp_path) -> None:
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [*CLI, "serve", "--tls", "--duration", "60", "--state-file", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    try:
        line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if line.startswith("# tls ") or not line:
                break
        m = re.match(r"# tls (https://127\.0\.0\.1:\d+) .*CA (\S+)\)", line)
        assert m, line
        url, ca = m.groups()
        ctx = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(f"{url}/storage/v1/b", context=ctx, timeout=30) as r:
            assert r.status == 200
            assert json.loads(r.read())["kind"] == "storage#buckets"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _owned_by(pid: int) -> list[str]:
    out = []
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "gcs-hook-*")):
        with contextlib.suppress(OSError):
            if Path(d, "owner.pid").read_text().strip() == str(pid):
                out.append(d)
    return out


def test_stop_signal_stops_the_program_and_removes_key_material(tmp_path) -> None:
    pidfile = tmp_path / "program.pid"
    program = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [*CLI, "record", "--upstream", "https://127.0.0.1:9", "--out", str(tmp_path / "t.json"),
         "--", sys.executable, "-c", program],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (pidfile.exists() and pidfile.read_text()):
            time.sleep(0.1)
        dirs = _owned_by(proc.pid)
        assert len(dirs) == 2  # the per-run CA (with its key) and the program's CA bundle
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped on SIGTERM" in proc.stderr.read()
    assert _owned_by(proc.pid) == [] and not any(os.path.exists(d) for d in dirs)
    assert not (tmp_path / "t.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


@pytest.mark.parametrize("flag", [[], ["--curl-ca", "bundle"]])
def test_program_env_holds_proxy_and_ca_settings_only(tmp_path, flag) -> None:
    """The recorded program's environment: the front as https_proxy, the bundle for Python
    clients, for libcurl the per-run CA alone (the default) or with --curl-ca bundle the
    bundle, and no token of the front's."""
    show = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in ('https_proxy', "
            "'CURL_CA_BUNDLE', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', "
            "'GOOGLE_AUTH_TOKEN_FOR_TESTING', 'STORAGE_EMULATOR_HOST')}))")  # fmt: skip
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_AUTH_TOKEN_FOR_TESTING", "STORAGE_EMULATOR_HOST")}  # fmt: skip
    res = subprocess.run(
        [*CLI, "record", "--upstream", "https://127.0.0.1:9", *flag, "--out",
         str(tmp_path / "t.json"), "--", sys.executable, "-c", show],
        capture_output=True, text=True, timeout=120, env={**env, "COLUMNS": "200"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", got["https_proxy"])
    bundle = got["SSL_CERT_FILE"]
    assert bundle.endswith("ca-bundle.pem") and got["REQUESTS_CA_BUNDLE"] == bundle
    if not flag:
        assert got["CURL_CA_BUNDLE"].endswith("ca.pem") and got["CURL_CA_BUNDLE"] != bundle
    else:
        assert got["CURL_CA_BUNDLE"] == bundle
    assert got["GOOGLE_AUTH_TOKEN_FOR_TESTING"] is None and got["STORAGE_EMULATOR_HOST"] is None
    assert not os.path.exists(bundle) and not os.path.exists(got["CURL_CA_BUNDLE"])


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--curl-ca", "bundle"], "--upstream"),
        (["--curl-per-run-ca"], "--upstream"),
        (["--upstream", "https://127.0.0.1:9", "--curl-ca", "all"], "'run' or 'bundle'"),
        (["--upstream", "https://127.0.0.1:9", "--curl-ca", "bundle", "--curl-per-run-ca"],
         "contradicts"),
    ],
)  # fmt: skip
def test_curl_ca_refusals(tmp_path, args, why) -> None:
    result = runner.invoke(app, ["record", *args, "--out", str(tmp_path / "t"), "--", "true"])
    assert result.exit_code == 2 and why in _error_line(result)
    assert not (tmp_path / "t").exists()
