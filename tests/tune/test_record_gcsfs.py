"""``gcs-hook record`` of gcsfs/fsspec programs, and recordings that are never silently empty.

Real gcsfs, real fake-gcs-server, real front, real processes: the recorded program's tree owns
its requests whatever token they carry (anonymous gcsfs, raw anonymous HTTP); a process outside
the tree does not; gcsfs file reads are logged at the file level by the shim (tagged
``client: gcsfs``, with fsspec's version); an empty recording says so on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from benchmarks.workloads.gcsfs_job import SIZES, make_objects

KiB = 1024
CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
JOB = [sys.executable, "-m", "benchmarks.workloads.gcsfs_job"]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gcsfs-data")
    (root / "job").mkdir()
    for name, data in make_objects(("mixed",)).items():
        (root / "job" / name).write_bytes(data)
    return root


def test_gcsfs_program_is_recorded_at_the_file_level(data_dir, tmp_path):
    import fsspec
    import gcsfs

    out = tmp_path / "t.json"
    res = _cli("record", "--data", str(data_dir), "--out", str(out), "--",
               *JOB, "job", "--mode", "random", timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    trace = json.loads(out.read_text())
    info = trace["clients"]["gcsfs"]
    assert (info["fsspec"], info["gcsfs"]) == (fsspec.__version__, gcsfs.__version__)
    opens = [op for op in trace["ops"] if op["op"] == "open"]
    assert [(op["object"], op["client"], op["size"]) for op in opens] == [
        ("job/rec.bin", "gcsfs", SIZES["rec.bin"])
    ]
    assert opens[0]["recorded"]["cache_type"] == "adaptive"  # gcsfs's default
    reads = [op for op in trace["ops"] if op["op"] == "read"]
    assert len(reads) == 48 and {op["n"] for op in reads} == {64 * KiB}
    assert all(op["offset"] % (64 * KiB) == 0 and op["handle"] == "g1" for op in reads)
    assert "other-clients" not in res.stderr  # anonymous gcsfs is the program
    assert "gcsfs-wire" in res.stderr and "gcs-hook tune --client gcsfs" in res.stderr


def test_anonymous_raw_reads_are_the_programs(data_dir, tmp_path):
    prog = (
        "import os, urllib.request\n"
        "u = os.environ['STORAGE_EMULATOR_HOST'] + '/storage/v1/b/job/o/rec.bin?alt=media'\n"
        "for a in (0, 65536, 131072):\n"
        "    r = urllib.request.Request(u, headers={'Range': f'bytes={a}-{a + 999}'})\n"
        "    urllib.request.urlopen(r).read()\n"
    )
    out = tmp_path / "t.json"
    res = _cli("record", "--data", str(data_dir), "--out", str(out), "--",
               sys.executable, "-c", prog, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    reads = [op for op in json.loads(out.read_text())["ops"] if op["op"] == "read"]
    assert [(op["offset"], op["n"]) for op in reads] == [(0, 1000), (65536, 1000), (131072, 1000)]
    assert "warning" not in res.stderr


def test_requests_from_outside_the_process_tree_are_not_the_programs(data_dir):
    from benchmarks.record.program import record_program
    from emulator.fakegcs.session import GcsEmulator

    with GcsEmulator() as emu:
        stop = threading.Event()
        url = f"{emu.front.url}/storage/v1/b/job/o/rec.bin?alt=media"

        def outsider() -> None:  # this test process: anonymous, like the program, not in it
            while not stop.is_set():
                req = urllib.request.Request(url, headers={"Range": "bytes=0-9"})
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(req, timeout=5).read()
                stop.wait(0.05)

        prog = (
            "import os, time, urllib.request\n"
            "u = os.environ['STORAGE_EMULATOR_HOST'] + '/storage/v1/b/job/o/rec.bin?alt=media'\n"
            "time.sleep(0.5)\n"
            "urllib.request.urlopen(urllib.request.Request(u, headers={'Range': 'bytes=5-104'}))"
            ".read()\n"
            "time.sleep(0.5)\n"
        )
        emu.backend.seed_from_dir(str(data_dir))
        t = threading.Thread(target=outsider, daemon=True)
        t.start()
        try:
            rec = record_program([sys.executable, "-c", prog], emulator=emu)
        finally:
            stop.set()
            t.join()
    reads = [op for op in rec.result.trace["ops"] if op["op"] == "read"]
    assert [(op["offset"], op["n"]) for op in reads] == [(5, 100)]
    assert rec.result.skipped.get("other-clients", 0) >= 3


def test_an_empty_recording_says_so(tmp_path):
    out = tmp_path / "t.json"
    res = _cli("record", "--out", str(out), "--", sys.executable, "-c", "pass", timeout=60)
    assert res.returncode == 0
    assert "gcs-hook: warning: the trace has no reads" in res.stderr
    assert "sent no request" in res.stderr


def test_tf_and_gcsfs_reads_in_one_program_are_tagged_by_client(data_dir, tmp_path):
    pytest.importorskip("tensorflow")
    prog = (
        "import gcsfs, tensorflow as tf\n"
        "with tf.io.gfile.GFile('gs://job/seq.bin', 'rb') as f:\n"
        "    f.read(100000)\n"
        "with gcsfs.GCSFileSystem().open('job/rec.bin', 'rb', cache_type='none') as f:\n"
        "    f.seek(4096); f.read(5000)\n"
    )
    out = tmp_path / "t.json"
    res = _cli("record", "--data", str(data_dir), "--out", str(out), "--",
               sys.executable, "-c", prog, timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    trace = json.loads(out.read_text())
    opens = {op["handle"]: op for op in trace["ops"] if op["op"] == "open"}
    reads = [(opens[op["handle"]].get("client", "tf"), op["offset"], op["n"])
             for op in trace["ops"] if op["op"] == "read"]  # fmt: skip
    assert [r[:2] for r in reads] == [("tf", 0), ("gcsfs", 4096)]  # GFile reads 512 KiB chunks
    assert reads[1] == ("gcsfs", 4096, 5000)
    from emulator.replay.trace import load_trace

    loaded = load_trace(trace)  # TF's engines see only TF's ops; gcsfs's are kept apart
    assert [op.op for op in loaded.ops if op.op in ("open", "read")] == ["open", "read"]
    assert [c.op["op"] for c in loaded.client_ops] == ["open", "read", "close"]
    full = loaded.to_dict(with_clients=True)
    assert load_trace(full).to_dict(with_clients=True) == full


def test_where_a_files_size_came_from_is_recorded(data_dir, tmp_path):
    prog = (
        "import gcsfs\n"
        "fs = gcsfs.GCSFileSystem()\n"
        "with fs.open('job/rec.bin', 'rb', cache_type='none') as f:\n"  # info asks GCS
        "    f.read(10)\n"
        "fs.ls('job')\n"
        "with fs.open('job/seq.bin', 'rb', cache_type='none') as f:\n"  # from the listing
        "    f.read(10)\n"
        "with fs.open('job/foot.bin', 'rb', cache_type='none', size=1000) as f:\n"  # given
        "    f.read(10)\n"
    )
    out = tmp_path / "t.json"
    res = _cli("record", "--data", str(data_dir), "--out", str(out), "--",
               sys.executable, "-c", prog, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    opens = [op for op in json.loads(out.read_text())["ops"] if op["op"] == "open"]
    assert [(op["object"], op["info"]) for op in opens] == [
        ("job/rec.bin", "request"),
        ("job/seq.bin", "dircache"),
        ("job/foot.bin", "given"),
    ]
    assert opens[2]["size"] == 1000


def test_files_opened_in_forked_workers_are_recorded(data_dir, tmp_path):
    # a PyTorch DataLoader-style run: the workers (forked) open and read their own files
    prog = (
        "import multiprocessing as mp\n"
        "def work(i):\n"
        "    import gcsfs\n"
        "    with gcsfs.GCSFileSystem().open('job/rec.bin', 'rb', cache_type='none') as f:\n"
        "        f.seek(i * 65536); f.read(1000)\n"
        "if __name__ == '__main__':\n"
        "    for i in (1, 2):\n"
        "        p = mp.get_context('fork').Process(target=work, args=(i,))\n"
        "        p.start(); p.join(); assert p.exitcode == 0\n"
    )
    out = tmp_path / "t.json"
    res = _cli("record", "--data", str(data_dir), "--out", str(out), "--",
               sys.executable, "-c", prog, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    ops = json.loads(out.read_text())["ops"]
    reads = [(op["handle"], op["offset"], op["n"]) for op in ops if op["op"] == "read"]
    assert reads == [("g1", 65536, 1000), ("g2", 131072, 1000)]
