"""The block-cache side of the hook, against real TF 2.21 through the front (issue #3)."""

from __future__ import annotations

import pytest
from _support import WORKER_PREAMBLE, MiB, aligned_blocks, data, media_ranges, sha

pytestmark = pytest.mark.tf

SIZE = 3_000_000
DEFAULTS = [64 * MiB, 0, 0]


@pytest.fixture(scope="module")
def worker(tf_worker_factory):
    """A TF process of its own (nothing configured before this module)."""
    return tf_worker_factory({"GCS_HOOK_TEST_MODULE": "block_cache"}, preamble=WORKER_PREAMBLE)


def test_defaults_one_get_then_configured_1mib_range_gets(
    worker, gcs_emulator, gcs_bucket, gcs_ledger
):
    a, b = data(SIZE, "a"), data(SIZE, "b")
    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", a)
    gcs_emulator.backend.put_object(gcs_bucket, "b.bin", b)
    assert worker.run("result = current_block_cache()") == DEFAULTS

    mark = gcs_ledger.mark()
    got = worker.run("result = gfile_sha(p)", p=f"gs://{gcs_bucket}/a.bin")
    assert got == sha(a)
    # TF 2.21 defaults: cache off, one 64 MiB read-ahead GET for the whole 3 MB object.
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == [(0, 64 * MiB - 1)]

    got = worker.run(
        "gcs_hook.configure_gcs(block_cache=BlockCacheParams(block_size=MiB, max_bytes=4 * MiB))\n"
        "result = current_block_cache()",
        MiB=MiB,
    )
    assert got == [MiB, 4 * MiB, 0]
    mark = gcs_ledger.mark()
    assert worker.run("result = gfile_sha(p)", p=f"gs://{gcs_bucket}/b.bin") == sha(b)
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == aligned_blocks(SIZE, MiB)


def test_reconfigure_mid_process_takes_effect(worker, gcs_emulator, gcs_bucket, gcs_ledger):
    blob = data(SIZE, "c")
    gcs_emulator.backend.put_object(gcs_bucket, "c.bin", blob)
    path = f"gs://{gcs_bucket}/c.bin"
    worker.run("gcs_hook.configure_gcs(block_cache=BlockCacheParams(MiB, 4 * MiB))", MiB=MiB)
    mark = gcs_ledger.mark()
    got = worker.run("result = read_at(p, [(0, 100), (1_500_000, 10)])", p=path)
    assert got == [[100, "OK", sha(blob[:100])], [10, "OK", sha(blob[1_500_000:1_500_010])]]
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == [(0, MiB - 1), (MiB, 2 * MiB - 1)]

    k256 = 256 * 1024
    mark = gcs_ledger.mark()
    got = worker.run(
        "gcs_hook.configure_gcs(block_cache=BlockCacheParams(k, 4 * k, 0))\n"
        "result = [current_block_cache(), read_at(p, [(0, 100), (600_000, 10)])]",
        k=k256,
        p=path,
    )
    assert got[0] == [k256, 4 * k256, 0]
    assert got[1] == [[100, "OK", sha(blob[:100])], [10, "OK", sha(blob[600_000:600_010])]]
    # The new cache starts empty (block 0 is fetched again) and fetches 256 KiB blocks.
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == [(0, k256 - 1), (2 * k256, 3 * k256 - 1)]


def test_identical_params_skip_and_keep_cached_blocks(worker, gcs_emulator, gcs_bucket, gcs_ledger):
    blob = data(SIZE, "d")
    gcs_emulator.backend.put_object(gcs_bucket, "d.bin", blob)
    path = f"gs://{gcs_bucket}/d.bin"
    params = "BlockCacheParams(MiB, 4 * MiB, 0)"
    worker.run(f"gcs_hook.configure_gcs(block_cache={params})", MiB=MiB)
    mark = gcs_ledger.mark()
    worker.run("result = read_at(p, [(0, 100)])", p=path)
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == [(0, MiB - 1)]

    # Same three values: TF keeps the cache, so the block is served without a request.
    mark = gcs_ledger.mark()
    got = worker.run(
        f"gcs_hook.configure_gcs(block_cache={params})\nresult = read_at(p, [(0, 100)])",
        MiB=MiB,
        p=path,
    )
    assert got == [[100, "OK", sha(blob[:100])]]
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == []

    # Any difference (here only max_staleness) resets the cache: the block is fetched again.
    mark = gcs_ledger.mark()
    worker.run(
        "gcs_hook.configure_gcs(block_cache=BlockCacheParams(MiB, 4 * MiB, 3600))\n"
        "result = read_at(p, [(0, 100)])",
        MiB=MiB,
        p=path,
    )
    assert media_ranges(gcs_ledger, mark, gcs_bucket) == [(0, MiB - 1)]
    assert worker.run("result = current_block_cache()") == [MiB, 4 * MiB, 3600]


