"""The container backend for real: fake-gcs-server in a Docker container behind the front.

Needs a Docker engine with the ``fsouza/fake-gcs-server`` image (``eval "$(bash
scripts/docker-engine.sh start)"`` provides both here; ``scripts/test.sh`` does it where it
can). Without one every test here skips with the engine's reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest
from _support import data

from emulator.fakegcs.backend import (
    BackendError,
    ContainerBackend,
    EmbeddedBackend,
    docker_engine_error,
)
from emulator.fakegcs.containers import LABEL_BACKEND, LABEL_PID

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_client():
    reason = docker_engine_error()
    if reason is not None:
        pytest.skip(f"needs a Docker engine: {reason}")
    import docker

    client = docker.from_env(timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def container_emu(docker_client):
    from emulator.fakegcs.session import GcsEmulator

    with GcsEmulator("container") as emu:
        yield emu


@pytest.fixture(scope="module")
def container_tf(container_emu):
    from emulator.replay.tf_worker import TfWorker

    with TfWorker(container_emu.tf_env()) as worker:
        yield worker


def _ours(client, pid: int) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL_PID}={pid}"})


def test_published_on_loopback_only_and_labelled(container_emu, docker_client):
    backend = container_emu.backend
    c = docker_client.containers.get(backend.container_id)
    bindings = c.attrs["HostConfig"]["PortBindings"]["4443/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    published = c.attrs["NetworkSettings"]["Ports"]["4443/tcp"]
    assert {b["HostIp"] for b in published} == {"127.0.0.1"}
    assert backend.endpoint == f"http://127.0.0.1:{published[0]['HostPort']}"
    assert c.labels[LABEL_BACKEND] == "fake-gcs-server"
    assert c.labels[LABEL_PID] == str(os.getpid())


@pytest.mark.tf
def test_tf_reads_and_writes_through_the_front_to_the_container(
    container_emu, container_tf, tmp_path
):
    emu = container_emu
    emu.backend.create_bucket("ctr-bkt")
    blob = data(300_000, "ctr")
    emu.backend.put_object("ctr-bkt", "dir/a.bin", blob)
    mark = emu.ledger.mark()
    got = container_tf.run(
        """
root = "gs://ctr-bkt"
with tf.io.gfile.GFile(f"{root}/dir/written.bin", "wb") as f:
    f.write(payload)
result = {
    "size": tf.io.gfile.stat(f"{root}/dir/a.bin").length,
    "data": tf.io.gfile.GFile(f"{root}/dir/a.bin", "rb").read(),
    "listdir": sorted(tf.io.gfile.listdir(f"{root}/dir")),
    "back": tf.io.gfile.GFile(f"{root}/dir/written.bin", "rb").read(),
}
""",
        payload=b"written by TF " * 1000,
    )
    assert got["size"] == len(blob) and got["data"] == blob
    assert got["listdir"] == ["a.bin", "written.bin"]
    assert got["back"] == b"written by TF " * 1000
    # the object TF wrote is in the container, read back past the front
    assert emu.backend.get_object("ctr-bkt", "dir/written.bin") == b"written by TF " * 1000
    mine = emu.ledger.since(mark, bucket="ctr-bkt")
    kinds = {r.kind for r in mine}
    assert {"metadata", "media", "list"} <= kinds and any(r.method == "POST" for r in mine)
    assert all(r.principal == "test-token" and r.status < 400 for r in mine)
    media = [r for r in mine if r.kind == "media" and r.object == "dir/a.bin"]
    assert sum(r.bytes_out for r in media) >= len(blob)


@pytest.mark.tf
def test_require_auth_on_the_container(container_emu, container_tf):
    from emulator.replay.tf_worker import TfWorker

    emu = container_emu
    emu.backend.create_bucket("ctr-auth")
    emu.backend.put_object("ctr-auth", "ok.bin", b"for the token holder")
    emu.backend.put_object("ctr-auth", "no.bin", b"not for strangers")
    stranger_env = {**emu.tf_env(test_token=None), "GOOGLE_AUTH_TOKEN_FOR_TESTING": "nobody-issued"}
    read = """
try:
    result = tf.io.gfile.GFile(p, "rb").read()
except tf.errors.OpError as exc:
    result = type(exc).__name__
