"""``gcs-hook record`` stops cleanly (issue 19 item 4): SIGINT, SIGTERM and SIGHUP stop the
program's whole process group (background children included) and remove key material and
temporary directories, in every mode; a normal end leaves no background child either; the
next ``record`` removes what a SIGKILLed one left. Real CLI processes, real signals."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
MODES = {
    "fake": [],
    "fake-limited": ["--max-seconds", "10m"],
    "upstream": ["--upstream", "https://127.0.0.1:9"],
}


def _program(pidfile: Path, linger: bool) -> list[str]:
    """A program that starts a background child, writes both pids, then waits or exits."""
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pidfile)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\n"
        f"time.sleep({120 if linger else 0})\n"
    )
    return [sys.executable, "-c", code]


def _owned_by(pid: int) -> list[str]:
    out = []
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "gcs-hook-*")):
        with contextlib.suppress(OSError):
            if Path(d, "owner.pid").read_text().strip() == str(pid):
                out.append(d)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"
    return False


def _start(tmp_path: Path, mode: str, linger: bool) -> tuple[subprocess.Popen, Path]:
    pidfile = tmp_path / "pids"
    proc = subprocess.Popen(
        [*CLI, "record", *MODES[mode], "--out", str(tmp_path / "t.json"), "--",
         *_program(pidfile, linger)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pidfile.exists() and proc.poll() is None:
        time.sleep(0.05)
    assert pidfile.exists(), proc.stderr.read() if proc.poll() is not None else "no program"
    return proc, pidfile


def _pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()]


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_stop_signal_stops_the_group_and_removes_everything(tmp_path, mode, sig) -> None:
    proc, pidfile = _start(tmp_path, mode, linger=True)
    pids = _pids(pidfile)
    try:
        dirs = _owned_by(proc.pid)
        assert dirs  # key material (and, in fake modes, the backend's directory) exist
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 128 + sig
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # only if the test failed
    stderr = proc.stderr.read()
    assert f"stopped on {signal.Signals(sig).name}" in stderr, stderr[-2000:]
    assert _gone(pids), "the program or its background child outlived record"
    assert _owned_by(proc.pid) == [] and not any(os.path.exists(d) for d in dirs)
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("mode", ["fake", "upstream"])
def test_background_children_end_with_the_recording(tmp_path, mode) -> None:
    proc, pidfile = _start(tmp_path, mode, linger=False)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
    assert _gone(_pids(pidfile))
    assert (tmp_path / "t.json").exists() and _owned_by(proc.pid) == []


def test_next_record_removes_what_a_sigkilled_one_left(tmp_path) -> None:
    proc, pidfile = _start(tmp_path, "fake", linger=True)
    dirs = _owned_by(proc.pid)
    assert any("gcs-hook-ca-" in d for d in dirs)
    proc.kill()
    proc.wait(timeout=30)
    for pid in _pids(pidfile):  # SIGKILL cannot be handled: the program is ours to end here
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert all(os.path.exists(d) for d in dirs)
    res = subprocess.run([*CLI, "record", "--out", str(tmp_path / "t2.json"), "--", "true"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert not any(os.path.exists(d) for d in dirs)


def test_the_program_gets_the_signal_record_got(tmp_path) -> None:
    seen = tmp_path / "seen"
    code = (
        "import signal, sys, time\n"
        "def on(sig, _):\n"
        f"    open({str(seen)!r}, 'w').write(signal.Signals(sig).name)\n"
        "    sys.exit(0)\n"
        "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):\n"
        "    signal.signal(s, on)\n"
        f"open({str(tmp_path / 'ready')!r}, 'w').close()\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([*CLI, "record", "--out", str(tmp_path / "t.json"), "--",
                             sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen.read_text() == "SIGINT"


def test_ending_the_group_does_not_need_popens_lock() -> None:
    """A stop signal raised inside ``Popen.poll`` can leave Popen's waitpid lock held; ending
    the group must still stop and reap the program (``Popen.wait`` would block forever)."""
    import threading

    from benchmarks.record.process import end_group

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)  # fmt: skip
    assert proc._waitpid_lock.acquire(False)  # as a poll cut short by the signal leaves it
    done = threading.Event()
    t = threading.Thread(target=lambda: (end_group(proc, grace_s=2.0), done.set()), daemon=True)
    t.start()
    try:
        assert done.wait(30), "end_group hung on the held lock"
        assert proc.returncode == -signal.SIGTERM
    finally:
        proc._waitpid_lock.release()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
