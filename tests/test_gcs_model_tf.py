"""Model vs real TensorFlow for what the trace format cannot express: glob (GetMatchingPaths)."""

from __future__ import annotations

import pytest

from emulator.clock import RealClock
from emulator.gcs_model import GcsFilesystemModel
from emulator.transport import GcsfsTransport

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
