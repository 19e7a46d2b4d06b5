"""fake-gcs-server launchers (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import stat

import pytest

from emulator.fakegcs.backend import (
    BackendError,
    EmbeddedBackend,
    ExternalBackend,
    docker_engine_error,
    find_binary,
    start_backend,
)


@pytest.fixture(scope="module")
def backend():
    with EmbeddedBackend() as b:
        yield b


def test_embedded_object_roundtrip(backend, tmp_path):
    backend.create_bucket("rt-bkt")
    backend.create_bucket("rt-bkt")  # idempotent
    assert "rt-bkt" in backend.list_buckets()
    meta = backend.put_object("rt-bkt", "a/b c.bin", b"x" * 3000)
    assert meta["size"] == 3000 and int(meta["generation"]) > 0
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    assert backend.put_object("rt-bkt", "big.bin", big)["size"] == 3 << 20
    assert backend.get_object("rt-bkt", "big.bin") == big.read_bytes()
    assert backend.get_object("rt-bkt", "a/b c.bin") == b"x" * 3000
    assert backend.list_objects("rt-bkt") == ["a/b c.bin", "big.bin"]
    assert backend.list_objects("rt-bkt", prefix="a/") == ["a/b c.bin"]
    assert backend.stat_object("rt-bkt", "big.bin")["size"] == 3 << 20
    backend.delete_object("rt-bkt", "big.bin")
    assert backend.list_objects("rt-bkt") == ["a/b c.bin"]
    with pytest.raises(BackendError, match="404"):
        backend.get_object("rt-bkt", "big.bin")
    backend.delete_bucket("rt-bkt")
    assert "rt-bkt" not in backend.list_buckets()
    backend.delete_bucket("rt-bkt")  # missing bucket is fine


def test_overwrite_changes_generation(backend):
    backend.create_bucket("gen-bkt")
    g1 = backend.put_object("gen-bkt", "o", b"1")["generation"]
    g2 = backend.put_object("gen-bkt", "o", b"22")["generation"]
    assert g1 != g2
    assert backend.get_object("gen-bkt", "o") == b"22"
    backend.delete_bucket("gen-bkt")


def test_seed_from_dir(backend, tmp_path):
    (tmp_path / "seed-a" / "d").mkdir(parents=True)
    (tmp_path / "seed-a" / "d" / "x.txt").write_bytes(b"xx")
    (tmp_path / "seed-b").mkdir()
    (tmp_path / "seed-b" / "y").write_bytes(b"y")
    created = backend.seed_from_dir(tmp_path)
    assert created == ["seed-a/d/x.txt", "seed-b/y"]
    assert backend.get_object("seed-a", "d/x.txt") == b"xx"
    for b in ("seed-a", "seed-b"):
        backend.delete_bucket(b)


def test_seed_rejects_bad_layout_without_uploading(backend, tmp_path):
    (tmp_path / "stray.txt").write_bytes(b"s")
    (tmp_path / "would-be-bucket").mkdir()
    (tmp_path / "would-be-bucket" / "o").write_bytes(b"o")
    with pytest.raises(ValueError, match="only bucket directories"):
        backend.seed_from_dir(tmp_path)
    assert "would-be-bucket" not in backend.list_buckets()
    with pytest.raises(ValueError, match="not a directory"):
        backend.seed_from_dir(tmp_path / "nope")


def test_listens_on_loopback_only_and_cleans_up():
    b = EmbeddedBackend()
    workdir = b._dir
    assert b.endpoint.startswith("http://127.0.0.1:")
    assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700
    assert os.path.exists(b.log_path)
    pid = b.pid
    b.close()
    b.close()  # idempotent
    assert not os.path.exists(workdir)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="missing or not executable"):
        EmbeddedBackend(binary=str(tmp_path / "no-such-fake-gcs-server"))


def test_missing_binary_via_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_GCS_SERVER_BIN", str(tmp_path / "absent"))
    with pytest.raises(BackendError, match="FAKE_GCS_SERVER_BIN"):
        find_binary()


def test_broken_binary_error_has_log_tail(tmp_path):
    script = tmp_path / "fake-gcs-server"
    script.write_text("#!/bin/sh\necho 'boom: cannot start the server' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(BackendError) as info:
        EmbeddedBackend(binary=str(script))
    msg = str(info.value)
    assert "exited with code 3" in msg
    assert "boom: cannot start the server" in msg


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(BackendError, match=f"port {port} .*in use"):
            EmbeddedBackend(port=port)


def test_crashed_server_reports_exit_and_log_tail():
    b = EmbeddedBackend()
    try:
        os.kill(b.pid, signal.SIGKILL)
        b._proc.wait(timeout=10)
        with pytest.raises(BackendError, match="exited with code"):
            b.create_bucket("after-crash")
    finally:
        b.close()


def test_external_backend_and_env(backend, monkeypatch):
    ext = start_backend(backend.endpoint)
    assert isinstance(ext, ExternalBackend) and ext.kind == "external"
    ext.create_bucket("ext-bkt")
    ext.put_object("ext-bkt", "o", b"via external")
    assert backend.get_object("ext-bkt", "o") == b"via external"
    ext.close()  # does not stop the server it does not own
    assert backend.healthy()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", backend.endpoint)
    from_env = start_backend("")
    assert from_env.endpoint == backend.endpoint
    backend.delete_bucket("ext-bkt")


def test_external_backend_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="does not answer"):
        ExternalBackend(f"http://127.0.0.1:{port}")


def test_unknown_backend_spec():
    with pytest.raises(BackendError, match="unknown backend"):
        start_backend("floppy")


@pytest.mark.docker
def test_container_backend_without_engine_is_clear_error(monkeypatch, tmp_path):
    # an engine that is not there, whether or not this machine has one
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    reason = docker_engine_error()
    assert reason is not None and reason.startswith("no Docker engine reachable")
    with pytest.raises(BackendError, match="container backend requested but") as info:
        start_backend("container")
    assert reason in str(info.value)


@pytest.mark.docker
def test_container_backend_roundtrip():
    reason = docker_engine_error()
    if reason is not None:
        pytest.skip(f"needs a Docker engine: {reason}")
    with start_backend("container") as b:
        b.create_bucket("c-bkt")
        b.put_object("c-bkt", "o", b"container")
        assert b.get_object("c-bkt", "o") == b"container"


def test_server_dies_with_its_parent():
    """A parent killed hard (os._exit) must not leave an orphaned fake-gcs-server."""
    import subprocess
    import sys
    import time

    code = (
        "import os\nfrom emulator.fakegcs.backend import EmbeddedBackend\n"
        "b = EmbeddedBackend()\nprint(b.pid, flush=True)\nos._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # exited, waiting for init to reap it
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"fake-gcs-server {pid} outlived its parent")


def test_emulator_over_external_backend_leaves_it_alone(backend):
    import urllib.request

    from emulator.fakegcs.session import GcsEmulator

    backend.create_bucket("ext-emu")
    backend.put_object("ext-emu", "o", b"hi")
    with GcsEmulator(backend.endpoint) as emu:
        assert emu.backend.kind == "external"
        url = f"{emu.url}/download/storage/v1/b/ext-emu/o/o?alt=media"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"hi"
        assert emu.ledger.records(bucket="ext-emu", kind="media")
    assert backend.healthy()  # not stopped
    assert backend.stat_object("ext-emu", "o")["mediaLink"].startswith(backend.endpoint)
    backend.delete_bucket("ext-emu")
