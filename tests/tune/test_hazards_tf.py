"""Hazards counted by the model equal what real TensorFlow returned: a checkpoint overwritten
under a reader (stale, torn), shrunk (INTERNAL), and rewritten by the reader itself (fresh).

The trace runs in real TF through the front (replay's TF engine) and in the model; each real
read's bytes are matched against every version of the object to classify it.
"""

from __future__ import annotations

import hashlib

import pytest

from emulator.replay.replay import TfReplayer, compare, run_model
from emulator.replay.simulation import simulate
from emulator.replay.trace import object_content

MiB = 1024 * 1024
CKPT = "ck/model.ckpt-data"


@pytest.fixture(scope="module")
def replayer(gcs_emulator):
    """One replayer for the module: its traces share one import-time env group, so one TF
    process runs them all (each trace in buckets of its own; isolation of traces inside one
    TF process is checked by tests/replay/test_replay_compare.py)."""
    pytest.importorskip("tensorflow")
    with TfReplayer(gcs_emulator) as r:
        yield r


def _trace() -> dict:
    def rd(offset: int, n: int) -> dict:
        return {"op": "read", "handle": "h", "offset": offset, "n": n}

    return {
        "config": {"block_size": MiB, "max_bytes": 2 * MiB, "max_staleness": 0},
        "objects": {CKPT: 3 * MiB},
        "ops": [
            {"op": "open", "handle": "h", "object": CKPT},
            rd(0, 1000),  # the index: block 0 cached (version 1)
            {"op": "overwrite", "object": CKPT, "size": 3 * MiB},  # the trainer saves again
            rd(0, 2 * MiB),  # stat still fresh: old block 0 + new block 1 → torn
            rd(2 * MiB, 1000),  # block 2 fetched from version 2 (block 0 evicted): fresh
            {"op": "sleep", "seconds": 6},  # past the 5 s stat cache
            rd(MiB, 2 * MiB),  # new generation seen: blocks dropped and refetched, fresh
            {"op": "overwrite", "object": CKPT, "size": 3 * MiB // 2},  # shrinks
            rd(0, 2 * MiB),  # stale stat says 3 MiB; block 1 comes back short → INTERNAL
            rd(2 * MiB, 1000),  # whatever block 2 the cache still holds
            {"op": "write", "object": CKPT, "size": 2 * MiB},  # the reader's own save
            rd(0, 2 * MiB),  # its caches were cleared: fresh
            {"op": "close", "handle": "h"},
        ],
    }


def _classify(trace: dict, reads: list[dict], name: str = CKPT) -> dict[str, int]:
    """stale/torn/errors of real reads, from their SHA-256 against every version."""
    sizes = {1: trace["objects"][name]}
    versions_at_read = []
    version = 1
    for op in trace["ops"]:
        if op["op"] in ("overwrite", "write"):
            version += 1
            sizes[version] = op["size"]
        elif op["op"] == "read":
            versions_at_read.append((op, version))
    content = {v: object_content(name, v, s) for v, s in sizes.items()}
    out = {"stale_reads": 0, "torn_reads": 0, "errors": 0}
    for (op, current), got in zip(versions_at_read, reads, strict=True):
        if got["error"] not in (None, "OUT_OF_RANGE"):
            out["errors"] += 1
        n = got["returned"]
        if n == 0:
            continue
        lo = op["offset"]

        def sha(v: int, a: int, b: int) -> str:
            return hashlib.sha256(content[v][a:b]).hexdigest()

        whole = [v for v in content if sha(v, lo, lo + n) == got["sha256"]]
        if current in whole:
            continue
        if whole:
            out["stale_reads"] += 1
            continue
        # a mix: some prefix from one version, the rest from another (cut at a block edge)
        cuts = range(lo - lo % MiB + MiB, lo + n, MiB)
        mixed = any(
            hashlib.sha256(content[a][lo:c] + content[b][c : lo + n]).hexdigest() == got["sha256"]
            for c in cuts
            for a in content
            for b in content
            if a != b
        )
        assert mixed, f"read {op} matches no version and no mix"
        out["torn_reads"] += 1
        out["stale_reads"] += 1
    return out


@pytest.mark.tf
def test_model_hazards_equal_what_tf_returned(replayer) -> None:
    trace = _trace()
    tf = replayer.run(trace)
    model = run_model(trace)
    assert compare(tf, model) is None  # same requests (uploads of the write too), same bytes
    real = _classify(trace, tf["reads"])
    sim = simulate(trace, count_hazards=True).extra["hazards"]
    predicted = {"stale_reads": sim.stale_reads, "torn_reads": sim.torn_reads,
                 "errors": sim.errors}  # fmt: skip
    assert predicted == real
    assert real["torn_reads"] == 1 and real["stale_reads"] >= 1, real
    assert sim.errors_by_code == {"INTERNAL": 1}


@pytest.mark.tf
def test_tail_follows_a_growing_file_as_in_tf(replayer) -> None:
    """``tail`` ops in replay's TF engine and in the model: same requests, same bytes, while a
    writer appends (cache on: the stale stat hides the new data until it expires)."""
    log = "tl/events.log"
    ops = [{"op": "open", "handle": "t", "object": log},
           {"op": "tail", "handle": "t", "chunk": 300_000}]  # fmt: skip
    for size in (700_000, 1_500_000):
        ops += [{"op": "overwrite", "object": log, "size": size},
                {"op": "tail", "handle": "t", "chunk": 300_000},
                {"op": "sleep", "seconds": 6},
                {"op": "tail", "handle": "t", "chunk": 300_000}]  # fmt: skip
    ops.append({"op": "close", "handle": "t"})
    trace = {
        "config": {"block_size": 256 * 1024, "max_bytes": 4 * MiB, "max_staleness": 0},
        "objects": {log: 200_000},
        "ops": ops,
    }
    tf = replayer.run(trace)
    model = run_model(trace)
    assert compare(tf, model) is None
    assert sum(r["returned"] for r in tf["reads"]) >= 1_500_000  # it got to the end


@pytest.mark.tf
def test_own_remove_clears_the_readers_caches_as_in_tf(replayer) -> None:
    """The program deletes an object it has cached (``remove``) and writes it again: TF drops
    its cached blocks and stat entry, so the re-read is fresh; the model agrees request for
    request. Another writer's ``delete`` + ``overwrite`` instead leaves the stale blocks."""
    obj = "rm/ckpt"

    def ops(kind_delete: str, kind_write: str) -> list[dict]:
        return [
            {"op": "open", "handle": "h", "object": obj},
            {"op": "read", "handle": "h", "offset": 0, "n": 2 * MiB},
            {"op": kind_delete, "object": obj},
            {"op": kind_write, "object": obj, "size": 2 * MiB},
            {"op": "read", "handle": "h", "offset": 0, "n": 2 * MiB},
            {"op": "close", "handle": "h"},
        ]

    config = {"block_size": MiB, "max_bytes": 8 * MiB, "max_staleness": 0}
    for kinds, stale in ((("remove", "write"), 0), (("delete", "overwrite"), 1)):
        trace = {"config": config, "objects": {obj: 2 * MiB}, "ops": ops(*kinds)}
        tf = replayer.run(trace)
        assert compare(tf, run_model(trace)) is None
        assert simulate(trace, count_hazards=True).extra["hazards"].stale_reads == stale
        assert _classify(trace, tf["reads"], obj)["stale_reads"] == stale
