"""Traces and ledgers ``gcs-hook record`` writes are safe to share (issue 19 item 1): no
environment assignment, no absolute path, names hashed in ``--ledger`` too under
``--redact-names``, query values off the allow-list dropped, files replaced atomically and
never written through a symlink. Real CLI processes, real fake GCS, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _support import cli_in_process, one_error_line

from benchmarks.record.sharing import program_name, trace_comment
from emulator.atomic_files import write_atomic

PROGRAM = Path(__file__).parent / "programs" / "plain_reader.py"
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
OBJECT = "sharebkt/home/me/private.txt"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)  # fmt: skip


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    path = root / OBJECT
    path.parent.mkdir(parents=True)
    path.write_bytes(b"0123456789abcdef")
    return root


def _record(tmp_path: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli("record", "--data", str(data), "--out", "t.json", "--ledger", "l.jsonl", *extra,
                "--", "env", "GOOGLE_AUTH_TOKEN_FOR_TESTING=secret123", sys.executable,
                str(PROGRAM), OBJECT, cwd=tmp_path)  # fmt: skip


def test_trace_and_ledger_hold_no_secret_and_no_path(tmp_path, data) -> None:
    res = _record(tmp_path, data)
    assert res.returncode == 0, res.stderr[-2000:]
    trace, ledger = (tmp_path / "t.json").read_text(), (tmp_path / "l.jsonl").read_text()
    assert json.loads(trace)["comment"] == "recorded by gcs-hook record: plain_reader.py"
    assert len(ledger.splitlines()) >= 2  # both requests of the program are in it
    for text in (trace, ledger):
        assert "secret123" not in text
        assert str(tmp_path) not in text and str(PROGRAM.parent) not in text
    assert (tmp_path / "t.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "l.jsonl").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "l.jsonl", "t.json"]


def test_redact_names_covers_the_ledger_and_drops_query_values(tmp_path, data) -> None:
    res = _record(tmp_path, data, "--redact-names")
    assert res.returncode == 0, res.stderr[-2000:]
    trace, ledger = (tmp_path / "t.json").read_text(), (tmp_path / "l.jsonl").read_text()
    records = [json.loads(line) for line in ledger.splitlines()]
    media = [r for r in records if r["kind"] == "media"]
    assert media, records
    for text in (trace, ledger):
        for secret in ("secret123", "sharebkt", "private", "home", "SECRETPAGE", "UP123"):
            assert secret not in text, secret
    assert all(r["query"]["alt"] == "media" for r in media)  # on the allow-list: kept
    assert all(r["query"]["pageToken"] == "<dropped>" for r in media)
    ledger_objects = {f"{r['bucket']}/{r['object']}" for r in media}
    assert set(json.loads(trace)["objects"]) == ledger_objects  # the trace's hashes: the ledger's


def test_pass_through_redaction_covers_the_ledger(tmp_path) -> None:
    from _impersonator import Impersonator

    (tmp_path / "imp").mkdir()
    imp = Impersonator(tmp_path / "imp")
    try:
        bucket, _, name = OBJECT.partition("/")
        imp.emu.backend.create_bucket(bucket)
        imp.emu.backend.put_object(bucket, name, b"0123456789abcdef")
        res = subprocess.run(
            [*CLI, "record", *imp.record_args(), "--redact-names", "--out", "t.json", "--ledger",
             "l.jsonl", "--", "env", "GOOGLE_AUTH_TOKEN_FOR_TESTING=secret123", sys.executable,
             str(PROGRAM), OBJECT],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**os.environ, **imp.program_env(), "COLUMNS": "200"},
        )  # fmt: skip
    finally:
        imp.close()
    assert res.returncode == 0, res.stderr[-2000:]
    trace, ledger = (tmp_path / "t.json").read_text(), (tmp_path / "l.jsonl").read_text()
    media = [r for r in map(json.loads, ledger.splitlines()) if r["kind"] == "media"]
    assert len(media) == 2, ledger
    for text in (trace, ledger):
        for secret in ("secret123", "sharebkt", "private", "home", "SECRETPAGE", "UP123"):
            assert secret not in text, secret
        assert str(tmp_path) not in text


def test_symlinks_at_out_and_ledger_are_replaced_not_followed(tmp_path, data) -> None:
    victim_t, victim_l = tmp_path / "victim-t", tmp_path / "victim-l"
    victim_t.write_text("keep me")
    victim_l.write_text("keep me too")
    (tmp_path / "t.json").symlink_to(victim_t)
    (tmp_path / "l.jsonl").symlink_to(victim_l)
    res = _record(tmp_path, data)
    assert res.returncode == 0, res.stderr[-2000:]
    assert victim_t.read_text() == "keep me" and victim_l.read_text() == "keep me too"
    assert not (tmp_path / "t.json").is_symlink() and not (tmp_path / "l.jsonl").is_symlink()
    assert json.loads((tmp_path / "t.json").read_text())["objects"] == {OBJECT: 16}


def test_write_atomic_never_writes_through_a_link(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("old")
    (tmp_path / "out").symlink_to(victim)
    write_atomic(tmp_path / "out", "new")
    assert victim.read_text() == "old" and (tmp_path / "out").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "victim"]
    (tmp_path / "sub").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "sub", "x")  # nothing left behind on failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sub", "victim"]


@pytest.mark.parametrize(
    ("cmd", "name", "kept"),
    [
        (["env", "-u", "X", "TOKEN=s3", "python3", "/home/me/job.py", "--lr=1"], "job.py",
         "python3 job.py --lr=1"),
        (["A=1", "/opt/bin/train", "--password", "p4", "/data/x"], "train", "train --password "
         "<hidden> x"),
        (["python", "-m", "pkg.main", "--api-key=k5"], "pkg.main",
         "python -m pkg.main --api-key=<hidden>"),
    ],
)  # fmt: skip
def test_comments_name_the_program_only(cmd, name, kept) -> None:
    assert trace_comment("r", cmd) == f"r: {name}" and program_name(cmd) == name
    assert trace_comment("r", cmd, keep_command=True) == f"r: {kept}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--min-sleep-ms", "nan"], "--min-sleep-ms must be >= 0 and finite"),
        (["--min-sleep-ms", "inf"], "--min-sleep-ms must be >= 0 and finite"),
        (["--upstream", "https://storage.googleapis.com", "--upstream-ca", "."], "is a directory"),
        (["--ledger", "nodir/l.jsonl"], "--ledger: directory nodir does not exist"),
    ],
)
def test_option_oddities_one_line(tmp_path, args, needle) -> None:
    """In-process; the test below runs the console script in a real process."""
    res = cli_in_process("record", "--out", "t.json", *args, "--", "true", cwd=tmp_path)
    assert needle in one_error_line(res)
    assert list(tmp_path.iterdir()) == []


def test_binary_from_ledger_names_the_file(tmp_path) -> None:
    (tmp_path / "bin.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    res = _cli("record", "--from-ledger", "bin.jsonl", "--out", "t.json", cwd=tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "bin.jsonl:1: not a ledger (not UTF-8" in lines[0]
    assert not (tmp_path / "t.json").exists()


def test_tune_report_files_are_replaced_not_written_through_links(tmp_path) -> None:
    from benchmarks.workloads import SequentialShards

    trace = SequentialShards(shards=2, records_per_shard=10, record_size=10_000).synthesize()
    (tmp_path / "job.json").write_text(json.dumps(trace))
    out = tmp_path / "o"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for name in ("summary.json", "sweep.csv", "heatmap.png"):
        (out / name).symlink_to(victim)
    res = _cli("tune", "--workload", "job.json", "--quick", "--out", "o", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert victim.read_text() == "keep"
    assert all(not (out / n).is_symlink() for n in ("summary.json", "sweep.csv", "heatmap.png"))
    summary = (out / "summary.json").read_text()
    assert json.loads(summary)["results"] and str(tmp_path) not in summary
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_a_link_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch) -> None:
    """The old writer used ``OUT.tmp-<pid>``; a link placed at the (here: forced) temporary
    name makes the write fail, and neither the link's target nor the target file changes."""
    import secrets

    victim = tmp_path / "victim"
    victim.write_text("old")
    (tmp_path / "out").write_text("previous")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "f" * (2 * n))
    (tmp_path / f".out.tmp-{'f' * 16}").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "out", "new")
    assert victim.read_text() == "old" and (tmp_path / "out").read_text() == "previous"
