"""gcsfs ops in a trace: kept apart from TF's ops, validated completely, round-tripped."""

from __future__ import annotations

import pytest

from emulator.replay.trace import TraceError, load_trace

OPEN = {"op": "open", "handle": "g1", "object": "b/a.bin", "client": "gcsfs", "size": 1000}


def _trace(*ops: dict) -> dict:
    return {"objects": {"b/a.bin": 1000}, "ops": list(ops)}


def test_gcsfs_ops_are_kept_apart_and_round_trip():
    doc = _trace(
        {"op": "open", "handle": "h1", "object": "b/a.bin"},
        OPEN,
        {"op": "read", "handle": "g1", "offset": 10, "n": 5},
        {"op": "read", "handle": "h1", "offset": 0, "n": 5},
        {"op": "close", "handle": "g1"},
        {"op": "close", "handle": "h1"},
    )
    t = load_trace(doc)
    assert [op.op for op in t.ops] == ["open", "read", "close"]
    assert [(c.index, c.op["op"]) for c in t.client_ops] == [(1, "open"), (2, "read"), (4, "close")]
    assert t.to_dict(with_clients=True)["ops"] == doc["ops"]
    assert t.to_dict()["ops"] == [doc["ops"][i] for i in (0, 3, 5)]  # what TF's engines walk


@pytest.mark.parametrize(
    ("ops", "needle"),
    [
        ([{**OPEN, "client": "boto"}], "unknown client"),
        ([{**OPEN, "size": -1}], "'size' must be an integer >= 0"),
        ([{**OPEN, "info": "maybe"}], "'info' must be one of"),
        ([{**OPEN, "extra": 1}], "unknown keys"),
        (
            [OPEN, {"op": "read", "handle": "g1", "offset": 0, "n": 0}],
            "'n' must be an integer >= 1",
        ),
        ([OPEN, {"op": "read", "handle": "g1", "offset": -3, "n": 1}], "'offset' must be"),
        ([OPEN, {"op": "tail", "handle": "g1", "chunk": 5}], "only reads/closes"),
        ([OPEN, OPEN], "already open"),
    ],
)
def test_bad_gcsfs_ops_are_refused(ops, needle):
    with pytest.raises(TraceError, match=needle):
        load_trace(_trace(*ops))
