"""Ledger timing fields (issue 17 item 1): arrival, first response byte and end of every
request, and the client connection, through the real front and fake-gcs-server."""

from __future__ import annotations

import http.client
import json

from emulator.fakegcs.ledger import RequestRecord
from emulator.fakegcs.shaping import Shaping


def _get(conn: http.client.HTTPConnection, path: str, rng: str | None = None) -> bytes:
    conn.request("GET", path, headers={"Range": rng} if rng else {})
    resp = conn.getresponse()
    return resp.read()


def test_records_carry_arrival_first_byte_end_and_connection(gcs_emulator, gcs_bucket) -> None:
    front = gcs_emulator.front
    gcs_emulator.backend.put_object(gcs_bucket, "t.bin", b"x" * 200_000)
    mark = gcs_emulator.ledger.mark()
    a = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
    b = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
    front.shaping = Shaping(first_byte_latency_s=0.04, bandwidth_bytes_per_s=2e6)
    try:
        assert len(_get(a, f"/{gcs_bucket}/t.bin", "bytes=0-99999")) == 100_000
        assert len(_get(a, f"/{gcs_bucket}/t.bin", "bytes=0-9")) == 10
        assert len(_get(b, f"/{gcs_bucket}/t.bin", "bytes=0-9")) == 10
    finally:
        front.shaping = None
        a.close()
        b.close()
    recs = gcs_emulator.ledger.since(mark, kind="media")
    assert len(recs) == 3
    for r in recs:
        assert r.t <= r.t_first <= r.t_end
        assert r.t_first - r.t >= 0.04  # the shaped first-byte delay falls before t_first
        assert r.t_up_first is None and r.t_up_end is None  # not a pass-through record
        assert RequestRecord.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert recs[0].t_end - recs[0].t_first >= 100_000 / 2e6  # the paced body lies after it
    assert recs[0].conn_id == recs[1].conn_id != recs[2].conn_id  # keep-alive vs a new one


def test_old_ledger_lines_without_timing_fields_still_load(tmp_path) -> None:
    from benchmarks.record.ledger import load_ledger_jsonl

    old = {"seq": 1, "t": 5.0, "conn_id": 1, "host": "storage.googleapis.com", "method": "GET",
           "path": "/b/o", "query": {}, "range": [0, 9], "status": 206, "bytes_out": 10,
           "bytes_in": 0, "principal": "p", "kind": "media", "bucket": "b", "object": "o",
           "t_end": 5.1}  # fmt: skip
    (tmp_path / "l.jsonl").write_text(json.dumps(old) + "\n")
    [rec] = load_ledger_jsonl(tmp_path / "l.jsonl")
    assert (rec.t, rec.t_end, rec.t_first, rec.t_up_first) == (5.0, 5.1, 0.0, None)
