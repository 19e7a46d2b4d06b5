"""Issue 11 regressions for ``gcs-hook serve`` as a process: exits leave nothing behind (5),
backend death is loud (3), per-instance state files (5), bad ``--state-file`` (6).

Each test runs real ``serve`` processes with a private TMPDIR and state directory, bounded by
``wait(timeout=...)``; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emulator.fakegcs.tempdirs import remove_dead_leftovers
from gcs_hook.cli import app

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    tmp = tmp_path / "tmp"
    run = tmp_path / "run"
    tmp.mkdir(exist_ok=True)
    run.mkdir(exist_ok=True, mode=0o700)
    env = dict(os.environ, TMPDIR=str(tmp), XDG_RUNTIME_DIR=str(run))
    env.pop("GCS_HOOK_STATE", None)
    return env


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "serve", "--duration", "120", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
    )  # fmt: skip


def _wait_exports(proc: subprocess.Popen) -> dict[str, str]:
    exports = {}
    while len(exports) < 7:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        k, _, v = line[len("export ") :].strip().partition("=")
        exports[k] = v.strip("'")
    return exports


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "tmp").glob("gcs-hook-*"))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_stop_signals_remove_state_and_key_material(tmp_path, sig):
    proc = _start(tmp_path)
    try:
        exports = _wait_exports(proc)
        state_files = list((tmp_path / "run" / "gcs-hook").glob("serve-*.json"))
        assert len(state_files) == 1 and os.path.exists(exports["CURL_CA_BUNDLE"])
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        _stop(proc)
    assert signal.Signals(sig).name in proc.stderr.read()
    assert list((tmp_path / "run" / "gcs-hook").glob("serve-*.json")) == []
    assert _leftovers(tmp_path) == []


def test_signal_during_seeding_leaves_nothing(tmp_path):
    seed = tmp_path / "seed" / "many-bkt"
    seed.mkdir(parents=True)
    for i in range(1500):
        (seed / f"f{i:04d}").write_bytes(b"x" * 100)
    proc = _start(tmp_path, "--data", str(tmp_path / "seed"))
    try:
        for _ in range(3000):  # wait (≤ 60 s) until the backend exists: seeding is near
            if any(n.startswith("gcs-hook-backend-") for n in _leftovers(tmp_path)):
                break
            if proc.poll() is not None:
                break
            threading_wait(0.02)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)  # a second signal must not cut the cleanup short
        code = proc.wait(timeout=20)
    finally:
        _stop(proc)
    err = proc.stderr.read()
    assert code == 0, err
    assert "# seeded" not in err and "# stopping on SIG" in err  # it stopped mid-seeding
    assert _leftovers(tmp_path) == []
    assert list((tmp_path / "run").rglob("serve-*.json")) == []


def threading_wait(s: float) -> None:
    import threading

    threading.Event().wait(s)


def test_backend_death_is_loud_and_cleans_up(tmp_path):
    proc = _start(tmp_path)
    try:
        _wait_exports(proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        backend_pids = [
            int(c) for c in children
            if b"fake-gcs-server" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]  # fmt: skip
        assert len(backend_pids) == 1
        os.kill(backend_pids[0], signal.SIGKILL)
        assert proc.wait(timeout=20) == 1
    finally:
        _stop(proc)
    err = proc.stderr.read()
    assert "the backend died" in err and "exited with code" in err
    assert _leftovers(tmp_path) == []


def test_leftovers_of_killed_runs_are_removed_by_the_next_start(tmp_path):
    proc = _start(tmp_path)
    try:
        _wait_exports(proc)
    finally:
        proc.kill()  # SIGKILL: no cleanup possible
        proc.wait()
    assert _leftovers(tmp_path), "a killed run leaves its directories"
    assert list((tmp_path / "run" / "gcs-hook").glob("serve-*.json"))
    again = _start(tmp_path)
    try:
        _wait_exports(again)
        left = _leftovers(tmp_path)
        assert len(left) == 2  # only the new run's backend and CA directories
        owners = {(tmp_path / "tmp" / n / "owner.pid").read_text() for n in left}
        assert owners == {str(again.pid)}
        states = list((tmp_path / "run" / "gcs-hook").glob("serve-*.json"))
        assert [p.name for p in states] == [f"serve-{again.pid}.json"]
    finally:
        _stop(again)


def test_remove_dead_leftovers_keeps_live_and_foreign_dirs(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, owner in (("gcs-hook-ca-dead", dead.pid), ("gcs-hook-ca-live", os.getppid())):
        d = tmp_path / name
        d.mkdir()
        (d / "owner.pid").write_text(str(owner))
    (tmp_path / "gcs-hook-no-owner").mkdir()
    (tmp_path / "other-dir").mkdir()
    removed = remove_dead_leftovers(tmp_path)
    assert [Path(p).name for p in removed] == ["gcs-hook-ca-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gcs-hook-ca-live", "gcs-hook-no-owner", "other-dir",
    ]  # fmt: skip


def test_two_instances_have_their_own_state_and_env_will_not_guess(tmp_path):
    a, b = _start(tmp_path), _start(tmp_path)
    try:
        ea, eb = _wait_exports(a), _wait_exports(b)
        assert ea["https_proxy"] != eb["https_proxy"]
        env = _env(tmp_path)
        out = subprocess.run([*CLI, "env"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 2 and "several 'gcs-hook serve' instances" in out.stderr
        state_a = tmp_path / "run" / "gcs-hook" / f"serve-{a.pid}.json"
        out = subprocess.run(
            [*CLI, "env", "--state-file", str(state_a)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0 and ea["https_proxy"] in out.stdout
        _stop(b)
        out = subprocess.run([*CLI, "env"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0 and ea["https_proxy"] in out.stdout
    finally:
        _stop(a)
        _stop(b)


def test_serve_refuses_a_state_file_a_live_instance_owns(tmp_path):
    state = tmp_path / "shared.json"
    a = _start(tmp_path, "--state-file", str(state))
    try:
        _wait_exports(a)
        result = runner.invoke(app, ["serve", "--state-file", str(state), "--duration", "0.1"])
        assert result.exit_code == 2
        assert f"belongs to a running 'gcs-hook serve' (pid {a.pid})" in result.stderr
        assert json.loads(state.read_text())["pid"] == a.pid
    finally:
        _stop(a)


def test_state_file_naming_a_directory_is_one_line_and_no_tmp(tmp_path):
    d = tmp_path / "statedir"
    d.mkdir()
    result = runner.invoke(app, ["serve", "--state-file", str(d), "--duration", "0.1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a directory" in lines[0]
    assert list(tmp_path.iterdir()) == [d] and list(d.iterdir()) == []


def test_env_reports_a_dead_backend(tmp_path):
    import socket

    with socket.socket() as front, socket.socket() as gone:
        front.bind(("127.0.0.1", 0))
        front.listen(1)
        gone.bind(("127.0.0.1", 0))
        state = tmp_path / "s.json"
        state.write_text(json.dumps({
            "pid": os.getpid(), "front_url": f"http://127.0.0.1:{front.getsockname()[1]}",
            "backend_endpoint": f"http://127.0.0.1:{gone.getsockname()[1]}", "env": {},
        }))  # fmt: skip
        result = runner.invoke(app, ["env", "--state-file", str(state)])
    assert result.exit_code == 2 and "does not answer" in result.stderr


@pytest.mark.parametrize("value", ["1e300", "7200000"])
def test_absurd_latency_is_one_line(value):
    result = runner.invoke(app, ["serve", "--latency-ms", value, "--duration", "0.1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "shaping" in lines[0]


def test_shutdown_is_bounded_with_a_request_stuck_in_the_backend(tmp_path):
    import http.client

    proc = _start(tmp_path)
    backend_pid = None
    try:
        exports = _wait_exports(proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        backend_pid = int(children[0])
        os.kill(backend_pid, signal.SIGSTOP)  # the backend hangs
        port = int(exports["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1])
        stuck = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        stuck.request("GET", "/storage/v1/b")  # waits in the backend
        threading_wait(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0  # well before the 30 s backend deadline
        stuck.close()
    finally:
        if backend_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(backend_pid, signal.SIGCONT)
        _stop(proc)
    assert _leftovers(tmp_path) == []


def test_serve_persist_and_data_symlink_flags(tmp_path):
    store = tmp_path / "store"
    result = runner.invoke(
        app, ["serve", "--persist", str(store), "--duration", "0.2",
              "--state-file", str(tmp_path / "s.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"objects in {store}" in " ".join(result.stderr.split()) and store.is_dir()
    result = runner.invoke(app, ["serve", "--persist", str(store), "--backend", "container"])
    assert result.exit_code == 2 and "--persist needs the embedded backend" in result.stderr
    seed = tmp_path / "seed"
    (seed / "sym-bkt").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (seed / "sym-bkt" / "link").symlink_to(outside)
    result = runner.invoke(app, ["serve", "--data", str(seed), "--duration", "0.1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "leads outside the tree" in lines[0]
    result = runner.invoke(
        app, ["serve", "--data", str(seed), "--data-follow-symlinks", "--duration", "0.1",
              "--state-file", str(tmp_path / "s2.json")],
    )  # fmt: skip
    assert result.exit_code == 0 and "# seeded 1 objects" in result.stderr


@pytest.mark.parametrize("ending", ["return", "raise SystemExit(3)", "raise RuntimeError('x')"])
def test_unclosed_emulator_leaves_no_key_material(tmp_path, ending):
    code = (
        "from emulator.fakegcs.session import GcsEmulator\n"
        "emu = GcsEmulator()\n"
        "print(emu.front.ca_pem, flush=True)\n"
        "def main():\n"
        f"    {ending}\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path),
        timeout=60,
    )  # fmt: skip
    assert out.stdout.strip().endswith("ca.pem"), out.stderr
    assert _leftovers(tmp_path) == []


def test_exit_does_not_wait_on_pending_tls_handshakes(tmp_path):
    """Issue 19 item 3: 30 direct-TLS connections that never send a ClientHello and 30
    ``CONNECT`` tunnels that never start their handshake do not hold ``serve --tls`` up (the
    front waited out each handshake before: 48 s for 30); it exits cleanly on SIGINT."""
    import socket

    proc = _start(tmp_path, "--tls", "--tls-port", "0")
    pending: list[socket.socket] = []
    try:
        exports = _wait_exports(proc)
        tls_port = None
        while tls_port is None:
            line = proc.stderr.readline()
            assert line, "serve --tls printed no '# tls' line"
            if line.startswith("# tls https://127.0.0.1:"):
                tls_port = int(line.split()[2].rsplit(":", 1)[1])
        port = int(exports["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1])
        for _ in range(30):
            pending.append(socket.create_connection(("127.0.0.1", tls_port), timeout=10))
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"CONNECT storage.googleapis.com:443 HTTP/1.1\r\n\r\n")
            pending.append(s)
        threading_wait(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0  # a hang check: it used to wait out every handshake
    finally:
        for s in pending:
            s.close()
        _stop(proc)
    assert _leftovers(tmp_path) == []
