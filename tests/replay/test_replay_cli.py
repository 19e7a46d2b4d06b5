"""``gcs-hook replay``: the model engine, bad input (one line, exit 2, nothing run), and one
end-to-end ``--compare`` through the installed console script (real TF in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from _support import TRACE_DIR
from typer.testing import CliRunner

from emulator.replay.replay import object_content
from gcs_hook.cli import replay_cmd

TRACES = TRACE_DIR
runner = CliRunner()


def _app() -> typer.Typer:
    """A fresh app with only ``replay`` registered (a callback keeps it a command group, as in
    the real ``gcs-hook`` app with all its subcommands)."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    replay_cmd.register(app)
    return app


def _invoke(*args: str):
    return runner.invoke(_app(), ["replay", *args])


def _error_line(result) -> str:
    text = result.stderr if result.stderr else result.output
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("gcs-hook: error: ")
    return lines[0]


def test_model_engine_json_is_the_result_format():
    result = _invoke(str(TRACES / "t02_read_spans_blocks.json"), "--engine", "model", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"engine", "requests", "reads"}
    assert out["engine"] == "model"
    assert out["requests"] == [
        {"kind": "metadata", "object": "bkt/a.bin"},
        {"kind": "media", "object": "bkt/a.bin", "range": [0, 1048575]},
        {"kind": "media", "object": "bkt/a.bin", "range": [1048576, 2097151]},
    ]
    data = object_content("bkt/a.bin", 1, 3000000)[1048000:1050000]
    assert out["reads"][0] == {
        "handle": "h",
        "offset": 1048000,
        "n": 2000,
        "returned": 2000,
        "sha256": hashlib.sha256(data).hexdigest(),
        "error": None,
    }
    assert out["reads"][1] == out["reads"][0]  # second read served from the cache


def test_model_engine_text_output_lists_requests_and_reads():
    result = _invoke(str(TRACES / "t03_eof_inside_last_block.json"))  # default engine: model
    assert result.exit_code == 0, result.output
    assert "engine model: 2 requests, 2 reads" in result.stdout
    assert "media bkt/a.bin bytes=2097152-3145727" in result.stdout
    assert "1000 B OUT_OF_RANGE" in result.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--engine", "gpu", "T"], "--engine must be one of tf, model"),
        (["--engine", "tf", "--compare", "T"], "either --engine or --compare"),
        (["/nonexistent/trace.json"], "trace file not found"),
        (["--transport", "ftp", "T"], "--transport must be one of memory, gcsfs"),
        (["--engine", "tf", "--transport", "gcsfs", "T"], "model engine only"),
        ([], "give trace files"),
        (["--random", "0"], "between 1 and 10000"),
        (["--random", "2", "T"], "either trace files or --random"),
        (["--timed", "T"], "go with --random"),
        (["--random", "2", "--seed", "-1"], "--seed must be >= 0"),
        (["--random", "2", "--faults", "--transport", "gcsfs"], "memory transport"),
        (["--transport", "gcsfs", "F"], "needs the memory transport"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle):
    fault_case = str(TRACES / "faults" / "f01_media_503_retried.json")
    args = [
        str(TRACES / "t01_basic_two_blocks.json") if a == "T" else fault_case if a == "F" else a
        for a in args
    ]
    result = _invoke(*args)
    assert result.exit_code == 2
    assert needle in _error_line(result)


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"objects": {}, "ops": [{"op": "read", "handle": "h", "n": 1}]}), "ops[0]"),
        (json.dumps({"objects": {"nobucket": 5}, "ops": []}), "objects"),
        (json.dumps({"ops": [], "surprise": 1}), "surprise"),
    ],
)
def test_invalid_trace_exits_2_with_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = _invoke(str(path), "--engine", "model")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "invalid trace" in line and needle in line


@pytest.mark.parametrize(
    "content, needle",
    [
        (b'\xff\xfe{"ops": []}', "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"ops": [' + b"[" * 200_000 + b"]" * 200_000 + b"]}", "nested too deeply"),
        (b'[{"ops": []}]', "a trace must be a JSON object, not an array"),
        (b"7", "a trace must be a JSON object, not a number"),
        (b'{"trace": [], "faults": []}', "'trace' must be a JSON object, not an array"),
        (
            b'{"ops": [{"op": "open", "object": "b/o", "handle": '
            + b"[" * 900
            + b"]" * 900
            + b"}]}",
            "'handle' must be a non-empty string",
        ),
    ],
    ids=[
        "invalid-utf8",
        "200k-deep-array",
        "200k-deep-inside",
        "top-level-array",
        "number",
        "fault-case-array",
        "long-value",
    ],
)
def test_unusable_trace_files_exit_2_with_one_short_line(tmp_path, content, needle):
    """Issue 11 finding 6: no traceback, one line, exit 2, whatever the file holds."""
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = _invoke(str(path), "--engine", "model")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "invalid trace" in line and needle in line
    assert len(line) < 500


def _sized_trace(*, size=1000, n=10, block=65536, overwrite=None) -> dict:
    ops = [{"op": "open", "handle": "h", "object": "b/o"}]
    if overwrite is not None:
        ops.append({"op": "overwrite", "object": "b/o", "size": overwrite})
    ops.append({"op": "read", "handle": "h", "offset": 0, "n": n})
    config = {"block_size": block, "max_bytes": 4 * block, "max_staleness": 0}
    return {"config": config, "objects": {"b/o": size}, "ops": ops}


