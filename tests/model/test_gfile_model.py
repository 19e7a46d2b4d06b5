"""GFileModel vs real ``tf.io.gfile.GFile``: same results and the same requests at the front."""

from __future__ import annotations

import hashlib

import pytest

from emulator.model.clock import RealClock, VirtualClock
from emulator.model.errors import GcsError
from emulator.model.gcs_model import GcsFilesystemModel
from emulator.model.gfile_model import GFileModel
from emulator.model.transport import GcsfsTransport, MemoryTransport
from emulator.replay.trace import object_content

MiB = 1024 * 1024
SIZE = 3_000_000

SEQUENCES = [
    [
        ("read", 100),
        ("read", 600_000),
        ("tell",),
        ("seek", 10, 0),
        ("read", 50),
        ("seek", 2_000_000, 0),
        ("read", 10),
        ("seek", 5, 1),
        ("read", 1),
        ("tell",),
    ],
    [
        ("read", -1),
        ("tell",),
        ("seek", 0, 0),
        ("readline",),
        ("readline",),
        ("read", 700_000),
        ("readline",),
    ],
    [
        ("seek", 2_999_990, 0),
        ("read", 100),
        ("read", 10),
        ("readline",),
        ("seek", -20, 2),
        ("read", -1),
        ("seek", 100, 0),
        ("read", 524_288),
        ("read", 524_288),
    ],
    [("seek", 3_000_100, 0), ("tell",), ("read", 10), ("seek", 1_500_000, 0), ("read", 5)],
]

TF_CODE = """
import hashlib
out = []
f = tf.io.gfile.GFile(path, "rb")
for op in ops:
    try:
        if op[0] == "read":
            d = f.read(op[1]); out.append([len(d), hashlib.sha256(d).hexdigest()])
        elif op[0] == "readline":
            d = f.readline(); out.append([len(d), hashlib.sha256(d).hexdigest()])
        elif op[0] == "tell":
            out.append(f.tell())
        else:
            f.seek(op[1], op[2]); out.append("ok")
    except tf.errors.OpError as e:
        out.append(type(e).__name__)
result = out
"""


def run_model_ops(g: GFileModel, ops) -> list:
    out: list = []
    for op in ops:
        try:
            if op[0] in ("read", "readline"):
                d = g.read(op[1]) if op[0] == "read" else g.readline()
                out.append([len(d), hashlib.sha256(d).hexdigest()])
            elif op[0] == "tell":
                out.append(g.tell())
            else:
                g.seek(op[1], op[2])
                out.append("ok")
        except GcsError as e:
            out.append("".join(w.capitalize() for w in e.code.split("_")) + "Error")
    return out


@pytest.mark.tf
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cache_on", [False, True], ids=["cache-off", "cache-on"])
def test_gfile_model_equals_tf(gcs_emulator, gcs_bucket, tf_worker_factory, cache_on):
    env = (
        {"GCS_READ_CACHE_BLOCK_SIZE_MB": "1", "GCS_READ_CACHE_MAX_SIZE_MB": "4"} if cache_on else {}
    )
    params = {"block_size": MiB, "max_bytes": 4 * MiB, "max_staleness": 0} if cache_on else None
    tf = tf_worker_factory(env)
    model_fs = GcsFilesystemModel(GcsfsTransport(gcs_emulator.gcsfs()), params, clock=RealClock())
    ledger = gcs_emulator.ledger

    def requests(mark, obj):
        ledger.wait_quiet(quiet_s=0.05, timeout=5)
        return [r.as_trace_request() for r in ledger.since(mark) if r.object == obj]

    for i, ops in enumerate(SEQUENCES):
        for engine in ("tf", "model"):
            obj = f"{engine}-{i}.bin"
            gcs_emulator.backend.put_object(gcs_bucket, obj, object_content("g/x", 1, SIZE))
        mark = ledger.mark()
        tf_out = tf.run(TF_CODE, path=f"gs://{gcs_bucket}/tf-{i}.bin", ops=[list(o) for o in ops])
        tf_reqs = requests(mark, f"tf-{i}.bin")
        mark = ledger.mark()
        model_out = run_model_ops(GFileModel(model_fs, f"gs://{gcs_bucket}/model-{i}.bin"), ops)
        model_reqs = requests(mark, f"model-{i}.bin")
        assert model_out == tf_out, (i, model_out, tf_out)
        strip = [{k: v for k, v in r.items() if k != "object"} for r in model_reqs]
        assert strip == [{k: v for k, v in r.items() if k != "object"} for r in tf_reqs], i


def test_gfile_model_reads_like_a_file_and_buffers_512k():
    t = MemoryTransport()
    data = object_content("b/o", 1, SIZE)
    t.put("b", "o", data)
    fs = GcsFilesystemModel(
        t, {"block_size": MiB, "max_bytes": 0, "max_staleness": 0}, clock=VirtualClock()
    )
    g = GFileModel(fs, "gs://b/o")
    assert t.requests == []  # opening sends nothing
    assert g.read(10) == data[:10]
    g.seek(1_000_000)
    assert g.read(100) == data[1_000_000:1_000_100]
    assert g.tell() == 1_000_100
    g.seek(-100, 2)
    assert g.read() == data[-100:]
    assert g.read(5) == b""
    assert [r["kind"] for r in t.requests].count("metadata") == 1  # size() for whence=2
