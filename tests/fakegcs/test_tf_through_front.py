"""Real TensorFlow (subprocess) reading and writing gs:// through the front (issue #2)."""

from __future__ import annotations

import os

import pytest
from _support import data

pytestmark = pytest.mark.tf

CACHE_ENV = {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "4"}


def test_gfile_reads_are_byte_exact(gcs_emulator, gcs_bucket, tf_worker, gcs_ledger):
    blob = data(300_000, "a")
    gcs_emulator.backend.put_object(gcs_bucket, "dir/a.bin", blob)
    gcs_emulator.backend.put_object(gcs_bucket, "dir/sub/b.txt", b"hello")
    gcs_emulator.backend.put_object(gcs_bucket, "top.txt", b"")
    mark = gcs_ledger.mark()
    got = tf_worker.run(
        """
root = f"gs://{bucket}"
result = {
    "exists": tf.io.gfile.exists(f"{root}/dir/a.bin"),
    "missing": tf.io.gfile.exists(f"{root}/dir/nope.bin"),
    "isdir": tf.io.gfile.isdir(f"{root}/dir"),
    "size": tf.io.gfile.stat(f"{root}/dir/a.bin").length,
    "data": tf.io.gfile.GFile(f"{root}/dir/a.bin", "rb").read(),
    "empty": tf.io.gfile.GFile(f"{root}/top.txt", "rb").read(),
    "listdir": sorted(tf.io.gfile.listdir(f"{root}/dir")),
    "glob": sorted(tf.io.gfile.glob(f"{root}/dir/*")),
}
""",
        bucket=gcs_bucket,
    )
    assert got["exists"] is True
    assert got["missing"] is False
    assert got["isdir"] is True
    assert got["size"] == len(blob)
    assert got["data"] == blob
    assert got["empty"] == b""
    assert got["listdir"] == ["a.bin", "sub/"]
    assert got["glob"] == [f"gs://{gcs_bucket}/dir/a.bin", f"gs://{gcs_bucket}/dir/sub"]
    mine = gcs_ledger.since(mark, bucket=gcs_bucket)
    kinds = {r.kind for r in mine}
    assert {"metadata", "media", "list"} <= kinds
    assert all(r.principal == "test-token" for r in mine)
    assert all(r.scheme == "https" for r in mine)
    media = [r for r in mine if r.kind == "media" and r.object == "dir/a.bin"]
    assert media and all(r.host == "storage.googleapis.com" and r.range for r in media)


def test_block_cache_requests_in_ledger(gcs_emulator, gcs_bucket, tf_worker_factory, gcs_ledger):
    """The issue's first ledger-verified expectation (1 MiB blocks, 4 MiB cache)."""
    blob = data(3_000_000, "cache")
    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", blob)
    worker = tf_worker_factory(CACHE_ENV)
    mark = gcs_ledger.mark()
    got = worker.run(
        """
f = tf.io.gfile.GFile(path, "rb")
f.seek(0)
a = f.read(100)
f.seek(1_500_000)
b = f.read(1000)
result = [a, b]
""",
        path=f"gs://{gcs_bucket}/a.bin",
    )
    assert got == [blob[:100], blob[1_500_000:1_501_000]]
    mine = gcs_ledger.since(mark, bucket=gcs_bucket, object="a.bin")
    assert [r.kind for r in mine if r.kind == "metadata"] == ["metadata"]
    media = [r for r in mine if r.kind == "media"]
    assert [r.range for r in media] == [(0, 1_048_575), (1_048_576, 2_097_151)]
    assert [r.status for r in media] == [206, 206]
    assert [r.bytes_out for r in media] == [1_048_576, 1_048_576]
    assert len(mine) == 3
    assert [r.as_trace_request() for r in mine] == [
        {"kind": "metadata", "object": f"{gcs_bucket}/a.bin"},
        {"kind": "media", "object": f"{gcs_bucket}/a.bin", "range": [0, 1_048_575]},
        {"kind": "media", "object": f"{gcs_bucket}/a.bin", "range": [1_048_576, 2_097_151]},
    ]


