"""Hostile traces (issue 19 item 5): every one is refused by the one trace reader with one
line, and by ``gcs-hook tune``, ``gcs-hook replay`` and ``replay --engine tf`` with one line on
stderr and exit 2, before anything runs; a deflate bomb is refused before it inflates."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _support import cli_in_process, one_error_line

from emulator.replay.columnar import from_dict, save_columnar
from emulator.replay.limits import MAX_INFLATED_BYTES
from emulator.replay.reader import TraceError, read_trace_file

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
GOOD = {
    "config": {"block_size": 1 << 20, "max_bytes": 4 << 20, "max_staleness": 0},
    "objects": {"b/x": 5000, "b/y": 3000},
    "ops": [
        {"op": "open", "handle": "a", "object": "b/x"},
        {"op": "read", "handle": "a", "offset": 0, "n": 100},
        {"op": "sleep", "seconds": 0.001},
        {"op": "stat", "object": "b/y"},
        {"op": "open", "handle": "c", "object": "b/y"},
        {"op": "read", "handle": "c", "offset": 10, "n": 100},
        {"op": "close", "handle": "a"},
    ],
}


def _arrays(tmp_path: Path) -> dict[str, np.ndarray]:
    path = tmp_path / "good.npz"
    save_columnar(from_dict(GOOD), path)
    with np.load(path) as z:
        return {k: z[k].copy() for k in z.files}


def _meta(arrays: dict[str, np.ndarray], **changes) -> np.ndarray:  # noqa: ANN003
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta.update(changes)
    return np.frombuffer(json.dumps(meta).encode(), np.uint8)


def _set(arrays: dict[str, np.ndarray], column: str, row: int, value) -> dict:  # noqa: ANN001
    out = dict(arrays)
    out[column] = arrays[column].copy()
    out[column][row] = value
    return out


# (case id, how to break the columns of GOOD: rows are open, read, sleep, stat, open, read, close)
NPZ_CASES = {
    "kind-200": lambda a: _set(a, "kind", 1, 200),
    "obj-out-of-range": lambda a: _set(a, "obj", 3, 7),
    "obj-negative": lambda a: _set(a, "obj", 0, -1),
    "read-on-other-object": lambda a: _set(a, "obj", 1, 1),
    "read-before-open": lambda a: _set(a, "handle", 1, 1) | {"obj": _set(a, "obj", 1, 1)["obj"]},
    "handle-huge": lambda a: _set(a, "handle", 0, 2**31 - 1),
    "offset-negative": lambda a: _set(a, "offset", 1, -5),
    "n-negative": lambda a: _set(a, "n", 1, -1),
    "n-huge": lambda a: _set(a, "n", 1, 10**18),
    "size-huge": lambda a: _set(a, "sizes", 0, 10**18),
    "size-negative": lambda a: _set(a, "sizes", 1, -1),
    "sleep-nan": lambda a: _set(a, "seconds", 0, float("nan")),
    "sleep-inf": lambda a: _set(a, "seconds", 0, float("inf")),
    "sleep-index-out": lambda a: _set(a, "offset", 2, 9),
    "short-names": lambda a: a | {"meta": _meta(a, names=["b/x"])},
    "bad-name": lambda a: a | {"meta": _meta(a, names=["b/x", "b/.."])},
    "block-size-minus-1": lambda a: (
        a | {"meta": _meta(a, config={"block_size": -1, "max_bytes": 1})}
    ),
    "block-size-huge": lambda a: (
        a | {"meta": _meta(a, config={"block_size": 1 << 40, "max_bytes": 1 << 41})}
    ),
    "short-column": lambda a: a | {"n": a["n"][:-1]},
    "wrong-dtype": lambda a: a | {"obj": a["obj"].astype(np.int64)},
    "two-d": lambda a: a | {"sizes": a["sizes"].reshape(1, 2)},
}


def _write_npz(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.npz"
    np.savez(path, **NPZ_CASES[case](_arrays(tmp_path)))
    return path


JSON_CASES = {
    "read-before-open": {**GOOD, "ops": [{"op": "read", "handle": "a", "offset": 0, "n": 1}]},
    "negative-offset": {**GOOD, "ops": [GOOD["ops"][0], {**GOOD["ops"][1], "offset": -1}]},
    "huge-size": {**GOOD, "objects": {"b/x": 10**18}},
    "block-size-minus-1": {**GOOD, "config": {"block_size": -1, "max_bytes": 1}},
    "huge-read": {**GOOD, "ops": [GOOD["ops"][0], {**GOOD["ops"][1], "n": 10**18}]},
}


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A deflated member of 1.125 GiB of zero rows, honestly declared, ~1 MB on disk."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    rows = (MAX_INFLATED_BYTES // 8) * 9 // 8
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.int64))
    header["shape"] = (rows,)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("n.npy", "w", force_zip64=True) as fh,
    ):
        np.lib.format.write_array_header_1_0(fh, header)
        zero = bytes(1 << 24)
        for _ in range(rows * 8 // len(zero)):
            fh.write(zero)
    return path


def test_the_good_trace_reads_in_both_forms(tmp_path) -> None:
    save_columnar(from_dict(GOOD), tmp_path / "good.npz")
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    ct = read_trace_file(tmp_path / "good.npz")
    assert ct.names == ["b/x", "b/y"] and len(ct) == 7
    assert read_trace_file(tmp_path / "good.json")["objects"] == GOOD["objects"]


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_reader_refuses_hostile_columns(tmp_path, case) -> None:
    path = _write_npz(tmp_path, case)
    with pytest.raises(TraceError) as info:
        read_trace_file(path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) not in message


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_reader_refuses_hostile_json(tmp_path, case) -> None:
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(JSON_CASES[case]))
    with pytest.raises(TraceError) as info:
        read_trace_file(path)
    assert "\n" not in str(info.value)


def test_json_beyond_the_limit_is_refused_unread(tmp_path) -> None:
    from emulator.replay.limits import MAX_TRACE_FILE_BYTES

    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:  # sparse: no disk, no memory
        fh.truncate(MAX_TRACE_FILE_BYTES + 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TraceError, match="the JSON limit"):
        read_trace_file(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


def test_deflate_bomb_is_refused_before_inflating(bomb) -> None:
    path = bomb
    assert path.stat().st_size < 8 << 20
    assert zipfile.ZipFile(path).infolist()[0].file_size > MAX_INFLATED_BYTES
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TraceError, match="inflate"):
        read_trace_file(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # nothing near the member's declared 1.1 GiB was inflated


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )  # fmt: skip


def _run(case: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The deflate bomb through the console script in a real process (the exit-2 / one-line /
    no-traceback contract of a real run, for tune and replay); every other case in-process."""
    if case.endswith("bomb"):
        return _cli(*args, cwd=cwd)
    return cli_in_process(*args, cwd=cwd)


