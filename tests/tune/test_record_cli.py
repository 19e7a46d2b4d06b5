"""``gcs-hook record -- CMD`` on a program of our own (tests/tune/programs/live_job.py: two
interleaved readers, a writer appending in the same process, another process overwriting),
then ``tune --configs ... --json`` on the trace against real runs of the same program.

Real TF, real fake-gcs-server, real TLS front. Cache off and four cache-on configs: predicted
media requests and bytes equal the ledger's exactly (the handle-inference rule is exact on this
program: 0 requests off), and the stale read the program saw is the one the model counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from emulator.replay.trace import digest_chain

MiB = 1024 * 1024
KiB = 1024
PROGRAM = Path(__file__).parent / "programs" / "live_job.py"
FILES = {"a.rec": digest_chain("a", 3 * MiB + 100 * KiB), "b.rec": digest_chain("b", 5 * MiB // 2)}
# (block MiB, max MiB) → TF's env; None = TF's default (cache off, 64 MiB read-ahead)
CONFIGS = [None, (1, 8), (2, 8), (8, 32), (4, 64)]
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    pytest.importorskip("tensorflow")
    tmp = tmp_path_factory.mktemp("rec")
    (tmp / "data" / "livejob").mkdir(parents=True)
    for name, data in FILES.items():
        (tmp / "data" / "livejob" / name).write_bytes(data)
    out, ledger = tmp / "t.json", tmp / "ledger.jsonl"
    res = _cli("record", "--data", str(tmp / "data"), "--out", str(out), "--ledger", str(ledger),
               "--", sys.executable, str(PROGRAM), "livejob", timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return {"dir": tmp, "trace": json.loads(out.read_text()), "path": out, "ledger": ledger,
            "stdout": res.stdout, "stderr": res.stderr}  # fmt: skip


def _real_run(emulator, config) -> dict:
    bucket = f"lj-{uuid.uuid4().hex[:12]}"
    emulator.backend.create_bucket(bucket)
    try:
        for name, data in FILES.items():
            emulator.backend.put_object(bucket, name, data)
        env = {**os.environ, **emulator.tf_env()}
        if config is not None:
            env.update(GCS_READ_CACHE_BLOCK_SIZE_MB=str(config[0]),
                       GCS_READ_CACHE_MAX_SIZE_MB=str(config[1]))  # fmt: skip
        mark = emulator.ledger.mark()
        proc = subprocess.run([sys.executable, str(PROGRAM), bucket], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        # the program got every answer before it exited; another run may keep the ledger busy
        emulator.ledger.wait_quiet(timeout=2.0)
        recs = [r for r in emulator.ledger.since(mark)
                if r.bucket == bucket and r.principal == "test-token"]  # fmt: skip
        media = [r for r in recs if r.kind == "media"]
        return {
            "requests": len(media),
            "bytes": sum(r.bytes_out for r in media),
            "metadata": sum(r.kind == "metadata" for r in recs),
            "shas": json.loads(proc.stdout.strip().splitlines()[-1]),
        }
    finally:
        emulator.backend.delete_bucket(bucket)


@pytest.mark.tf
def test_record_writes_the_trace_and_exits_with_the_programs_code(recorded) -> None:
    trace = recorded["trace"]
    kinds = {op["op"] for op in trace["ops"]}
    assert {"open", "read", "close", "stat", "write", "overwrite", "sleep"} <= kinds
    assert trace["objects"] == {f"livejob/{n}": len(d) for n, d in FILES.items()}
    writes = [op for op in trace["ops"] if op["op"] == "write"]
    # three flushes of log.txt (+ the close, which uploads again) and the append to a.rec
    assert [w["object"] for w in writes][-1] == "livejob/a.rec"
    assert writes[-1]["size"] == len(FILES["a.rec"]) + 4000
    assert writes[-1].get("append") is True  # the fake kept both versions: old bytes kept
    (over,) = [op for op in trace["ops"] if op["op"] == "overwrite"]
    assert over["object"] == "livejob/b.rec"
    assert "append" not in over  # another process rewrote it
    # the program's stdout is its own (the trace goes to --out, the summary to stderr)
    assert len(json.loads(recorded["stdout"].strip())) == 6
    fail = _cli("record", "--out", str(recorded["dir"] / "x.json"), "--", sys.executable, "-c",
                "import sys; sys.exit(3)", timeout=120)  # fmt: skip
    assert fail.returncode == 3
    assert json.loads((recorded["dir"] / "x.json").read_text())["ops"] == []


@pytest.mark.tf
def test_from_ledger_gives_the_same_trace(recorded) -> None:
    out = recorded["dir"] / "from-ledger.json"
    res = _cli("record", "--from-ledger", str(recorded["ledger"]), "--data",
               str(recorded["dir"] / "data"), "--out", str(out), timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["ops"] == recorded["trace"]["ops"]
    # without --data the start sizes are inferred from the reads (they reached EOF here)
    res = _cli("record", "--from-ledger", str(recorded["ledger"]), "--out", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["objects"] == recorded["trace"]["objects"]


@pytest.mark.tf
def test_tune_predicts_the_real_runs(recorded, gcs_emulator) -> None:
    spec = ",".join("off" if c is None else f"{c[0]}MiB/{c[1]}MiB/0" for c in CONFIGS)
    # the prediction (no TF) and the real runs (each in its own bucket, two at a time: most of
    # a run is TF's import and the program's 6 s sleep) run side by side
    tune = subprocess.Popen(
        [*CLI, "tune", "-w", str(recorded["path"]), "--configs", spec, "--json",
         "--out", str(recorded["dir"] / "tune")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            reals = list(pool.map(lambda c: _real_run(gcs_emulator, c), CONFIGS))
        stdout, stderr = tune.communicate(timeout=300)
    finally:
        tune.kill()
        tune.wait()
    assert tune.returncode == 0, stderr[-3000:]
    predicted = json.loads(stdout)  # stdout is only JSON
    assert "model engine" in stderr  # write/overwrite ops: the fast engine does not cover
    rows = []
    for config, pred, real in zip(CONFIGS, predicted, reals, strict=True):
        rows.append((config, pred["requests"], real["requests"], pred["bytes_fetched"],
                     real["bytes"], pred["stale_reads"], real["shas"]))  # fmt: skip
        assert (pred["requests"], pred["bytes_fetched"]) == (real["requests"], real["bytes"])
        assert pred["metadata_requests"] == real["metadata"]
        # b.rec read right after the other process overwrote it: stale iff the model says so
        stale_seen = real["shas"][4] != real["shas"][5]
        assert stale_seen == (pred["stale_reads"] > 0), rows[-1]
        assert pred["torn_reads"] == 0 and pred["errors"] == 0
    print("\nconfig, predicted/real media requests, predicted/real bytes:")
    for row in rows:
        print(row[:5])
    # the recommendation never reads stale data without --allow-stale
    (best,) = [p for p in predicted if p["recommended"]]
    assert best["stale_reads"] == best["torn_reads"] == best["errors"] == 0
