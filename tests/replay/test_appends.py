"""Appends in the trace format, the model and real TF; hazards as the program sees them.

- ``"append": true`` on ``overwrite``/``write``: the new version keeps the old bytes as its
  prefix, byte for byte, in the model (memory store) and in the objects the TF engine uploads.
- A read served from an old version is stale only where its bytes differ from the current
  version's (an append's kept prefix is the same bytes); a file is torn when one pass over it
  returns bytes of more than one version, even if no single read does.
"""

from __future__ import annotations

import pytest

from emulator.replay.objects import TraceObject, common_prefix, content_range
from emulator.replay.replay import TfReplayer, compare, run_model
from emulator.replay.simulation import simulate
from emulator.replay.trace import TraceError, dump_trace, load_trace, object_content

MiB = 1024 * 1024
LOG = "ap/events.log"


def _tail_trace(append: bool, rounds: int = 3, config: dict | None = None) -> dict:
    ops: list[dict] = [{"op": "open", "handle": "t", "object": LOG},
                       {"op": "tail", "handle": "t", "chunk": 16 * MiB}]  # fmt: skip
    size = 200_000
    for _ in range(rounds):
        size += 300_000
        ops += [{"op": "overwrite", "object": LOG, "size": size, "append": append},
                {"op": "sleep", "seconds": 6},
                {"op": "tail", "handle": "t", "chunk": 16 * MiB}]  # fmt: skip
    ops.append({"op": "close", "handle": "t"})
    return {"config": config, "objects": {LOG: 200_000}, "ops": ops}


def test_append_flag_round_trips_and_is_checked() -> None:
    trace = load_trace(_tail_trace(True))
    assert [op.append for op in trace.ops if op.op == "overwrite"] == [True] * 3
    assert load_trace(dump_trace(trace)) == trace
    assert "append" not in dump_trace(load_trace(_tail_trace(False)))  # written only where set
    bad = {"objects": {LOG: 10}, "ops": [{"op": "overwrite", "object": LOG, "size": 5,
                                          "append": True}]}  # fmt: skip
    with pytest.raises(TraceError, match="cannot shrink"):
        load_trace(bad)
    bad["ops"][0].update(object="ap/missing", size=50)
    with pytest.raises(TraceError, match="does not exist"):
        load_trace(bad)
    bad["ops"][0].update(object=LOG, append="yes")
    with pytest.raises(TraceError, match="true or false"):
        load_trace(bad)


def test_an_append_keeps_the_old_prefix_byte_for_byte() -> None:
    v1 = TraceObject(LOG, 1, 100)
    v2 = v1.appended(2, 250)
    v3 = v2.appended(3, 300)
    assert v3.read(0, 100) == object_content(LOG, 1, 100)
    assert v3.read(100, 150) == content_range(LOG, 2, 250, 100, 150)
    assert v3.read(250, 50) == content_range(LOG, 3, 300, 250, 50)
    assert v3.read(90, 200) == v3.read(0, 300)[90:290]
    assert common_prefix(v1, v3) == 100 and common_prefix(v2, v3) == 250
    assert common_prefix(TraceObject(LOG, 4, 300), v3) == 0  # a rewrite shares nothing
    # the model engine's store serves the chain
    trace = {"objects": {LOG: 100}, "ops": [
        {"op": "overwrite", "object": LOG, "size": 250, "append": True},
        {"op": "write", "object": LOG, "size": 300, "append": True},
        {"op": "open", "handle": "h", "object": LOG},
        {"op": "read", "handle": "h", "offset": 0, "n": 300}]}  # fmt: skip
    import hashlib

    (read,) = run_model(load_trace(trace).to_dict())["reads"]
    assert read["sha256"] == hashlib.sha256(v3.read(0, 300)).hexdigest()