TUNE_CASES = [*sorted(NPZ_CASES), "bomb", *(f"json:{c}" for c in sorted(JSON_CASES))]


@pytest.mark.parametrize("case", TUNE_CASES)
def test_tune_refuses_hostile_traces_with_one_line(tmp_path, bomb, case) -> None:
    if case.startswith("json:"):
        path = tmp_path / "t.json"
        path.write_text(json.dumps(JSON_CASES[case.removeprefix("json:")]))
    else:
        path = bomb if case == "bomb" else _write_npz(tmp_path, case)
    res = _run(case, "tune", "--workload", str(path), "--quick", "--out", str(tmp_path / "o"),
               cwd=tmp_path)  # fmt: skip
    one_error_line(res)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("engine", ["model", "tf"])
@pytest.mark.parametrize("case", ["json:read-before-open", "json:huge-size", "npz:kind-200",
                                  "npz:sleep-nan", "npz:short-names", "npz:bomb"])  # fmt: skip
def test_replay_refuses_hostile_traces_with_one_line(tmp_path, bomb, engine, case) -> None:
    form, name = case.split(":")
    if form == "json":
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(JSON_CASES[name]))
    elif name == "bomb":
        path = bomb
    else:
        path = _write_npz(tmp_path, name)
    one_error_line(_run(case, "replay", str(path), "--engine", engine, cwd=tmp_path))


def test_replay_runs_a_good_columnar_trace(tmp_path) -> None:
    save_columnar(from_dict(GOOD), tmp_path / "good.npz")
    res = _cli("replay", str(tmp_path / "good.npz"), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["reads"]) == 2


def test_chunked_column_checks_agree_with_one_pass(monkeypatch) -> None:
    """The open-before-use state carried from chunk to chunk gives the verdict one pass gives,
    on random traces with a handle corrupted in every other one."""
    from emulator.replay import reader
    from emulator.replay.random_traces import random_trace

    rng = np.random.default_rng(0)
    verdicts: dict[int, list[str]] = {1 << 20: [], 3: [], 1: []}
    for seed in range(200):
        try:
            ct = from_dict(random_trace(seed))
        except NotImplementedError:
            continue
        if seed % 2 and len(ct):
            ct.handle = ct.handle.copy()
            ct.handle[rng.integers(len(ct))] = rng.integers(0, max(1, ct.n_handles))
        for chunk, out in verdicts.items():
            monkeypatch.setattr(reader, "CHECK_CHUNK_ROWS", chunk)
            try:
                reader.check_columns(ct)
                out.append("ok")
            except TraceError as exc:
                out.append(str(exc))
    assert verdicts[1 << 20] == verdicts[3] == verdicts[1]
    assert "ok" in verdicts[1] and any(v != "ok" for v in verdicts[1])
