"""Byte-moving transports and the ``tfgcs://`` fsspec filesystem against the fake GCS + front.

The front's ledger is the witness: what a transport says it sent must be what the front saw,
and the byte-moving model over gcsfs must send exactly what the size-only simulator predicts.
"""

from __future__ import annotations

import glob
import os

import fsspec
import pytest
from _support import TRACE_DIR

from emulator.model.clock import VirtualClock
from emulator.model.errors import NotFoundError
from emulator.model.fsspec_fs import TFCachedFileSystem
from emulator.model.gcs_model import GcsFilesystemModel
from emulator.model.transport import GcsClientTransport, GcsfsTransport
from emulator.replay.simulation import run_trace, simulate
from emulator.replay.trace import load_trace, object_content

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

KiB = 1024
MiB = 1024 * KiB
TRACES = str(TRACE_DIR)


def seen(emulator, mark, bucket):
    """Trace-form requests the front recorded for ``bucket`` since ``mark`` (the library's own
    bucket-metadata lookups excluded)."""
    emulator.ledger.wait_quiet(quiet_s=0.05, timeout=5)
    return [
        r.as_trace_request()
        for r in emulator.ledger.since(mark)
        if r.bucket == bucket and r.kind != "bucket"
    ]


def target_options(emulator):
    """gcsfs options for the front's plain endpoint, anonymous."""
    return {"endpoint_url": emulator.url, "token": "anon"}


def cached_fs(emulator):
    """A fresh ``tfgcs`` filesystem over the front: 64 KiB blocks, 256 KiB cache, no staleness."""
    return TFCachedFileSystem(
        target_options=target_options(emulator),
        block_cache={"block_size": 64 * KiB, "max_bytes": 256 * KiB, "max_staleness": 0},
        skip_instance_cache=True,
    )


@pytest.fixture
def obj(gcs_emulator, gcs_bucket):
    data = object_content(f"{gcs_bucket}/a.bin", 1, 300_000)
    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", data)
    return gcs_bucket, data


@pytest.mark.parametrize("kind", ["gcsfs", "google-cloud-storage"])
def test_transport_requests_match_the_front_ledger(gcs_emulator, obj, kind):
    bucket, data = obj
    if kind == "gcsfs":
        t = GcsfsTransport(gcs_emulator.gcsfs())
    else:
        t = GcsClientTransport(gcs_emulator.storage_client())
    mark = gcs_emulator.ledger.mark()
    st = t.stat(bucket, "a.bin")
    assert st.size == 300_000 and st.generation > 0
    assert t.read_range(bucket, "a.bin", 0, 100 * KiB) == data[: 100 * KiB]
    assert t.read_range(bucket, "a.bin", 256 * KiB, 100 * KiB) == data[256 * KiB :]
    assert t.read_range(bucket, "a.bin", 400 * KiB, 10) == b""  # 416 → 0 bytes
    with pytest.raises(NotFoundError):
        t.stat(bucket, "missing")
    with pytest.raises(NotFoundError):
        t.read_range(bucket, "missing", 0, 10)
    assert t.list_prefix(bucket, "a.", 1) == ["a.bin"]
    assert seen(gcs_emulator, mark, bucket) == t.requests
    assert t.bytes_received == 300_000 - 256 * KiB + 100 * KiB


