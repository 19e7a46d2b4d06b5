"""Hook ordering, verified: hook events merged with the front's ledger in real training runs.

A ``MonitoredTrainingSession`` whose ``checkpoint_dir`` and input files live on gs:// (the
fake) shows which GCS requests happen before the hook configures anything (the checkpoint
restore during session creation) and that every input read afterwards uses the configured
block size and the configured credentials' bearer token. ``configure_in_begin=True`` moves the
configuration before session creation, so the restore is covered too. A Keras ``fit`` with
``ConfigureGcsCallback`` configures at ``on_train_begin``, before any input byte is read.
"""

from __future__ import annotations

import json

import pytest
from _support import WORKER_PREAMBLE, data

from emulator.fakegcs.oauth import make_test_credentials
from gcs_hook.timeline import Event, Timeline, merge, requests_between

RECORD = 64
FILE_BYTES = 200_000 - (200_000 % RECORD)
BLOCK = 64 * 1024

TIMELINE_PREAMBLE = (
    WORKER_PREAMBLE
    + "\nfrom gcs_hook.timeline import Timeline, TimelineHook, make_timeline_callback\n"
)

SETUP_CHECKPOINT = """
with tf.Graph().as_default():
    step = tf.compat.v1.train.get_or_create_global_step()
    inc = tf.compat.v1.assign_add(step, 1)
    with tf.compat.v1.train.MonitoredTrainingSession(
        checkpoint_dir=ckpt, save_checkpoint_steps=1, save_summaries_steps=None,
        save_summaries_secs=None, log_step_count_steps=None,
    ) as s:
        for _ in range(3):
            s.run(inc)
result = sorted(tf.io.gfile.listdir(ckpt))
"""

TRAIN = """
creds = json.loads(creds_json)
timeline = Timeline()
with tf.Graph().as_default():
    step = tf.compat.v1.train.get_or_create_global_step()
    ds = tf.data.FixedLengthRecordDataset(files, record_bytes=record).batch(64)
    batch = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
    train = tf.group(tf.compat.v1.assign_add(step, 1), tf.reduce_sum(tf.strings.length(batch)))
    hooks = [
        TimelineHook(timeline, "session_hook"),
        gcs_hook.ConfigureGcsHook(credentials=creds, block_cache=BlockCacheParams(block, 16 * block),
                                  configure_in_begin=in_begin, timeline=timeline),
    ]
    with tf.compat.v1.train.MonitoredTrainingSession(
        checkpoint_dir=ckpt, hooks=hooks, save_checkpoint_steps=None, save_checkpoint_secs=None,
        save_summaries_steps=None, save_summaries_secs=None, log_step_count_steps=None,
    ) as s:
        restored = s.run(step)
        while not s.should_stop():
            s.run(train)
result = dict(events=timeline.to_json(), restored=int(restored))
"""


def _setup(gcs_emulator, bucket, worker):
    for i in range(2):
        gcs_emulator.backend.put_object(bucket, f"in/part-{i}.bin", data(FILE_BYTES, f"in{i}"))
    ckpt = f"gs://{bucket}/ckpt"
    listing = worker.run(SETUP_CHECKPOINT, ckpt=ckpt)
    assert "checkpoint" in listing
    return ckpt, [f"gs://{bucket}/in/part-{i}.bin" for i in range(2)]


def _is_block_aligned(rec, block: int) -> bool:
    start, end = rec.range
    return start % block == 0 and end - start + 1 == block


def test_merge_orders_events_before_requests_at_equal_times():
    class R:
        def __init__(self, t):
            self.t = t

    ev = Event(1, 2.0, "h", "begin")
    rows = merge([ev, Event(2, 5.0, "h", "end")], [R(1.0), R(2.0), R(9.0)])
    assert [(r.kind, r.t) for r in rows] == [
        ("request", 1.0),
        ("event", 2.0),
        ("request", 2.0),
        ("event", 5.0),
        ("request", 9.0),
    ]
    assert [r.t for r in requests_between([R(1.0), R(2.0), R(3.0)], 2.0, 3.0)] == [2.0]
    tl = Timeline()
    tl.record("a", "x", step=1)
    tl.record("b", "x")
    again = Timeline.from_json(json.loads(json.dumps(tl.to_json())))
    assert [(e.seq, e.name, e.detail) for e in again.events] == [
        (1, "a", {"step": 1}),
        (2, "b", {}),
    ]
    assert again.events[0].t <= again.events[1].t


