"""How wrong the handle-inference rule of ``gcs-hook record`` can be (README, "Handles").

Each case is a trace with its true handles. Its recording is what the front would see with the
recording settings (one ranged GET per read: the model's requests with block size 0, which
equal TF's request for request, see tests/replay), turned into ledger records and back into a
trace by :func:`benchmarks.record.ledger.ledger_to_trace`. Both traces then run with TF's
defaults (cache off, 64 MiB read-ahead per handle) and the media requests are compared. With
the cache on the handles do not matter (checked too).
"""

from __future__ import annotations

import pytest

from benchmarks.record import RECORDING_CONFIG
from benchmarks.record.ledger import ledger_to_trace
from emulator.fakegcs.ledger import RequestRecord
from emulator.replay.simulation import simulate

MiB = 1024 * 1024
OBJ = "b/data"
SIZE = 8 * MiB


def _reads(handle: str, offsets: list[int], n: int = 4096) -> list[dict]:
    return [{"op": "read", "handle": handle, "offset": o, "n": n} for o in offsets]


def _open(h: str) -> dict:
    return {"op": "open", "handle": h, "object": OBJ}


def _close(h: str) -> dict:
    return {"op": "close", "handle": h}


CASES = {
    # (true ops, expected inferred - true media requests with the cache off)
    "epochs: reopen at 0": (
        [
            _open("a"),
            *_reads("a", [0, MiB, 2 * MiB]),
            _close("a"),
            _open("b"),
            *_reads("b", [0, MiB, 2 * MiB]),
            _close("b"),
        ],
        0,
    ),  # fmt: skip
    "reopen at an offset inside the old buffer (merged)": (
        [
            _open("a"),
            *_reads("a", [0, MiB]),
            _close("a"),
            _open("b"),
            *_reads("b", [2 * MiB, 3 * MiB]),
            _close("b"),
        ],
        -1,
    ),  # fmt: skip
    "one handle goes back to 0 (split)": (
        [_open("a"), *_reads("a", [0, MiB, 0, MiB])],
        +1,
    ),  # fmt: skip
    "two readers of one object, interleaved, not from 0": (
        [
            _open("a"),
            _open("b"),
            *_reads("a", [MiB]),
            *_reads("b", [5 * MiB]),
            *_reads("a", [2 * MiB]),
            *_reads("b", [6 * MiB]),
        ],
        -1,
    ),  # fmt: skip
}


def _records(trace: dict) -> list[RequestRecord]:
    sim = simulate(trace, RECORDING_CONFIG, buffer_size=0, record_requests=True)
    out = []
    for i, req in enumerate(sim.requests):
        bucket, _, obj = req["object"].partition("/")
        rng = tuple(req["range"]) if req["kind"] == "media" else None
        got = max(0, min(rng[1] + 1, SIZE) - rng[0]) if rng else 0
        out.append(RequestRecord(i + 1, i * 0.01, i, "storage.googleapis.com", "GET", "/", {},
                                 rng, 206, got, 0, "test-token", req["kind"], bucket, obj,
                                 i * 0.01 + 0.005))  # fmt: skip
    return out


def _media(trace: dict, config: dict) -> int:
    return simulate(trace, config).requests_by_kind["media"]


@pytest.mark.parametrize("case", list(CASES))
def test_handle_rule_error(case) -> None:
    ops, expected_error = CASES[case]
    truth = {"objects": {OBJ: SIZE}, "ops": ops}
    inferred = ledger_to_trace(_records(truth), {OBJ: SIZE}).trace
    off = {"block_size": 64 * MiB, "max_bytes": 0, "max_staleness": 0}
    error = _media(inferred, off) - _media(truth, off)
    assert error == expected_error, (case, _media(inferred, off), _media(truth, off))
    on = {"block_size": MiB, "max_bytes": 16 * MiB, "max_staleness": 0}
    assert (
        simulate(inferred, on, record_requests=True).requests
        == simulate(truth, on, record_requests=True).requests
    )