def test_write_file_and_checkpoint_roundtrip(gcs_emulator, gcs_bucket, tf_worker, gcs_ledger):
    payload = os.urandom(200_000)
    mark = gcs_ledger.mark()
    got = tf_worker.run(
        """
root = f"gs://{bucket}"
with tf.io.gfile.GFile(f"{root}/out/blob.bin", "wb") as f:
    f.write(payload)
v = tf.Variable([1.0, 2.0, 3.0])
step = tf.Variable(7, dtype=tf.int64)
ckpt = tf.train.Checkpoint(v=v, step=step)
prefix = ckpt.save(f"{root}/ckpt/model")
v.assign([0.0, 0.0, 0.0]); step.assign(0)
fresh_v = tf.Variable([9.0, 9.0, 9.0]); fresh_step = tf.Variable(0, dtype=tf.int64)
tf.train.Checkpoint(v=fresh_v, step=fresh_step).restore(prefix).assert_consumed()
result = {
    "blob": tf.io.gfile.GFile(f"{root}/out/blob.bin", "rb").read(),
    "prefix": prefix,
    "latest": tf.train.latest_checkpoint(f"{root}/ckpt"),
    "v": fresh_v.numpy().tolist(),
    "step": int(fresh_step.numpy()),
}
""",
        bucket=gcs_bucket,
        payload=payload,
    )
    assert got["blob"] == payload
    assert got["v"] == [1.0, 2.0, 3.0]
    assert got["step"] == 7
    assert got["latest"] == got["prefix"]
    # the objects really are in the backend, with the bytes TF wrote
    assert gcs_emulator.backend.get_object(gcs_bucket, "out/blob.bin") == payload
    names = gcs_emulator.backend.list_objects(gcs_bucket)
    assert "ckpt/checkpoint" in names
    assert any(n.startswith("ckpt/model-1.data-") for n in names)
    uploads = gcs_ledger.since(mark, bucket=gcs_bucket, kind="upload")
    assert uploads and all(r.status in (200, 201) for r in uploads)
    assert {r.method for r in uploads} == {"POST", "PUT"}  # resumable: initiate + data


def test_missing_object_is_not_found(gcs_bucket, tf_worker):
    got = tf_worker.run(
        """
try:
    tf.io.gfile.GFile(path, "rb").read()
    result = "no error"
except tf.errors.NotFoundError as exc:
    result = "NotFoundError"
""",
        path=f"gs://{gcs_bucket}/absent.bin",
    )
    assert got == "NotFoundError"


def test_large_write_rename_copy(gcs_emulator, gcs_bucket, tf_worker, gcs_ledger):
    """A multi-MiB resumable upload (curl's Expect: 100-continue), rename (rewrite + delete), copy."""
    payload = os.urandom(5_000_000)
    mark = gcs_ledger.mark()
    got = tf_worker.run(
        """
root = f"gs://{bucket}"
with tf.io.gfile.GFile(f"{root}/big.bin", "wb") as f:
    f.write(payload)
tf.io.gfile.rename(f"{root}/big.bin", f"{root}/moved.bin")
tf.io.gfile.copy(f"{root}/moved.bin", f"{root}/copied.bin")
result = {
    "copied": tf.io.gfile.GFile(f"{root}/copied.bin", "rb").read() == payload,
    "old_exists": tf.io.gfile.exists(f"{root}/big.bin"),
}
""",
        bucket=gcs_bucket,
        payload=payload,
    )
    assert got == {"copied": True, "old_exists": False}
    assert sorted(gcs_emulator.backend.list_objects(gcs_bucket)) == ["copied.bin", "moved.bin"]
    assert gcs_emulator.backend.get_object(gcs_bucket, "moved.bin") == payload
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    puts = [r for r in recs if r.kind == "upload" and r.method == "PUT"]
    assert [r.bytes_in for r in puts] == [len(payload), len(payload)]
    assert [r.object for r in recs if r.kind == "delete"] == ["big.bin"]
    assert any("rewriteTo" in r.path for r in recs if r.kind == "other")
