"""Lanes and think time (issue 17 item 2): inferred from constructed concurrent ledgers, kept
by the trace format, and absent from old traces."""

from __future__ import annotations

import pytest

from benchmarks.record.ledger import ledger_to_trace
from emulator.fakegcs.ledger import RequestRecord
from emulator.replay.trace import TraceError, dump_trace, load_trace


def _rec(seq: int, t: float, end: float, obj: str, start: int, n: int = 100,
         first: float | None = None) -> RequestRecord:  # fmt: skip
    return RequestRecord(seq, t, seq, "storage.googleapis.com", "GET", "/", {},
                         (start, start + n - 1), 206, n, 0, "test-token", "media", "b", obj,
                         end, t_first=first if first is not None else t + 0.01)  # fmt: skip


def _lanes(trace: dict) -> list[tuple[str, int, float]]:
    return [(op["op"], op.get("lane", 0), op.get("think", 0.0)) for op in trace["ops"]
            if op["op"] in ("read", "stat")]  # fmt: skip


def test_two_parallel_readers_get_two_lanes_and_end_to_start_think() -> None:
    # reader A: [0, 1.0] then [1.2, 2.0]; reader B: [0.1, 0.9] then [1.5, 2.5]
    recs = [
        _rec(1, 0.0, 1.0, "a", 0),
        _rec(2, 0.1, 0.9, "b", 0),
        _rec(3, 1.2, 2.0, "a", 100),
        _rec(4, 1.5, 2.5, "b", 100),
    ]
    trace = ledger_to_trace(recs, {"b/a": 1000, "b/b": 1000}, timing_mode="upstream").trace
    got = _lanes(trace)
    assert [lane for _, lane, _ in got] == [0, 1, 0, 1]
    # think = arrival - end of the lane's previous response, never a start-to-start gap
    assert [round(th, 6) for _, _, th in got] == [0.0, 0.1, 0.2, 0.6]
    reads = [op for op in trace["ops"] if op["op"] == "read"]
    assert reads[0]["at"] == [0.0, 0.01, 1.0] and reads[3]["at"] == [1.5, 1.51, 2.5]
    assert trace["recorded"] == {"mode": "upstream", "lanes": 2}
    t = load_trace(trace)
    assert t.timing is not None and t.timing.n_lanes == 2 and t.timing.mode == "upstream"
    assert load_trace(dump_trace(t)).timing == t.timing  # round trip


def test_lane_count_is_the_peak_concurrency_and_lanes_are_reused() -> None:
    # four readers started together, then one after another: 4 lanes at most
    recs = [_rec(i + 1, 0.0, 1.0, f"o{i}", 0) for i in range(4)]
    recs += [_rec(5 + i, 1.0 + i, 1.5 + i, "o0", 100 * (i + 1)) for i in range(3)]
    trace = ledger_to_trace(recs, {f"b/o{i}": 1000 for i in range(4)}).trace
    got = _lanes(trace)
    assert sorted({lane for _, lane, _ in got}) == [0, 1, 2, 3]
    # sequential requests later reuse the lane freed most recently: one lane, think 0 / 0.5
    later = got[4:]
    assert len({lane for _, lane, _ in later}) == 1
    assert [round(th, 6) for _, _, th in later] == [0.0, 0.5, 0.5]


def test_sequential_reader_is_one_lane_and_sleeps_are_idle_gaps() -> None:
    recs = [_rec(1, 0.0, 0.5, "a", 0), _rec(2, 0.8, 1.0, "a", 100)]
    trace = ledger_to_trace(recs, {"b/a": 1000}).trace
    assert _lanes(trace) == [("read", 0, 0.0), ("read", 0, 0.3)]
    sleeps = [op["seconds"] for op in trace["ops"] if op["op"] == "sleep"]
    assert sleeps == [0.3]  # the same 0.3 s: the idle gap, not the 0.8 s start-to-start
    assert "recorded" not in trace  # no mode given


def test_old_traces_have_no_timing_and_bad_timing_is_refused() -> None:
    old = {"objects": {"b/a": 10}, "ops": [{"op": "open", "handle": "h", "object": "b/a"},
                                           {"op": "read", "handle": "h", "offset": 0, "n": 5}]}  # fmt: skip
    assert load_trace(old).timing is None
    assert "lane" not in dump_trace(load_trace(old))
    for bad, why in (
        ({"lane": -1}, "'lane'"),
        ({"think": float("nan")}, "'think'"),
        ({"at": [1.0, 0.5, 2.0]}, "arrive <= first_byte <= end"),
        ({"at": [1.0, 2.0]}, "'at' must be"),
    ):
        doc = {**old, "ops": [old["ops"][0], {**old["ops"][1], **bad}]}
        with pytest.raises(TraceError, match=why):
            load_trace(doc)
    with pytest.raises(TraceError, match="'recorded'"):
        load_trace({**old, "recorded": {"mode": "guess"}})