def test_graph_mode_session_device_and_hook(worker, gcs_emulator, gcs_bucket, gcs_ledger):
    """tf.compat.v1: configure_gcs(session, device=...), repeated calls reuse the ops, the hook
    works in a MonitoredSession, and a device that does not exist fails without changes."""
    got = worker.run(
        """
g = tf.Graph()
with g.as_default():
    sess = tf.compat.v1.Session(graph=g)
    gcs_hook.configure_gcs(sess, block_cache=BlockCacheParams(2 * MiB, 8 * MiB), device="/device:CPU:0")
    devices = sorted({op.device for op in g.get_operations() if op.type.startswith("GcsConfigure")})
    first = current_block_cache(sess)
    n_ops = len(g.get_operations())
    gcs_hook.configure_gcs(sess, block_cache=BlockCacheParams(3 * MiB, 9 * MiB), device="/device:CPU:0")
    second = current_block_cache(sess)
    grew = len(g.get_operations()) - n_ops
    try:
        gcs_hook.configure_gcs(sess, block_cache=BlockCacheParams(5 * MiB), device="/job:nowhere/task:0")
        bad = None
    except tf.errors.OpError as e:
        bad = type(e).__name__
    after_bad = current_block_cache()  # eager read-back: the session graph now has unplaceable nodes
    sess.close()

with tf.Graph().as_default():
    step = tf.compat.v1.train.get_or_create_global_step()
    inc = tf.compat.v1.assign_add(step, 1)
    hook = gcs_hook.ConfigureGcsHook(block_cache=BlockCacheParams(4 * MiB, 16 * MiB, 2))
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as s:
        s.run(inc)
        in_session = current_block_cache()
result = dict(first=first, second=second, grew=grew, devices=devices, bad=bad,
              after_bad=after_bad, in_session=in_session)
""",
        MiB=MiB,
    )
    assert got["first"] == [2 * MiB, 8 * MiB, 0]
    assert got["second"] == [3 * MiB, 9 * MiB, 0]
    assert got["grew"] == 0
    assert got["devices"] == ["/device:CPU:0"]
    assert got["bad"] == "InvalidArgumentError"
    assert got["after_bad"] == [3 * MiB, 9 * MiB, 0]
    assert got["in_session"] == [4 * MiB, 16 * MiB, 2]


def test_tf1_graph_program_without_session(tf_worker_factory):
    """A program that disabled eager execution: configure_gcs without a session and the hook's
    configure_in_begin mode run the ops in a private session; the caller's graph is untouched."""
    worker = tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": "tf1-graph"},
        preamble="tf.compat.v1.disable_eager_execution()\n" + WORKER_PREAMBLE,
    )
    got = worker.run(
        """
assert not tf.executing_eagerly()
try:
    gcs_hook.configure_gcs(block_cache=BlockCacheParams(3 * MiB), device="/job:nowhere/task:0")
    bad = None
except tf.errors.OpError as e:
    bad = type(e).__name__
gcs_hook.configure_gcs(block_cache=BlockCacheParams(MiB, 2 * MiB, 1))  # a bad device poisons nothing
first = current_block_cache()
with tf.Graph().as_default() as g:
    step = tf.compat.v1.train.get_or_create_global_step()
    inc = tf.compat.v1.assign_add(step, 1)
    n_before = len(g.get_operations())
    hook = gcs_hook.ConfigureGcsHook(block_cache=BlockCacheParams(2 * MiB, 6 * MiB), configure_in_begin=True)
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as s:
        s.run(inc)
    gcs_ops = [op.name for op in g.get_operations() if op.type.startswith("Gcs")]
result = dict(bad=bad, first=first, second=current_block_cache(), gcs_ops=gcs_ops)
""",
        MiB=MiB,
    )
    assert got["bad"] == "InvalidArgumentError"
    assert got["first"] == [MiB, 2 * MiB, 1]
    assert got["second"] == [2 * MiB, 6 * MiB, 0]
    assert got["gcs_ops"] == []
