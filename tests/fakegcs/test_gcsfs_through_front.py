"""Python clients (gcsfs, google-cloud-storage) through the front's plain-HTTP endpoint."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture
def blob(gcs_emulator, gcs_bucket) -> bytes:
    data = os.urandom(2_500_000)
    gcs_emulator.backend.put_object(gcs_bucket, "dir/obj.bin", data)
    return data


def test_gcsfs_reads_same_bytes_and_is_recorded(gcs_emulator, gcs_bucket, gcs_ledger, blob):
    fs = gcs_emulator.gcsfs()
    mark = gcs_ledger.mark()
    path = f"{gcs_bucket}/dir/obj.bin"
    assert fs.cat_file(path) == blob
    assert fs.cat_file(path, start=1_500_000, end=1_500_100) == blob[1_500_000:1_500_100]
    with fs.open(path, "rb", block_size=256 * 1024) as f:
        f.seek(2_000_000)
        assert f.read(1000) == blob[2_000_000:2_001_000]
    assert fs.ls(f"{gcs_bucket}/dir", detail=False) == [path]
    assert fs.info(path)["size"] == len(blob)
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    kinds = [r.kind for r in recs]
    assert "media" in kinds and "list" in kinds
    assert all(r.scheme == "http" and r.principal == "anonymous" for r in recs)
    ranged = [r for r in recs if r.kind == "media" and r.range]
    assert any(r.range[0] == 1_500_000 for r in ranged)
    assert all(r.object == "dir/obj.bin" for r in recs if r.kind == "media")


def test_gcsfs_write_goes_through_front(gcs_emulator, gcs_bucket, gcs_ledger):
    fs = gcs_emulator.gcsfs()
    mark = gcs_ledger.mark()
    fs.pipe_file(f"{gcs_bucket}/written.txt", b"written by gcsfs")
    assert gcs_emulator.backend.get_object(gcs_bucket, "written.txt") == b"written by gcsfs"
    assert gcs_ledger.since(mark, bucket=gcs_bucket, kind="upload")


def test_google_cloud_storage_client(gcs_emulator, gcs_bucket, gcs_ledger, blob):
    client = gcs_emulator.storage_client()
    mark = gcs_ledger.mark()
    b = client.bucket(gcs_bucket).blob("dir/obj.bin")
    assert b.download_as_bytes() == blob
    assert b.download_as_bytes(start=10, end=19) == blob[10:20]
    names = [x.name for x in client.list_blobs(gcs_bucket)]
    assert names == ["dir/obj.bin"]
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert [r for r in recs if r.kind == "media"]
    assert [r for r in recs if r.kind == "list"]
    assert all(r.scheme == "http" for r in recs)