def test_cache_off_end_of_file_probe_of_an_append_is_not_stale() -> None:
    """TensorBoard's 1-byte probe at the old end comes from the previous version's read-ahead
    buffer: the same byte the appended version holds. A rewrite of the same sizes is stale."""
    appended = simulate(_tail_trace(True), count_hazards=True).extra["hazards"]
    rewritten = simulate(_tail_trace(False), count_hazards=True).extra["hazards"]
    assert (appended.stale_reads, appended.stale_files, appended.torn_files) == (0, 0, 0)
    assert rewritten.stale_reads == 3 and rewritten.stale_files == 1
    assert not appended.assumes_data_not_seen


def test_tail_lag_inside_the_stat_cache_window() -> None:
    """Reloads 2 s after each append with 8 MiB blocks: the stat entry still says the old size,
    so the follower falls behind; past the 5 s window it catches up."""
    cfg = {"block_size": 8 * MiB, "max_bytes": 16 * MiB, "max_staleness": 0}
    trace = _tail_trace(True, config=cfg)
    for op in trace["ops"]:
        if op["op"] == "sleep":
            op["seconds"] = 2
    lagging = simulate(trace, count_hazards=True).extra["hazards"]
    assert lagging.tails_behind >= 1 and lagging.tail_lag >= 1
    assert lagging.stale_reads == 0  # what it got is current, just not all of it
    caught_up = simulate(_tail_trace(True, config=cfg), count_hazards=True).extra["hazards"]
    assert caught_up.tails_behind == 0 and caught_up.tail_lag == 0


def test_torn_per_file_when_no_single_read_spans_two_versions() -> None:
    """Block 0 read (and cached) from version 1, then the trainer saves, then blocks 1-2 read
    in separate calls from version 2 while the stat entry is fresh: each read holds one
    version's bytes, the pass over the file holds two."""
    ck = "ap/ckpt.data"
    ops = [{"op": "open", "handle": "h", "object": ck},
           {"op": "read", "handle": "h", "offset": 0, "n": 1000},
           {"op": "overwrite", "object": ck, "size": 3 * MiB},
           {"op": "read", "handle": "h", "offset": MiB, "n": MiB},
           {"op": "read", "handle": "h", "offset": 2 * MiB, "n": MiB},
           {"op": "close", "handle": "h"}]  # fmt: skip
    trace = {"config": {"block_size": MiB, "max_bytes": 16 * MiB, "max_staleness": 0},
             "objects": {ck: 3 * MiB}, "ops": ops}  # fmt: skip
    hz = simulate(trace, count_hazards=True).extra["hazards"]
    assert (hz.torn_reads, hz.torn_files, hz.stale_reads) == (0, 1, 0)
    # a stat between the two parts ends the pass: two passes, each of one version
    ops.insert(3, {"op": "stat", "object": ck})
    hz = simulate(trace, count_hazards=True).extra["hazards"]
    assert hz.torn_files == 0 and hz.stale_stats == 1


@pytest.mark.tf
def test_appends_replay_identically_in_real_tf(gcs_emulator) -> None:
    """Real TF reads the appended objects the TF engine uploads (another writer's appends and
    the program's own): the same bytes and requests as the model."""
    pytest.importorskip("tensorflow")
    trace = _tail_trace(True, rounds=2, config={"block_size": 256 * 1024,
                                               "max_bytes": 4 * MiB, "max_staleness": 0})  # fmt: skip
    for op in trace["ops"]:
        if op["op"] == "sleep":
            op["seconds"] = 1
    trace["ops"][-1:-1] = [
        {"op": "write", "object": LOG, "size": 900_000, "append": True},
        {"op": "read", "handle": "t", "offset": 0, "n": 900_000},
    ]
    with TfReplayer(gcs_emulator) as replayer:
        tf = replayer.run(trace)
    model = run_model(load_trace(trace).to_dict())
    assert compare(tf, model) is None
    import hashlib

    full = TraceObject(LOG, 1, 200_000).appended(2, 500_000).appended(3, 800_000)
    want = hashlib.sha256(full.appended(4, 900_000).read(0, 900_000)).hexdigest()
    assert tf["reads"][-1]["sha256"] == want