@pytest.mark.tf
@pytest.mark.parametrize(
    "in_begin", [False, True], ids=["after_create_session", "configure_in_begin"]
)
def test_monitored_training_session_on_gcs(
    in_begin, tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger
):
    issuer = gcs_emulator.token_issuer
    creds = make_test_credentials("authorized_user")
    principal = issuer.register(creds)
    # The process starts with environment credentials (principal "test-token") and TF defaults.
    worker = tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": f"timeline-{in_begin}"}, preamble=TIMELINE_PREAMBLE
    )
    ckpt, files = _setup(gcs_emulator, gcs_bucket, worker)

    mark = gcs_ledger.mark()
    got = worker.run(
        TRAIN,
        creds_json=json.dumps(creds),
        files=files,
        record=RECORD,
        block=BLOCK,
        ckpt=ckpt,
        in_begin=in_begin,
    )
    gcs_ledger.wait_quiet(quiet_s=0.1, timeout=5)
    assert got["restored"] == 3  # the checkpoint on gs:// was restored
    timeline = Timeline.from_json(got["events"])
    records = gcs_ledger.since(mark, bucket=gcs_bucket)
    begin = timeline.first("begin", "session_hook")
    created = timeline.first("after_create_session", "session_hook")
    start = timeline.first("configure_start", "configure_gcs_hook")
    done = timeline.first("configure_done", "configure_gcs_hook")
    assert begin and created and start and done
    rows = merge(timeline.events, records)
    report = "\n".join(r.describe() for r in rows)

    ckpt_reads = [r for r in records if r.object and r.object.startswith("ckpt/")]
    inputs = [r for r in records if r.kind == "media" and r.object and r.object.startswith("in/")]
    assert ckpt_reads, report
    assert {r.object for r in inputs} == {"in/part-0.bin", "in/part-1.bin"}, report

    if in_begin:
        # Configured in begin(), before the session (and its restore) exists.
        assert begin.t < start.t < done.t < created.t, report
        assert all(r.t > done.t for r in records), report
        assert {r.principal for r in records} == {principal}, report
        assert all(_is_block_aligned(r, BLOCK) for r in records if r.kind == "media"), report
    else:
        # r1.12 behaviour: the restore happens during session creation, BEFORE configuration,
        # with the environment's credentials and TF's default (uncached, 64 MiB buffer) reads.
        assert begin.t < created.t < start.t < done.t, report
        before = requests_between(records, begin.t, start.t)
        assert before and all(
            (r.object or r.query.get("prefix", "")).startswith("ckpt/") for r in before
        ), report
        assert {r.principal for r in before} == {"test-token"}, report
        assert not any(_is_block_aligned(r, BLOCK) for r in before if r.kind == "media"), report
        assert requests_between(records, start.t, done.t) == [] or all(
            r.kind == "token" for r in requests_between(records, start.t, done.t)
        ), report
    # In both modes every input read comes after configuration, block-aligned, with the bearer.
    assert all(r.t > done.t for r in inputs), report
    assert all(_is_block_aligned(r, BLOCK) for r in inputs), report
    assert {r.principal for r in inputs} == {principal}, report
    assert issuer.count(principal) == 1


KERAS_FIT = """
creds = json.loads(creds_json)
timeline = Timeline()
def parse(rec):
    x = tf.reshape(tf.io.decode_raw(rec, tf.float32), [record // 4])
    return tf.math.tanh(x), tf.zeros([1])
ds = tf.data.FixedLengthRecordDataset(files, record_bytes=record).map(parse).batch(256)
model = tf.keras.Sequential([tf.keras.Input(shape=(record // 4,)), tf.keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
callbacks = [
    gcs_hook.ConfigureGcsCallback(credentials=creds, block_cache=BlockCacheParams(block, 16 * block),
                                  timeline=timeline),
    make_timeline_callback(timeline, "keras"),
]
model.fit(ds, epochs=1, callbacks=callbacks, verbose=0)
result = dict(events=timeline.to_json(), params=current_block_cache())
"""


@pytest.mark.tf
def test_keras_callback_configures_before_the_first_batch(
    tf_worker_factory, gcs_emulator, gcs_bucket, gcs_ledger
):
    issuer = gcs_emulator.token_issuer
    creds = make_test_credentials("service_account")
    principal = issuer.register(creds)
    for i in range(2):
        gcs_emulator.backend.put_object(gcs_bucket, f"in/part-{i}.bin", data(FILE_BYTES, f"k{i}"))
    files = [f"gs://{gcs_bucket}/in/part-{i}.bin" for i in range(2)]
    gcs_emulator.front.require_auth = True  # nothing could be read before the callback ran
    worker = tf_worker_factory(
        {"GCS_HOOK_TEST_MODULE": "timeline-keras"}, test_token=None, preamble=TIMELINE_PREAMBLE
    )
    mark = gcs_ledger.mark()
    got = worker.run(
        KERAS_FIT, creds_json=json.dumps(creds), files=files, record=RECORD, block=BLOCK
    )
    gcs_ledger.wait_quiet(quiet_s=0.1, timeout=5)
    assert got["params"] == [BLOCK, 16 * BLOCK, 0]
    timeline = Timeline.from_json(got["events"])
    records = gcs_ledger.since(mark, bucket=gcs_bucket)
    report = "\n".join(r.describe() for r in merge(timeline.events, records))
    done = timeline.first("configure_done", "configure_gcs_callback")
    first_batch = timeline.first("on_train_batch_begin", "keras")
    train_begin = timeline.first("on_train_begin", "keras")
    assert done and first_batch and train_begin, report
    assert done.detail == {"at": "on_train_begin"}
    assert done.t < train_begin.t < first_batch.t, report
    inputs = [r for r in records if r.kind == "media"]
    assert {r.object for r in inputs} == {"in/part-0.bin", "in/part-1.bin"}, report
    assert all(r.t > done.t for r in records), report
    assert all(r.status < 300 and r.principal == principal for r in records), report
    assert all(_is_block_aligned(r, BLOCK) for r in inputs), report
