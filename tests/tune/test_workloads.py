"""Workloads: valid TFRecords, recorded traces from real TF, synthesizers, replay in the model."""

from __future__ import annotations

import struct

import pytest

from benchmarks.record import RECORDING_CONFIG, RECORDING_ENV, record_workload
from benchmarks.sweep import CacheConfig, simulate_fast, simulate_model
from benchmarks.workloads import (
    RECORD_OVERHEAD,
    CheckpointRestore,
    InterleavedShards,
    RandomRecords,
    SequentialShards,
    SmallFiles,
    get_workload,
    tfrecord_bytes,
    workload_names,
)
from emulator.pytest_plugin import new_bucket_name

KiB = 1024

# small sizes: every workload below writes < 1.5 MB
SMALL = [
    SequentialShards(shards=2, records_per_shard=24, record_size=12_000),
    # a shard of exactly 2 × 256 KiB: the reader needs one more (empty) read at EOF
    SequentialShards(shards=1, records_per_shard=32, record_size=16 * KiB - RECORD_OVERHEAD),
    InterleavedShards(
        shards=5, records_per_shard=20, record_size=9_000, cycle_length=2, block_length=3
    ),
    RandomRecords(records=24, record_size=30_000),
    SmallFiles(files_count=6, file_size=3_000),
]


def test_tfrecord_framing_is_length_crc_payload_crc() -> None:
    data = tfrecord_bytes([b"abc", b""])
    assert len(data) == 2 * RECORD_OVERHEAD + 3
    (length,) = struct.unpack("<Q", data[:8])
    assert length == 3 and data[12:15] == b"abc"
    # a corrupted payload must be detected by TF (checked in the TF test below)


def test_registry_and_parameters() -> None:
    assert set(workload_names()) == {
        "tfrecord-epochs",
        "interleave",
        "random-records",
        "checkpoint-restore",
        "small-files",
        "tensorboard",
        "checkpoint-poller",
    }
    w = get_workload("tfrecord-epochs", shards=3, epochs=1)
    assert w.shards == 3 and len(w.objects()) == 3
    with pytest.raises(KeyError, match="unknown workload"):
        get_workload("nope")


@pytest.mark.parametrize("workload", SMALL, ids=lambda w: w.name)
def test_objects_sizes_match_files(workload) -> None:
    sizes = {name: len(data) for name, data in workload.files()}
    assert sizes == workload.objects()


def test_synthesized_sequential_reads_are_buffer_sized_in_order() -> None:
    w = SequentialShards(shards=1, records_per_shard=40, record_size=10_000, epochs=1)
    ops = [o for o in w.synthesize()["ops"] if o["op"] == "read"]
    assert [(o["offset"], o["n"]) for o in ops] == [(0, 256 * KiB), (256 * KiB, 256 * KiB)]


@pytest.fixture(scope="module")
def recording_worker(gcs_emulator, tf_worker_factory):
    return tf_worker_factory(dict(RECORDING_ENV))


