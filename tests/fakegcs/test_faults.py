"""Injected failures at the front (emulator.fakegcs.faults), with Python clients and real TensorFlow."""

from __future__ import annotations

import http.client
import os

import pytest

from emulator.fakegcs.faults import Fault, FaultPlan


def test_fault_plan_matching_and_consumption():
    plan = FaultPlan()
    plan.add(Fault(503, kind="media", object="a", times=2))
    plan.add(Fault(404, method="delete"))
    assert plan.take("metadata", "b", "a", "GET") is None
    assert plan.take("media", "b", "other", "GET") is None
    assert plan.take("media", "b", "a", "GET").status == 503
    assert plan.take("media", "b", "a", "GET").status == 503
    assert plan.take("media", "b", "a", "GET") is None  # spent
    assert plan.take("delete", "b", "x", "DELETE").status == 404
    assert plan.take("token", None, None, "POST") is None
    assert len(plan) == 0 and plan.injected == 3
    plan.add(Fault(500))
    plan.clear()
    assert plan.pending() == []


@pytest.mark.parametrize("kw", [{"status": 200}, {"status": 600}, {"status": 503, "times": 0}])
def test_fault_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Fault(**kw)


def test_front_answers_injected_fault(gcs_emulator, gcs_bucket, gcs_ledger):
    gcs_emulator.backend.put_object(gcs_bucket, "o", b"data")
    gcs_emulator.front.faults.add(Fault(500, kind="metadata", bucket=gcs_bucket))
    conn = http.client.HTTPConnection("127.0.0.1", gcs_emulator.front.port, timeout=10)
    try:
        path = f"/storage/v1/b/{gcs_bucket}/o/o"
        conn.request("GET", path)
        r1 = conn.getresponse()
        r1.read()
        conn.request("GET", path)
        r2 = conn.getresponse()
        r2.read()
    finally:
        conn.close()
        gcs_emulator.front.faults.clear()
    assert (r1.status, r2.status) == (500, 200)
    recs = gcs_ledger.records(bucket=gcs_bucket, kind="metadata")
    assert [(r.status, r.extra.get("injected", False)) for r in recs] == [(500, True), (200, False)]


@pytest.mark.tf
def test_tf_retries_503_but_not_404(gcs_emulator, gcs_bucket, gcs_ledger, tf_worker_factory):
    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", b"z" * 3000)
    gcs_emulator.backend.put_object(gcs_bucket, "b.bin", b"y" * 3000)
    worker = tf_worker_factory({"GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "0"})
    faults = gcs_emulator.front.faults
    try:
        faults.add(Fault(503, kind="media", bucket=gcs_bucket, object="a.bin", times=2))
        faults.add(Fault(404, kind="media", bucket=gcs_bucket, object="b.bin"))
        mark = gcs_ledger.mark()
        got = worker.run(
            """
a = tf.io.gfile.GFile(f"gs://{bucket}/a.bin", "rb").read()
try:
    tf.io.gfile.GFile(f"gs://{bucket}/b.bin", "rb").read()
    b = "no error"
except tf.errors.NotFoundError:
    b = "NotFoundError"
result = [a, b]
""",
            bucket=gcs_bucket,
        )
    finally:
        faults.clear()
    assert got == [b"z" * 3000, "NotFoundError"]
    a_media = gcs_ledger.since(mark, bucket=gcs_bucket, object="a.bin", kind="media")
    assert [r.status for r in a_media] == [503, 503, 206]
    b_media = gcs_ledger.since(mark, bucket=gcs_bucket, object="b.bin", kind="media")
    assert [r.status for r in b_media] == [404]


@pytest.mark.tf
@pytest.mark.parametrize("action", ["truncate", "reset", "stall"])
def test_tf_survives_network_faults_byte_exact(
    gcs_emulator, gcs_bucket, gcs_ledger, tf_worker_factory, action
):
    """Real TF 2.21: a body cut below its Content-Length (FIN or RST) is retried; a stall is
    waited out. Either way the bytes are right and the ledger shows the cut request."""
    blob = os.urandom(3_000_000)
    gcs_emulator.backend.put_object(gcs_bucket, "n.bin", blob)
    worker = tf_worker_factory(
        {"GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "0", "GCS_READ_CACHE_BLOCK_SIZE_MB": "1"}
    )
    faults = gcs_emulator.front.faults
    try:
        faults.add(Fault(action=action, kind="media", bucket=gcs_bucket, object="n.bin",
                         stall_s=0.3))  # fmt: skip
        mark = gcs_ledger.mark()
        got = worker.run(
            "f = tf.io.gfile.GFile(p, 'rb'); f.seek(100); result = f.read(200_000)",
            p=f"gs://{gcs_bucket}/n.bin",
        )
    finally:
        faults.clear()
    assert got == blob[100:200_100]
    media = gcs_ledger.since(mark, bucket=gcs_bucket, object="n.bin", kind="media")
    assert media[0].extra["fault"] == action
    if action == "stall":
        assert [r.status for r in media] == [206] and not media[0].extra.get("aborted")
    else:
        assert media[0].extra["aborted"] and media[0].bytes_out == (1 << 20) // 2
        assert [(r.status, r.bytes_out) for r in media[1:]] == [(206, 1 << 20)]
