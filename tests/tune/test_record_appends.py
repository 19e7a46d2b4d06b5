"""The recorder tells an append from a rewrite by the versions the fake GCS holds.

Another writer uploads three versions of a log through the front (anonymously, as the live
workloads' trainers do): the second keeps the first's bytes as its prefix, the third does not
(same length growth, other bytes). The trace marks exactly the second as an append.
"""

from __future__ import annotations

import uuid

from benchmarks.record.ledger import (
    appends_in,
    completed_uploads,
    ledger_to_trace,
    load_ledger_jsonl,
    mark_appends,
)
from benchmarks.record.versions import append_flags, keep_versions
from benchmarks.record.writer import write_ledger
from benchmarks.workloads.live import upload_as_other_writer
from emulator.replay.trace import load_trace


def test_appends_and_rewrites_told_apart_from_the_fakes_versions(gcs_emulator, tmp_path) -> None:
    bucket = f"ap-{uuid.uuid4().hex[:12]}"
    backend = gcs_emulator.backend
    backend.create_bucket(bucket)
    try:
        keep_versions(backend, [bucket])
        v1 = b"event-0|" * 1000
        backend.put_object(bucket, "run/events", v1)  # the object at the start (seeded)
        mark = gcs_emulator.ledger.mark()
        v2 = v1 + b"event-1|" * 500
        v3 = v2[:-1] + b"X" + b"event-2|" * 10  # one old byte changed: a rewrite
        v4 = v3 + b"tail"
        for data in (v2, v3, v4):
            upload_as_other_writer(gcs_emulator.url, bucket, "run/events", data)
        gcs_emulator.ledger.wait_quiet(quiet_s=0.05, timeout=30.0)
        records = [r for r in gcs_emulator.ledger.since(mark) if r.bucket == bucket]
        flags = append_flags(backend, completed_uploads(records))
        assert flags == {f"{bucket}/run/events": [True, False, True]}
        trace = ledger_to_trace(records, {f"{bucket}/run/events": len(v1)}, appends=flags).trace
        overwrites = [op for op in trace["ops"] if op["op"] == "overwrite"]
        assert [op.get("append", False) for op in overwrites] == [True, False, True]
        assert [op["size"] for op in overwrites] == [len(v2), len(v3), len(v4)]
        load_trace(trace)  # a valid trace: every append grows an existing object
        # without the fake's versions nothing can be told: every upload is a rewrite
        assert "append" not in str(ledger_to_trace(records, None).trace["ops"])
        # a ledger written by record keeps the flags (--from-ledger), redacted or not
        path = tmp_path / "ledger.jsonl"
        write_ledger(path, mark_appends(records, flags))
        again = ledger_to_trace(load_ledger_jsonl(path), {f"{bucket}/run/events": len(v1)})
        overwrites = [op for op in again.trace["ops"] if op["op"] == "overwrite"]
        assert [op.get("append", False) for op in overwrites] == [True, False, True]
        write_ledger(path, mark_appends(records, flags), redact_key=b"k" * 32)
        assert list(appends_in(load_ledger_jsonl(path)).values()) == [[True, False, True]]
    finally:
        backend.delete_bucket(bucket)
