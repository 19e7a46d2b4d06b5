"""``--persist DIR`` is confined (issue 19 item 2): compose sources go through the same name
check as every name, symlinked bucket directories and subdirectories inside DIR are never
followed (uploads, reads, listings), NUL and over-long names get 400, and no message names an
absolute path. Real fake-gcs-server processes over real loopback sockets."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest

from emulator.fakegcs.session import GcsEmulator


def _request(emu, method: str, path: str, body: bytes = b"", ctype: str = "application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", emu.front.port, timeout=30)
    try:
        conn.request(method, path, body, {"Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _upload(emu, bucket: str, name: str, data: bytes):
    q = urllib.parse.urlencode({"uploadType": "media", "name": name})
    return _request(emu, "POST", f"/upload/storage/v1/b/{bucket}/o?{q}", data, "text/plain")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def stores(tmp_path):
    """Two persist stores side by side: P1 holds a secret, P2 is the one served."""
    p1, p2 = tmp_path / "P1", tmp_path / "P2"
    with GcsEmulator(persist=p1) as emu:
        emu.backend.create_bucket("bkt")
        assert _upload(emu, "bkt", "secret.txt", b"P1 secret")[0] == 200
    return tmp_path, p1, p2


def test_compose_sources_go_through_the_name_check(stores) -> None:
    tmp, _, p2 = stores
    with GcsEmulator(persist=p2) as emu:
        emu.backend.create_bucket("mine")
        assert _upload(emu, "mine", "ok", b"ok")[0] == 200
        for source in ("../../P1/bkt/secret.txt", "a/../../x", "nul\x00name", 7):
            body = json.dumps({"sourceObjects": [{"name": source}]}).encode()
            status, answer = _request(emu, "POST", "/storage/v1/b/mine/o/stolen/compose", body)
            assert status == 400, (source, answer)
            assert str(tmp) not in answer.decode()
        status, _ = _request(emu, "POST", "/storage/v1/b/mine/o/stolen/compose", b"{not json")
        assert status == 400
        assert _request(emu, "GET", "/storage/v1/b/mine/o/stolen?alt=media")[0] == 404
        good = json.dumps({"sourceObjects": [{"name": "ok"}, {"name": "ok"}]}).encode()
        assert _request(emu, "POST", "/storage/v1/b/mine/o/twice/compose", good)[0] == 200
        assert _request(emu, "GET", "/storage/v1/b/mine/o/twice?alt=media") == (200, b"okok")


def test_symlinked_bucket_dirs_and_subdirs_are_never_followed(stores) -> None:
    tmp, p1, p2 = stores
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text("outside file")
    with GcsEmulator(persist=p2) as emu:
        emu.backend.create_bucket("real")
        assert _upload(emu, "real", "d/x", b"x")[0] == 200
        (p2 / "real" / "sub").symlink_to(outside)  # a subdirectory link
        (p2 / "linked").symlink_to(p1 / "bkt")  # a bucket directory link
        (p2 / "linked.bucketMetadata").symlink_to(outside / "o.txt")
        before = _files(outside), (p1 / "bkt" / "secret.txt").read_bytes()
        for bucket, name in (("real", "sub/new.txt"), ("linked", "new.txt")):
            status, answer = _upload(emu, bucket, name, b"escape")
            assert status == 400 and b"symbolic link" in answer, answer
            assert str(tmp).encode() not in answer
        reads = [
            "/storage/v1/b/real/o/sub%2Fo.txt?alt=media",
            "/storage/v1/b/linked/o/secret.txt?alt=media",
            "/storage/v1/b/real/o",  # a listing would walk into the link
            "/storage/v1/b/linked/o",
        ]
        for path in reads:
            status, answer = _request(emu, "GET", path)
            assert status == 400 and b"P1 secret" not in answer and b"outside" not in answer
        assert _request(emu, "GET", "/storage/v1/b/real/o/d%2Fx?alt=media") == (200, b"x")
        assert (_files(outside), (p1 / "bkt" / "secret.txt").read_bytes()) == before


def test_xml_api_reads_are_confined_too(stores) -> None:
    tmp, p1, p2 = stores
    with GcsEmulator(persist=p2) as emu:
        emu.backend.create_bucket("mine")
        assert _upload(emu, "mine", "own.txt", b"mine")[0] == 200
        (p2 / "linked").symlink_to(p1 / "bkt")
        for path in ("/mine/..%2F..%2FP1%2Fbkt%2Fsecret.txt", "/mine/../../P1/bkt/secret.txt",
                     "/linked/secret.txt", "/linked/", "/mine/%00x"):  # fmt: skip
            conn = http.client.HTTPConnection("127.0.0.1", emu.front.port, timeout=30)
            conn.request("GET", path, headers={"Host": "storage.googleapis.com"})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            assert resp.status == 400 and b"P1 secret" not in body, (path, resp.status, body)
            assert str(tmp).encode() not in body
        assert _request(emu, "GET", "/mine/own.txt") == (200, b"mine")


def test_batch_inner_requests_are_checked(stores) -> None:
    tmp, p1, p2 = stores
    with GcsEmulator(persist=p2) as emu:
        emu.backend.create_bucket("mine")
        assert _upload(emu, "mine", "own", b"x")[0] == 200
        (p2 / "linked").symlink_to(p1 / "bkt")

        def batch(*inner: str) -> tuple[int, bytes]:
            parts = "".join(
                f"--BB\r\nContent-Type: application/http\r\nContent-ID: {i}\r\n\r\n"
                f"{line} HTTP/1.1\r\n\r\n"
                for i, line in enumerate(inner)
            )
            return _request(emu, "POST", "/batch/storage/v1", f"{parts}--BB--\r\n".encode(),
                            "multipart/mixed; boundary=BB")  # fmt: skip

        for inner in ("DELETE /storage/v1/b/mine/o/..%2F..%2FP1%2Fbkt%2Fsecret.txt",
                      "DELETE /storage/v1/b/linked/o/secret.txt"):  # fmt: skip
            status, body = batch("DELETE /storage/v1/b/mine/o/own", inner)
            assert status == 400 and str(tmp).encode() not in body, (inner, body)
        assert (p1 / "bkt" / "secret.txt").read_bytes() == b"P1 secret"
        assert batch("DELETE /storage/v1/b/mine/o/own")[0] == 200  # a checked batch is served


def test_unstorable_names_get_400_without_paths(tmp_path) -> None:
    with GcsEmulator(persist=tmp_path / "P") as emu:
        emu.backend.create_bucket("bkt")
        for name in ("x\x00y", "z" * 240, "ok/" + "y" * 201):
            status, answer = _upload(emu, "bkt", name, b"data")
            assert status == 400, (name[:20], answer)
            assert str(tmp_path).encode() not in answer
        assert _upload(emu, "bkt", "z" * 200, b"fine")[0] == 200


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--persist", "/proc/gcs-hook-x"],
            "--persist /proc/gcs-hook-x: cannot create the directory",
        ),
        (["--ledger", "link.jsonl"], "is a symbolic link"),
    ],
)
def test_serve_option_oddities_one_line(tmp_path, args, needle) -> None:
    import subprocess
    import sys

    (tmp_path / "link.jsonl").symlink_to(tmp_path / "victim")
    res = subprocess.run(
        [sys.executable, "-m", "gcs_hook.cli", "serve", *args], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and needle in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl"]
