"""The README's and docs' examples run, their module paths exist, and no file names a path
outside the repository.

Every ```python block in README.md and docs/*.md (except docs/design.md, whose blocks are
interface sketches: signatures, not programs) is registered in :data:`RUNNERS` and run here
against the session's fake GCS: the blocks themselves, unchanged, with a prelude that provides
what a real program has (a bucket with data, a train_op, a model) and an epilogue that checks
what the block was supposed to do. A new example without a runner fails
:func:`test_every_python_example_has_a_runner`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SKETCHES = {"docs/design.md"}  # interface listings, not programs
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def python_blocks() -> dict[str, str]:
    """``{"README.md#3": code}``: the n-th (1-based) ```python block of each doc."""
    out: dict[str, str] = {}
    for path in DOCS:
        rel = path.relative_to(REPO).as_posix()
        if rel in SKETCHES:
            continue
        blocks = [m.group(2) for m in _BLOCK.finditer(path.read_text()) if m.group(1) == "python"]
        for i, code in enumerate(blocks, 1):
            out[f"{rel}#{i}"] = code
    return out


BLOCKS = python_blocks()


def block(key: str) -> str:
    return BLOCKS[key]


def hook_setup() -> str:
    """The README's first hook block: imports, BlockCacheParams, credentials from a file."""
    return block("README.md#1")


# ---------------------------------------------------------------------------------------------
# Runners: each gets the fixtures it needs and runs one example (or an example after the block
# it builds on, as a reader would), then checks the outcome.


def _run_tf_program(
    emu: Any, tmp_path: Path, prelude: str, body: str, epilogue: str
) -> tuple[dict[str, Any], str]:
    """Run prelude + body + epilogue as a TF program with a service-account file in its cwd.

    Returns (the JSON the epilogue printed on its last stdout line, the principal the
    credentials map to). The credentials file is 0600 and removed with tmp_path.
    """
    from emulator.fakegcs.oauth import make_test_credentials

    creds = make_test_credentials("service_account")
    principal = emu.token_issuer.register(creds)
    key_file = tmp_path / "service-account.json"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    script = tmp_path / "example.py"
    script.write_text(
        textwrap.dedent(prelude) + "\n" + body + "\n" + textwrap.dedent(epilogue), "utf-8"
    )
    env = {**os.environ, **emu.tf_env(test_token=None), "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
    finally:
        key_file.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), principal


READ_BACK = """
import json as _json
from gcs_hook.hook import current_block_cache
print(_json.dumps({"cache": list(current_block_cache())}))
"""
EXPECTED_CACHE = [16 << 20, 1024 << 20, 0]


def run_hook_monitored_session(emu: Any, tmp_path: Path) -> None:
    emu.backend.create_bucket("my-bucket")
    mark = emu.ledger.mark()
    prelude = """
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    _steps = tf.compat.v1.data.make_one_shot_iterator(tf.data.Dataset.range(3)).get_next()
    _gs = tf.compat.v1.train.get_or_create_global_step()
    train_op = tf.group(_steps, tf.compat.v1.assign_add(_gs, 1))
    """
    got, principal = _run_tf_program(
        emu, tmp_path, prelude, hook_setup() + "\n" + block("README.md#2"), READ_BACK
    )
    assert got["cache"] == EXPECTED_CACHE
    names = emu.backend.list_objects("my-bucket", prefix="run1/")
    assert any(n.startswith("run1/model.ckpt") for n in names), names
    # Hook ordering, as the README states it: MonitoredTrainingSession's checkpoint saver writes
    # model.ckpt-0 in its own after_create_session, before ConfigureGcsHook's runs, so that one
    # still goes out with the environment's credentials (none here: anonymous); the final
    # checkpoint (after the steps ran) carries the configured service account.
    uploads = emu.ledger.since(mark, kind="upload", bucket="my-bucket")
    by_ckpt: dict[str, set[str]] = {}
    for r in uploads:
        m = re.match(r"run1/model\.ckpt-(\d+)", r.object or "")
        if m:
            by_ckpt.setdefault(m.group(1), set()).add(r.principal)
    assert by_ckpt.get("0") == {"anonymous"}, by_ckpt
    final = max(by_ckpt, key=int)
    assert final != "0" and by_ckpt[final] == {principal}, by_ckpt


def run_hook_eager(emu: Any, tmp_path: Path) -> None:
    got, _ = _run_tf_program(
        emu, tmp_path, "", hook_setup() + "\n" + block("README.md#3"), READ_BACK
    )
    assert got["cache"] == EXPECTED_CACHE


def run_hook_keras(emu: Any, tmp_path: Path) -> None:
    prelude = """
    import numpy as np
    import tensorflow as tf
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.zeros((8, 1), "float32"))
    ).batch(4)
    """
    got, _ = _run_tf_program(
        emu, tmp_path, prelude, hook_setup() + "\n" + block("README.md#4"), READ_BACK
    )
    assert got["cache"] == EXPECTED_CACHE


def run_emulator_example(emu: Any, tmp_path: Path) -> None:
    """Starts its own GcsEmulator, as written; prints the media requests it made (none)."""
    proc = subprocess.run(
        [sys.executable, "-c", block("README.md#5")], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def _exec(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, "<doc example>", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def run_fsspec_example(emu: Any, tmp_path: Path) -> None:
    from emulator.replay.trace import object_content

    data = object_content("bucket/data/train-00000.tfrecord", 1, 3_000_000)
    emu.backend.create_bucket("bucket")
    emu.backend.put_object("bucket", "data/train-00000.tfrecord", data)
    ns = _exec(block("README.md#6"), {"emu": emu})
    assert ns["data"] == data[1_500_000:1_501_000]


def run_model_doc_example(emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.replay.trace import object_content

    data = object_content("bkt/a.bin", 1, 3_000_000)
    emu.backend.create_bucket("bkt")
    emu.backend.put_object("bkt", "a.bin", data)
    monkeypatch.chdir(REPO)  # the example names a suite trace by its repo-relative path
    ns = _exec(block("docs/model.md#1"), {"front_url": emu.front.url})
    assert ns["r"].data == data[:100]
    kinds = [r["kind"] for r in ns["fs"].transport.requests]
    assert kinds == ["metadata", "media"], kinds
    assert ns["res"].requests_by_kind.get("media", 0) > 0


def run_columnar_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-contained: writes a columnar trace and loads it back (its own assert checks it)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    ns = _exec(block("docs/trace-format.md#1"), {})
    assert Path(ns["path"]).is_file() and Path(ns["path"]).is_relative_to(tmp_path)


def run_gcsfs_loader_example(tmp_path: Path) -> None:
    """The README's gcsfs loader, end to end as the README runs it: record it unchanged, then
    ``tune --client gcsfs`` with the README's configurations; the README's numbers hold."""
    (tmp_path / "DATA" / "my-bucket").mkdir(parents=True)
    (tmp_path / "DATA" / "my-bucket" / "train.bin").write_bytes(os.urandom(16 << 20))
    (tmp_path / "loader.py").write_text(block("README.md#7"), "utf-8")
    cli = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
    env = {**os.environ, "COLUMNS": "200"}
    rec = subprocess.run(
        [*cli, "record", "--data", "DATA", "--out", "loader.json", "--", sys.executable,
         "loader.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr[-2000:]
    assert "gcsfs: 1 files, 65 reads at the file level" in rec.stderr
    tune = subprocess.run(
        [*cli, "tune", "--client", "gcsfs", "--workload", "loader.json", "--configs",
         "readahead/5MiB,blockcache/64KiB,none", "--json", "--out", "out"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert tune.returncode == 0, tune.stderr[-2000:]
    best = [r for r in json.loads(tune.stdout) if r["recommended"]]
    assert [r["config"]["cache_type"] for r in best] == ["none"]
    assert 'fs.open(path, "rb", cache_type="none", block_size=5 * 2**20)' in tune.stderr


RUNNERS: dict[str, Callable[..., None]] = {
    "README.md#1": lambda emu, tmp_path, mp: None,  # the shared setup; run by the next three
    "README.md#2": lambda emu, tmp_path, mp: run_hook_monitored_session(emu, tmp_path),
    "README.md#3": lambda emu, tmp_path, mp: run_hook_eager(emu, tmp_path),
    "README.md#4": lambda emu, tmp_path, mp: run_hook_keras(emu, tmp_path),
    "README.md#5": lambda emu, tmp_path, mp: run_emulator_example(emu, tmp_path),
    "README.md#6": lambda emu, tmp_path, mp: run_fsspec_example(emu, tmp_path),
    "README.md#7": lambda emu, tmp_path, mp: run_gcsfs_loader_example(tmp_path),
    "docs/model.md#1": run_model_doc_example,
    "docs/trace-format.md#1": lambda emu, tmp_path, mp: run_columnar_example(tmp_path, mp),
}


def test_every_python_example_has_a_runner():
    assert set(BLOCKS) == set(RUNNERS), (
        "examples without a runner: "
        f"{sorted(set(BLOCKS) - set(RUNNERS))}; runners without an example: "
        f"{sorted(set(RUNNERS) - set(BLOCKS))}"
    )


@pytest.mark.parametrize("key", sorted(RUNNERS))
def test_example_compiles(key):
    if key in BLOCKS:
        compile(BLOCKS[key], key, "exec")


@pytest.mark.tf
@pytest.mark.parametrize("key", [k for k in sorted(RUNNERS) if k in BLOCKS])
def test_example_runs(key, gcs_emulator, tmp_path, monkeypatch):
    RUNNERS[key](gcs_emulator, tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------------
# Paths named in the docs exist.

_DOTTED = re.compile(r"\b((?:emulator|gcs_hook|benchmarks)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_FILE = re.compile(r"`((?:emulator|gcs_hook|benchmarks|tests|docs|scripts)/[\w./*-]+)`")


def _resolves(dotted: str) -> bool:
    """``a.b.c`` is a module, or an attribute reachable from the longest importable prefix."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _all_docs() -> list[Path]:
    return [*DOCS, *sorted(REPO.glob("*.md"))]


@pytest.mark.parametrize("doc", [p.relative_to(REPO).as_posix() for p in DOCS])
def test_dotted_names_in_docs_resolve(doc):
    text = (REPO / doc).read_text()
    missing = sorted({d for d in _DOTTED.findall(text) if not _resolves(d.rstrip("."))})
    assert not missing, f"{doc} names modules/attributes that do not exist: {missing}"


@pytest.mark.parametrize("doc", [p.relative_to(REPO).as_posix() for p in DOCS])
def test_file_paths_in_docs_exist(doc):
    text = (REPO / doc).read_text()
    missing = sorted(p for p in set(_FILE.findall(text)) if not any(REPO.glob(p.rstrip("/"))))
    assert not missing, f"{doc} names files that do not exist: {missing}"


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
        text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return [REPO / p for p in out if p and (REPO / p).is_file()]


# Paths of the machine this project was built on, and background docs that are not part of it.
_OUTSIDE = re.compile(r"/work/|\.\./shared|shared/docs|tf-gcs-semantics|tf-gcs-notes")


def test_no_file_names_a_path_outside_the_repository():
    offenders = []
    for path in _tracked_files():
        if path.suffix in {".png", ".jpg", ".so", ".pyc"}:
            continue
        try:
            text = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line) and path != Path(__file__).resolve():
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)