@pytest.mark.tf
def test_tfrecord_files_are_read_by_tf(recording_worker) -> None:
    """Local files: the module's recording worker reads them (its GCS settings play no part)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for w in (SMALL[0], SMALL[2], SMALL[3]):
            name, data = next(iter(w.files()))
            path = os.path.join(d, name.replace("/", "_"))
            with open(path, "wb") as f:
                f.write(data)
            records = recording_worker.run(
                "result = [len(r.numpy()) for r in tf.data.TFRecordDataset(p)]", p=path
            )
            per_file = getattr(w, "records_per_shard", getattr(w, "records", None))
            assert records == [w.record_size] * per_file
        bad = bytearray(tfrecord_bytes([b"x" * 100]))
        bad[20] ^= 0xFF
        path = os.path.join(d, "bad.tfrecord")
        with open(path, "wb") as f:
            f.write(bytes(bad))
        err = recording_worker.run(
            "try:\n    list(tf.data.TFRecordDataset(p))\n    result = None\n"
            "except tf.errors.DataLossError as e:\n    result = 'DataLoss'\n",
            p=path,
        )
        assert err == "DataLoss"


@pytest.mark.tf
@pytest.mark.parametrize("workload", SMALL, ids=lambda w: f"{w.name}-{w.logical_bytes()}")
def test_recorded_trace_equals_synthesized_and_replays(
    workload, gcs_emulator, recording_worker
) -> None:
    w = workload.with_params(bucket=new_bucket_name("tune"))
    try:
        rec, w = record_workload(w, gcs_emulator, worker=recording_worker)
        # every epoch read all its data through TF
        assert len(rec.epoch_results) == w.epochs
        assert rec.epoch_results[0] == rec.epoch_results[-1]
        assert rec.trace["config"] == RECORDING_CONFIG

        # one GET per RandomAccessFile::Read: the synthesizer (TF's reader logic) predicts the
        # ledger request for request
        def key(ops):
            return [
                (o["op"], o.get("object"), o.get("offset"), o.get("n"))
                for o in ops
                if o["op"] in ("read", "stat")
            ]

        synth = w.synthesize()
        handle_obj = {o["handle"]: o["object"] for o in synth["ops"] if o["op"] == "open"}
        rec_handle_obj = {o["handle"]: o["object"] for o in rec.trace["ops"] if o["op"] == "open"}

        def with_obj(ops, hmap):
            return [
                (o["op"], o.get("object") or hmap.get(o.get("handle")), o.get("offset"), o.get("n"))
                for o in ops
                if o["op"] in ("read", "stat")
            ]

        assert with_obj(rec.trace["ops"], rec_handle_obj) == with_obj(synth["ops"], handle_obj)
        assert key(rec.trace["ops"])  # non-empty
        # the recorded trace replays in the model with the same requests as the recording
        cfg = CacheConfig(**RECORDING_CONFIG)
        _, model_reqs = simulate_model(rec.trace, cfg, keep_requests=True, buffer_size=0)
        assert model_reqs == rec.requests
        _, fast_reqs = simulate_fast(rec.trace, cfg, keep_requests=True, buffer_size=0)
        assert fast_reqs == rec.requests
    finally:
        gcs_emulator.backend.delete_bucket(w.bucket)


@pytest.mark.tf
def test_checkpoint_restore_is_recorded_and_replays(gcs_emulator, recording_worker) -> None:
    w = CheckpointRestore(variables=4, floats_per_variable=50_000, bucket=new_bucket_name("ck"))
    try:
        rec, w = record_workload(w, gcs_emulator, worker=recording_worker)
        data = [n for n in w.objects() if ".data-" in n]
        assert len(data) == 1 and w.objects()[data[0]] >= 4 * 50_000 * 4
        reads = [o for o in rec.trace["ops"] if o["op"] == "read"]
        assert reads and sum(o["n"] for o in reads) >= 4 * 50_000 * 4
        _, model_reqs = simulate_model(
            rec.trace, CacheConfig(0, 0, 0), keep_requests=True, buffer_size=0
        )
        assert model_reqs == rec.requests
    finally:
        gcs_emulator.backend.delete_bucket(w.bucket)


@pytest.mark.tf
def test_block_size_zero_makes_every_read_exactly_one_get(
    gcs_emulator, gcs_bucket, recording_worker
) -> None:
    """The recording trick: with GCS_READ_CACHE_BLOCK_SIZE_MB=0 each RandomAccessFile::Read
    (offset, n > 0) is one GET of exactly bytes=offset-(offset+n-1); n = 0 sends nothing."""
    gcs_emulator.backend.put_object(gcs_bucket, "o.bin", bytes(range(256)) * 12)  # 3072 B
    reads = [(0, 100), (50, 10), (1000, 5000), (2990, 100), (5000, 10), (7, 0), (0, 100)]
    mark = gcs_emulator.ledger.mark()
    got = recording_worker.run(
        "from gcs_hook import native_ops\n"
        "ops = native_ops.load()\n"
        "ops.gcs_random_access_open(handle='rec-h', path=path)\n"
        "result = []\n"
        "for off, n in reads:\n"
        "    data, code, msg = ops.gcs_random_access_read(handle='rec-h', offset=off, n=n)\n"
        "    result.append([len(data.numpy()), code.numpy().decode()])\n"
        "ops.gcs_random_access_close(handle='rec-h')\n",
        path=f"gs://{gcs_bucket}/o.bin",
        reads=reads,
    )
    gcs_emulator.ledger.wait_quiet(0.05, 5.0)
    recs = [r for r in gcs_emulator.ledger.since(mark) if r.bucket == gcs_bucket]
    assert [(r.kind, r.range) for r in recs] == [
        ("media", (off, off + n - 1)) for off, n in reads if n > 0
    ]
    assert [g[0] for g in got] == [100, 10, 2072, 82, 0, 0, 100]


@pytest.mark.tf
def test_measured_runs_send_the_predicted_requests(gcs_emulator) -> None:
    """Measured runs (real TF, configure op, shaped front): TF's requests per configuration are
    the ones the model predicts, in the order given also when cache off comes after a cache
    (tune measures its recommendation first); shaping is restored and the copy buckets are
    removed."""
    from benchmarks.sweep.timing import GcsTiming
    from benchmarks.tune.measure import measure_configs

    w = SequentialShards(
        shards=2, records_per_shard=3, record_size=200_000, epochs=2,
        bucket=new_bucket_name("ms"),
    )  # fmt: skip
    configs = [CacheConfig(256 * KiB, 1024 * KiB, 0), CacheConfig(0, 0, 0)]
    before = gcs_emulator.front.shaping
    try:
        ms = measure_configs(w, configs, gcs_emulator, GcsTiming(0.001, 1e9, 0.0))
    finally:
        buckets = set(gcs_emulator.backend.list_buckets())
        gcs_emulator.backend.delete_bucket(w.bucket)
    assert [m.measured_requests for m in ms] == [m.predicted_requests for m in ms]
    assert [m.config for m in ms] == configs
    assert ms[1].predicted_requests == 4  # cache off: one 64 MiB-buffer GET per shard per epoch
    assert ms[0].predicted_requests > ms[1].predicted_requests
    assert all(m.measured_s > 0 and m.baseline_s > 0 for m in ms)
    assert gcs_emulator.front.shaping is before
    assert not [b for b in buckets if b.startswith(w.bucket + "-c")]