"""
    emu.front.require_auth = True
    mark = emu.ledger.mark()
    try:
        ok = container_tf.run(read, p="gs://ctr-auth/ok.bin")
        with TfWorker(stranger_env) as stranger:
            denied = stranger.run(read, p="gs://ctr-auth/no.bin")
    finally:
        emu.front.require_auth = False
    assert ok == b"for the token holder"
    assert isinstance(denied, str) and denied.endswith("Error")
    mine = emu.ledger.since(mark, bucket="ctr-auth")
    oks = [r for r in mine if r.object == "ok.bin"]
    nos = [r for r in mine if r.object == "no.bin"]
    assert oks and all(r.status < 400 and r.principal == "test-token" for r in oks)
    assert nos and all(r.status == 401 and r.bytes_out < 200 for r in nos)


# -- the same requests, the same answers -----------------------------------------------------
_VOLATILE = {"timeCreated", "updated", "timeStorageClassUpdated", "etag", "generation", "md5Hash",
             "crc32c", "selfLink", "mediaLink", "id", "projectNumber", "metageneration"}  # fmt: skip


def _normalize(body: bytes) -> object:
    try:
        doc = json.loads(body)
    except ValueError:
        return body

    def clean(x: object) -> object:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in sorted(x.items()) if k not in _VOLATILE}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(doc)


def _script(bucket: str) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    q = urllib.parse.quote
    o = f"/storage/v1/b/{bucket}/o"
    up = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name="
    octet = {"Content-Type": "application/octet-stream"}
    return [
        ("POST", "/storage/v1/b", json.dumps({"name": bucket}).encode(),
         {"Content-Type": "application/json"}),
        ("POST", up + q("d/a.bin", safe=""), data(70_000, "same"), octet),
        ("POST", up + q("d/e/b.txt", safe=""), b"hello", octet),
        ("POST", up + q("top", safe=""), b"", octet),
        ("GET", f"{o}/{q('d/a.bin', safe='')}", None, {}),
        ("GET", f"{o}/{q('d/a.bin', safe='')}?alt=media", None, {"Range": "bytes=100-4099"}),
        ("GET", f"{o}/{q('d/a.bin', safe='')}?alt=media", None, {"Range": "bytes=69990-"}),
        ("GET", f"{o}?prefix=d/&delimiter=/", None, {}),
        ("GET", f"{o}?prefix=d/", None, {}),
        ("GET", f"{o}/{q('nope', safe='')}", None, {}),
        ("GET", f"{o}/{q('nope', safe='')}?alt=media", None, {}),
        ("DELETE", f"{o}/{q('top', safe='')}", None, {}),
        ("GET", o, None, {}),
        ("GET", "/storage/v1/b/no-such-bucket-here/o", None, {}),
    ]  # fmt: skip


def _answers(backend, bucket: str) -> list[tuple[int, object]]:
    out = []
    for method, path, body, headers in _script(bucket):
        try:
            status, got = backend._request(method, path, body, headers, ok=tuple(range(100, 600)))
        except BackendError as exc:  # a transport failure is an answer too
            status, got = -1, str(exc).encode()
        out.append((status, _normalize(got)))
    return out


def test_container_and_embedded_answer_the_same_requests_alike(container_emu):
    with EmbeddedBackend() as embedded:
        want = _answers(embedded, "same-bkt")
    got = _answers(container_emu.backend, "same-bkt")
    assert [s for s, _ in want][:8] == [200, 200, 200, 200, 200, 206, 206, 200]
    assert got == want


# -- every exit path removes the container ---------------------------------------------------
_OWNER = (
    "from emulator.fakegcs.backend import ContainerBackend\n"
    "b = ContainerBackend()\nprint(b.container_id, flush=True)\n"
    "import time\ntime.sleep(120)\n"
)


def test_a_sigkilled_owners_container_is_swept_at_the_next_start(docker_client):
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        cid = proc.stdout.readline().strip()
        assert cid, proc.stderr.read() if proc.poll() is not None else "no container id"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert [c.id for c in _ours(docker_client, proc.pid)] == [cid]  # left behind by SIGKILL
    with ContainerBackend() as b:
        assert cid in b.swept
        assert b.container_id not in b.swept
        assert b.container_id in {c.id for c in _ours(docker_client, os.getpid())}
    assert _ours(docker_client, proc.pid) == []
    assert b.container_id not in {c.id for c in _ours(docker_client, os.getpid())}  # close()


def test_serve_container_sigterm_and_interpreter_exit_remove_it(docker_client, tmp_path):
    state = tmp_path / "state.json"
    cli = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, "serve", "--backend", "container", "--state-file", str(state), "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _ours(docker_client, proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        line = proc.stdout.readline()
        assert line.startswith("export ")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert _ours(docker_client, proc.pid) == []
    # an owner that exits without close() (interpreter exit) removes it too
    code = (
        "from emulator.fakegcs.backend import ContainerBackend\n"
        "b = ContainerBackend()\nprint(b.container_id, flush=True)\nraise SystemExit(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3 and out.stdout.strip(), out.stderr
    gone = docker_client.containers.list(all=True, filters={"id": out.stdout.strip()})
    assert gone == []