def test_model_over_gcsfs_equals_simulation_on_suite_traces(gcs_emulator, gcs_bucket):
    """Byte-moving model through the front == size-only simulation, request for request."""
    names = ["t01", "t04", "t05", "t11", "t13", "t17", "t22", "t29"]
    paths = [
        p
        for p in sorted(glob.glob(os.path.join(TRACES, "*.json")))
        if os.path.basename(p)[:3] in names
    ]
    assert paths
    backend = gcs_emulator.backend
    for i, path in enumerate(paths):
        trace = load_trace(path)
        prefix = f"r{i}"

        def rename(name, prefix=prefix):  # isolate each trace's objects in the shared bucket
            return f"{gcs_bucket}/{prefix}-{name.replace('/', '-')}"

        doc = trace.to_dict()
        doc["objects"] = {rename(k): v for k, v in doc["objects"].items()}
        for op in doc["ops"]:
            if "object" in op:
                op["object"] = rename(op["object"])
        trace = load_trace(doc)

        def writer(name, version, size):
            b, _, o = name.partition("/")
            backend.put_object(b, o, object_content(name, version, size))

        def deleter(name):
            b, _, o = name.partition("/")
            if o in backend.list_objects(b, o):
                backend.delete_object(b, o)

        transport = GcsfsTransport(gcs_emulator.gcsfs())
        fs = GcsFilesystemModel(
            transport,
            trace.config,
            stat_cache_max_age=trace.stat_cache_max_age,
            clock=VirtualClock(),
        )
        mark = gcs_emulator.ledger.mark()
        result = run_trace(trace, fs, writer=writer, deleter=deleter)
        sim = simulate(trace, record_requests=True)
        assert result.requests == sim.requests, path
        assert [(r.returned, r.error) for r in result.reads] == [
            (r.returned, r.error) for r in sim.reads
        ], path
        ledger = [
            r for r in seen(gcs_emulator, mark, gcs_bucket) if r["kind"] in ("metadata", "media")
        ]
        assert ledger == result.requests, path


def test_fsspec_open_tfgcs_reads_with_tf_cache_semantics(gcs_emulator, obj):
    bucket, data = obj
    fs = cached_fs(gcs_emulator)
    mark = gcs_emulator.ledger.mark()
    with fs.open(f"tfgcs://{bucket}/a.bin", "rb") as f:
        f.seek(70 * KiB)
        assert f.read(100) == data[70 * KiB : 70 * KiB + 100]
        f.seek(299_000)
        assert f.read(5000) == data[299_000:]  # EOF: partial data, no error
        f.seek(70 * KiB + 10)
        assert f.read(10) == data[70 * KiB + 10 : 70 * KiB + 20]  # cached: no request
    assert seen(gcs_emulator, mark, bucket) == [
        {"kind": "metadata", "object": f"{bucket}/a.bin"},
        {"kind": "media", "object": f"{bucket}/a.bin", "range": [64 * KiB, 128 * KiB - 1]},
        {"kind": "media", "object": f"{bucket}/a.bin", "range": [256 * KiB, 320 * KiB - 1]},
    ]
    assert fs.cat_file(f"{bucket}/a.bin", 0, 10) == data[:10]


def test_fsspec_open_url_and_cache_off_buffered_reader(gcs_emulator, obj):
    bucket, data = obj
    mark = gcs_emulator.ledger.mark()
    with fsspec.open(
        f"tfgcs://{bucket}/a.bin",
        "rb",
        target_options=target_options(gcs_emulator),
        block_cache={"block_size": 100 * KiB, "max_bytes": 0, "max_staleness": 0},
        skip_instance_cache=True,
    ) as f:
        assert isinstance(f.fs, TFCachedFileSystem)
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
        assert f.read(10) == data[1010:1020]
    reqs = seen(gcs_emulator, mark, bucket)
    assert reqs[-1] == {
        "kind": "media",
        "object": f"{bucket}/a.bin",
        "range": [1000, 1000 + 100 * KiB - 1],
    }
    assert [r["kind"] for r in reqs].count("media") == 1


def test_missing_object_and_write_invalidation(gcs_emulator, obj):
    bucket, data = obj
    fs = cached_fs(gcs_emulator)
    with pytest.raises(FileNotFoundError):
        fs.open(f"{bucket}/nope", "rb")
    with fs.open(f"{bucket}/a.bin", "rb") as f:
        assert f.read(10) == data[:10]
    new = object_content(f"{bucket}/a.bin", 2, 1000)
    with fs.open(f"{bucket}/a.bin", "wb") as w:
        w.write(new)
    with fs.open(f"{bucket}/a.bin", "rb") as f:  # caches cleared by the write: new bytes
        assert f.read() == new