@pytest.mark.parametrize(
    "trace, needle",
    [
        (_sized_trace(n=10**12), "ops[1] (read): n = 1000000000000 is more than"),
        (_sized_trace(block=10**12), "config: block_size 1000000000000 is more than"),
        (_sized_trace(size=10**30), "objects['b/o']: 1000000000000000000000000000000 bytes"),
        (_sized_trace(overwrite=6 << 40), "ops[1] (overwrite): 6597069766656 bytes is more"),
    ],
    ids=["read-n", "block-size", "object-size", "overwrite-size"],
)
def test_byte_counts_the_engines_cannot_move_exit_2_at_once(tmp_path, trace, needle):
    """Issue 11 finding 4: bounded instead of computing terabytes (or a MemoryError)."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps(trace))
    result = _invoke(str(path), "--engine", "model")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "invalid trace" in line and needle in line


@pytest.mark.tf
@pytest.mark.slow
def test_compare_end_to_end_through_the_console_script(tmp_path):
    """``gcs-hook replay --compare DIR`` starts its own fake GCS + front and TF subprocesses
    (here two: the traces need different import-time settings)."""
    exe = shutil.which("gcs-hook")
    cmd = [exe] if exe else [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
    for stem in ("t05_lru_one_file", "t17_overwrite_between_opens_signature"):
        shutil.copy(TRACES / f"{stem}.json", tmp_path)
    env = dict(os.environ, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false")
    proc = subprocess.run(
        [*cmd, "replay", "--compare", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    docs = json.loads(proc.stdout)
    assert [Path(d["trace"]).stem for d in docs] == [
        "t05_lru_one_file",
        "t17_overwrite_between_opens_signature",
    ]
    for doc in docs:
        assert doc["equal"] is True and doc["difference"] is None
        assert doc["tf"]["requests"] == doc["model"]["requests"]
        assert doc["tf"]["reads"] == doc["model"]["reads"]
    assert len(docs[0]["tf"]["requests"]) == 9  # stat + 8 block GETs (LRU, not FIFO)
    # stat cache off: every read stats; the overwrite between opens is seen (new bytes)
    kinds = [r["kind"] for r in docs[1]["tf"]["requests"]]
    assert kinds.count("metadata") == 5
    assert docs[1]["tf"]["reads"][2]["sha256"] != docs[1]["tf"]["reads"][0]["sha256"]


def test_several_traces_and_directories(tmp_path):
    for stem in ("t01_basic_two_blocks", "t03_eof_inside_last_block"):
        shutil.copy(TRACES / f"{stem}.json", tmp_path)
    result = _invoke(str(tmp_path), str(TRACES / "t02_read_spans_blocks.json"), "--json")
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    assert [Path(d["trace"]).stem for d in docs] == [
        "t01_basic_two_blocks",
        "t03_eof_inside_last_block",
        "t02_read_spans_blocks",
    ]
    assert all(d["engine"] == "model" for d in docs)
    assert docs[1]["reads"][0]["error"] == "OUT_OF_RANGE"


def test_one_bad_trace_among_several_runs_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"objects": {}, "ops": [{"op": "close", "handle": "x"}]}))
    result = _invoke(str(TRACES / "t01_basic_two_blocks.json"), str(bad))
    assert result.exit_code == 2
    assert "bad.json" in _error_line(result)
    assert "engine model" not in result.stdout


def test_empty_directory_is_bad_input(tmp_path):
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "no *.json traces" in _error_line(result)


def test_tf_engine_that_cannot_start_fails_with_one_line():
    """An unreachable external fake GCS: exit 2, one line naming the engine and the cause."""
    trace = str(TRACES / "t01_basic_two_blocks.json")
    result = _invoke(trace, "--engine", "tf", "--backend", "http://127.0.0.1:9")
    assert result.exit_code == 2
    line = _error_line(result)
    assert "tf engine failed" in line and "127.0.0.1:9" in line


def test_model_engine_over_gcsfs_reports_what_the_front_saw():
    """--transport gcsfs: the CLI starts a fake GCS + front, the model reads through gcsfs."""
    trace = str(TRACES / "t13_eviction_max_not_multiple.json")
    over_gcsfs = _invoke(trace, "--transport", "gcsfs", "--json")
    in_memory = _invoke(trace, "--json")
    assert over_gcsfs.exit_code == 0, over_gcsfs.output
    assert json.loads(over_gcsfs.stdout) == json.loads(in_memory.stdout)
    assert len(json.loads(over_gcsfs.stdout)["requests"]) == 7


def test_random_traces_are_reproducible_by_seed():
    first = json.loads(_invoke("--random", "3", "--seed", "40", "--faults", "--json").stdout)
    again = json.loads(_invoke("--random", "2", "--seed", "41", "--faults", "--json").stdout)
    assert [d["trace"] for d in first] == [
        "random_trace(40, faults)",
        "random_trace(41, faults)",
        "random_trace(42, faults)",
    ]
    assert first[1:] == again  # same seed, same trace, same model result
    assert all(d["engine"] == "model" and d["requests"] for d in first)
