"""Issue 11, finding 1 and 7 (names): GCS naming rules at the front, no path outside the data.

Real fake-gcs-server processes, real sockets, loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse

import pytest

from emulator.fakegcs import names
from emulator.fakegcs.backend import BackendError
from emulator.fakegcs.session import GcsEmulator


def _conn(emu) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", emu.front.port, timeout=30)


def upload(emu, bucket: str, name: str, data: bytes) -> tuple[int, dict]:
    conn = _conn(emu)
    q = urllib.parse.urlencode({"uploadType": "media", "name": name})
    conn.request("POST", f"/upload/storage/v1/b/{bucket}/o?{q}", body=data)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, json.loads(body or b"{}")


def download(emu, bucket: str, name: str) -> tuple[int, bytes]:
    conn = _conn(emu)
    o = urllib.parse.quote(name, safe="")
    conn.request("GET", f"/download/storage/v1/b/{bucket}/o/{o}?alt=media")
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def _files_named(root: str, fragment: str) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        found += [os.path.join(dirpath, f) for f in files if fragment in f]
    return found


# -- the memory backend (default) ----------------------------------------------------------------
def test_default_backend_is_memory_and_holds_dotdot_names(gcs_emulator, gcs_bucket, tmp_path):
    """Finding 1: ``../../../pwned`` is a valid GCS name; it must stay a name, not a path."""
    assert gcs_emulator.backend.persist_dir is None
    name = "../../../pwned-" + os.urandom(4).hex()
    status, meta = upload(gcs_emulator, gcs_bucket, name, b"not a file anywhere")
    assert status == 200 and meta["name"] == name
    assert download(gcs_emulator, gcs_bucket, name) == (200, b"not a file anywhere")
    tmp = os.path.dirname(gcs_emulator.backend._dir)
    assert _files_named(tmp, name.rsplit("/", 1)[1]) == []


def test_object_and_prefix_of_same_name_coexist(gcs_emulator, gcs_bucket):
    """Finding 1: ``p`` then ``p/q`` (a 500 with a local path on the filesystem backend)."""
    assert upload(gcs_emulator, gcs_bucket, "p", b"P")[0] == 200
    status, body = upload(gcs_emulator, gcs_bucket, "p/q", b"Q")
    assert status == 200, body
    assert "/" not in json.dumps(body.get("error", ""))  # no local path leaks
    assert download(gcs_emulator, gcs_bucket, "p") == (200, b"P")
    assert download(gcs_emulator, gcs_bucket, "p/q") == (200, b"Q")
    assert upload(gcs_emulator, gcs_bucket, "dir/", b"")[0] == 200  # a "directory" marker
    assert sorted(gcs_emulator.backend.list_objects(gcs_bucket)) == ["dir/", "p", "p/q"]


def test_gcsfs_directory_like_names(gcs_emulator, gcs_bucket):
    fs = gcs_emulator.gcsfs()
    fs.pipe(f"{gcs_bucket}/a", b"1")
    fs.pipe(f"{gcs_bucket}/a/b", b"2")
    assert fs.cat(f"{gcs_bucket}/a") == b"1" and fs.cat(f"{gcs_bucket}/a/b") == b"2"


# -- naming rules at the front -------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, why",
    [
        ("x" * 1025, "1024"),
        ("é" * 513, "1024"),  # 1026 bytes of UTF-8 in 513 characters
        ("a\nb", "line feed"),
        ("a\rb", "carriage return"),
        (".", "not allowed"),
        ("..", "not allowed"),
        (".well-known/acme-challenge/x", "acme"),
    ],
)
def test_refused_names_get_gcs_400_and_a_record(gcs_emulator, gcs_bucket, gcs_ledger, name, why):
    mark = gcs_ledger.mark()
    status, body = upload(gcs_emulator, gcs_bucket, name, b"data")
    assert status == 400
    assert body["error"]["code"] == 400 and why in body["error"]["message"]
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert [(r.status, r.extra.get("refused")) for r in recs] == [(400, "name")]
    assert gcs_emulator.backend.list_objects(gcs_bucket) == []


def test_longest_valid_name_is_accepted(gcs_emulator, gcs_bucket):
    name = "n" * 1024
    assert upload(gcs_emulator, gcs_bucket, name, b"ok")[0] == 200
    assert download(gcs_emulator, gcs_bucket, name) == (200, b"ok")


def test_invalid_utf8_name_refused(gcs_emulator, gcs_bucket, gcs_ledger):
    mark = gcs_ledger.mark()
    conn = _conn(gcs_emulator)
    conn.request("POST", f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=%FF%FE", b"x")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 400 and "UTF-8" in body["error"]["message"]
    assert [r.status for r in gcs_ledger.since(mark)] == [400]


def test_names_in_json_metadata_are_checked(gcs_emulator, gcs_bucket):
    """Multipart uploads (google-cloud-storage, gcsfs) carry the name in a JSON part."""
    client = gcs_emulator.storage_client()
    blob = client.bucket(gcs_bucket).blob("bad\nname")
    with pytest.raises(Exception, match="400"):
        blob.upload_from_string(b"x")
    client.bucket(gcs_bucket).blob("good name").upload_from_string(b"y")
    assert gcs_emulator.backend.list_objects(gcs_bucket) == ["good name"]


def test_bad_bucket_name_on_create_refused(gcs_emulator, gcs_ledger):
    mark = gcs_ledger.mark()
    conn = _conn(gcs_emulator)
    conn.request("POST", "/storage/v1/b", json.dumps({"name": "../evil"}).encode(),
                 {"Content-Type": "application/json"})  # fmt: skip
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 400 and "Invalid bucket name" in body["error"]["message"]
    assert [r.status for r in gcs_ledger.since(mark)] == [400]
    assert "../evil" not in gcs_emulator.backend.list_buckets()


@pytest.mark.parametrize(
    "name, ok",
    [("a", True), ("../x", True), ("a/../b", True), ("", False), ("a\r", False)],
)
def test_name_error_rules(name, ok):
    assert (names.name_error(name) is None) is ok


@pytest.mark.parametrize("name", ["../x", "a/../b", "./a", "a/.", "a/./b", ".."])
def test_persist_error_rules(name):
    assert names.persist_error(name) is not None


def test_bucket_rules():
    assert names.bucket_error("my-bucket_1.data") is None
    for bad in ("ab", "A-bucket", "-x-", "a..b", "../evil", "x" * 64):
        assert names.bucket_error(bad) is not None


# -- the persistent (filesystem) backend ---------------------------------------------------------
def test_persist_backend_is_safe_and_survives_restart(tmp_path):
    store = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    with GcsEmulator(persist=store) as emu:
        emu.backend.create_bucket("keep-bkt")
        assert upload(emu, "keep-bkt", "d/x.bin", b"kept")[0] == 200
        for evil in ("../../outside/pwned", "../keep-bkt.bucketMetadata", "a/./b", "a/.."):
            status, body = upload(emu, "keep-bkt", evil, b"evil")
            assert status == 400, evil
            assert "persistent" in body["error"]["message"]
        with pytest.raises(BackendError, match="persistent"):
            emu.backend.put_object("keep-bkt", "../direct", b"evil")
        assert download(emu, "keep-bkt", "d/x.bin") == (200, b"kept")  # bucket still answers
    assert list(outside.iterdir()) == []
    assert store.is_dir()
    with GcsEmulator(persist=store) as emu:
        assert download(emu, "keep-bkt", "d/x.bin") == (200, b"kept")


def test_persist_needs_embedded_backend_and_a_directory(tmp_path, gcs_emulator):
    with pytest.raises(ValueError, match="embedded"):
        GcsEmulator(gcs_emulator.backend.endpoint, persist=tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(BackendError, match="not a directory"):
        GcsEmulator(persist=f)


# -- --data seeding and symlinks ----------------------------------------------------------------
def test_seed_refuses_symlink_leaving_the_tree_before_uploading(gcs_emulator, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    seed = tmp_path / "seed"
    bdir = seed / "seed-sym-bkt"
    bdir.mkdir(parents=True)
    (bdir / "a.txt").write_text("inside")
    (bdir / "link").symlink_to(secret)
    with pytest.raises(ValueError, match="leads outside the tree"):
        gcs_emulator.backend.seed_from_dir(seed)
    assert "seed-sym-bkt" not in gcs_emulator.backend.list_buckets()
    created = gcs_emulator.backend.seed_from_dir(seed, follow_symlinks=True)
    try:
        assert sorted(created) == ["seed-sym-bkt/a.txt", "seed-sym-bkt/link"]
        assert gcs_emulator.backend.get_object("seed-sym-bkt", "link") == b"outside"
    finally:
        gcs_emulator.backend.delete_bucket("seed-sym-bkt")


def test_seed_follows_symlinks_inside_the_tree_and_refuses_loops(gcs_emulator, tmp_path):
    seed = tmp_path / "seed"
    bdir = seed / "seed-in-bkt"
    (bdir / "real").mkdir(parents=True)
    (bdir / "real" / "f").write_text("F")
    (bdir / "alias").symlink_to(bdir / "real")
    created = gcs_emulator.backend.seed_from_dir(seed)
    try:
        assert sorted(created) == ["seed-in-bkt/alias/f", "seed-in-bkt/real/f"]
    finally:
        gcs_emulator.backend.delete_bucket("seed-in-bkt")
    (bdir / "real" / "loop").symlink_to(bdir)
    with pytest.raises(ValueError, match="loop"):
        gcs_emulator.backend.seed_from_dir(seed)


def test_persist_backend_checks_copy_rewrite_compose_and_hides_its_path(tmp_path):
    store = tmp_path / "store"
    with GcsEmulator(persist=store) as emu:
        emu.backend.create_bucket("cp-bkt")
        assert upload(emu, "cp-bkt", "p", b"P")[0] == 200
        evil = urllib.parse.quote("../../escape", safe="")
        for method, path, body in (
            ("POST", f"/storage/v1/b/cp-bkt/o/p/copyTo/b/cp-bkt/o/{evil}", b""),
            ("POST", f"/storage/v1/b/cp-bkt/o/p/rewriteTo/b/cp-bkt/o/{evil}", b""),
            ("POST", f"/storage/v1/b/cp-bkt/o/{evil}/compose",
             json.dumps({"sourceObjects": [{"name": "p"}]}).encode()),
        ):  # fmt: skip
            conn = _conn(emu)
            conn.request(method, path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 400, (path, resp.read())
            resp.read()
            conn.close()
        status, body = upload(emu, "cp-bkt", "p/q", b"Q")  # a file cannot be a directory
        assert status == 500 and str(store) not in json.dumps(body)
        assert "<persist dir>" in json.dumps(body)
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_memory_backend_keeps_object_versions(gcs_emulator):
    """Finding 1: the filesystem backend had no versioning; the memory backend has."""
    conn = _conn(gcs_emulator)
    body = json.dumps({"name": "ver-bkt-" + os.urandom(4).hex(), "versioning": {"enabled": True}})
    conn.request("POST", "/storage/v1/b?project=p", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    bucket = json.loads(resp.read())["name"]
    assert resp.status == 200
    try:
        for data in (b"one", b"two"):
            assert upload(gcs_emulator, bucket, "v", data)[0] == 200
        conn.request("GET", f"/storage/v1/b/{bucket}/o?versions=true")
        items = json.loads(conn.getresponse().read())["items"]
        assert [i["name"] for i in items] == ["v", "v"]
        assert len({i["generation"] for i in items}) == 2
        assert download(gcs_emulator, bucket, "v") == (200, b"two")
    finally:
        conn.close()
        gcs_emulator.backend.delete_bucket(bucket)
