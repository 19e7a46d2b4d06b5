"""Model vs real TensorFlow for what the trace format cannot express: glob (GetMatchingPaths)."""

from __future__ import annotations

import pytest

from emulator.model.clock import RealClock
from emulator.model.gcs_model import GcsFilesystemModel
from emulator.model.transport import GcsfsTransport

pytestmark = pytest.mark.tf

NAMES = ["d/a.rec", "d/b.rec", "d/e/c.rec", "d/e/f/g.rec", "x.rec", "dx.rec"]
PATTERNS = ["d/*.rec", "*", "d/*/*.rec", "d/e/?/g.rec", "d*", "d/[ab].rec", "nothing/*"]


def test_glob_matches_and_requests_equal_tf(gcs_emulator, gcs_bucket, tf_worker):
    for name in NAMES:
        gcs_emulator.backend.put_object(gcs_bucket, name, b"x")
    model = GcsFilesystemModel(GcsfsTransport(gcs_emulator.gcsfs()), clock=RealClock())
    ledger = gcs_emulator.ledger

    def requests_since(mark):
        ledger.wait_quiet(quiet_s=0.05, timeout=5)
        return [
            (r.kind, r.query.get("prefix", ""))
            for r in ledger.since(mark)
            if r.bucket == gcs_bucket and r.kind != "token"
        ]

    for pattern in PATTERNS:
        full = f"gs://{gcs_bucket}/{pattern}"
        mark = ledger.mark()
        tf_paths = tf_worker.run("result = sorted(tf.io.gfile.glob(p))", p=full)
        tf_requests = requests_since(mark)
        mark = ledger.mark()
        model_paths = model.get_matching_paths(full)
        model_requests = requests_since(mark)
        assert model_paths == tf_paths, pattern
        assert model_requests == tf_requests, pattern


# Issue 11, finding 8: FlushCaches empties the matching-paths (glob) cache too, as TF 2.21's does
# (tensorflow's gcs_file_system_test.cc: GetMatchingPaths_Cache_Flush).
FLUSH_ENV = {"GCS_MATCHING_PATHS_CACHE_MAX_AGE": "3600"}


@pytest.mark.timeout(300)
def test_flush_caches_clears_the_matching_paths_cache_like_tf(
    gcs_emulator, gcs_bucket, tf_worker_factory
):
    tf_worker = tf_worker_factory(FLUSH_ENV)
    backend, ledger = gcs_emulator.backend, gcs_emulator.ledger
    model = GcsFilesystemModel(
        GcsfsTransport(gcs_emulator.gcsfs(use_listings_cache=False)),
        matching_paths_cache_max_age=3600,
        clock=RealClock(),
    )
    pattern = f"gs://{gcs_bucket}/d/*.rec"

    def lists_during(call):
        mark = ledger.mark()
        paths = call()
        ledger.wait_quiet(quiet_s=0.05, timeout=5)
        lists = [r for r in ledger.since(mark) if r.bucket == gcs_bucket and r.kind == "list"]
        return paths, len(lists)

    def tf_glob():
        return tf_worker.run("result = sorted(tf.io.gfile.glob(p))", p=pattern)

    def tf_flush():
        code = "from gcs_hook import native_ops\nnative_ops.load().gcs_flush_caches()\nresult = 0"
        return tf_worker.run(code)

    def steps(glob, flush):
        """glob; add d/b.rec; glob (cached: b not seen); flush; glob -> (paths, list requests)."""
        backend.put_object(gcs_bucket, "d/a.rec", b"x")
        first = lists_during(glob)
        backend.put_object(gcs_bucket, "d/b.rec", b"y")
        cached = lists_during(glob)
        flushed = lists_during(lambda: (flush(), glob())[1])
        backend.delete_object(gcs_bucket, "d/b.rec")
        return [first, cached, flushed]

    a, b = f"gs://{gcs_bucket}/d/a.rec", f"gs://{gcs_bucket}/d/b.rec"
    tf_steps = steps(tf_glob, tf_flush)
    assert tf_steps == [([a], 1), ([a], 0), ([a, b], 1)]
    assert steps(lambda: model.get_matching_paths(pattern), model.flush_caches) == tf_steps
