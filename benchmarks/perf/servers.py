"""The processes the front benchmarks measure: ``gcs-hook serve`` and a pass-through front.

Each runs in a process of its own (as for TensorFlow), so its CPU time can be read from
``/proc`` apart from the client's. Everything listens on 127.0.0.1 only; every process started
here is stopped by ``close()`` (SIGINT, then SIGKILL after 30 s).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys

_CLI = [sys.executable, "-c", "from gcs_hook.cli import main; main()"]
_FRONT_LINE = re.compile(r"# front http://127\.0\.0\.1:(\d+) -> \S+ backend (\S+) ")
_TLS_LINE = re.compile(r"# tls https://127\.0\.0\.1:(\d+) .*CA (\S+)\)")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (from ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan"), float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServeProcess:
    """``gcs-hook serve --data DIR [ARGS]`` in its own process.

    Attributes: ``pid``, ``env`` (its export lines), ``front_port``, ``backend_url``, and with
    ``--tls`` in ``args`` also ``tls_port`` and ``ca`` (the CA file of its TLS listener).
    """

    def __init__(self, data_dir: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*_CLI, "serve", "--data", data_dir, "--duration", "30m", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "COLUMNS": "400"},
        )  # fmt: skip
        self.pid = self.proc.pid
        self.env: dict[str, str] = {}
        self.tls_port: int | None = None
        self.ca: str | None = None
        try:
            self._read_banner(want_tls="--tls" in args)
        except BaseException:
            _stop(self.proc)
            raise

    def _read_banner(self, want_tls: bool) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for line in self.proc.stdout:  # the export lines come first
            k, _, v = line.removeprefix("export ").strip().partition("=")
            self.env[k] = shlex.split(v)[0]
            if k == "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT":
                break
        front = None
        for line in self.proc.stderr:
            front = front or _FRONT_LINE.match(line)
            tls = _TLS_LINE.match(line)
            if tls:
                self.tls_port, self.ca = int(tls.group(1)), tls.group(2)
            if front and (self.tls_port or not want_tls):
                self.front_port = int(front.group(1))
                self.backend_url = front.group(2)
                return
        raise RuntimeError(f"gcs-hook serve did not start (exit {self.proc.wait()})")

    @property
    def backend_pid(self) -> int | None:
        """The fake-gcs-server process the serve process started (its child), if any."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            return None
        return kids[0] if kids else None

    def close(self) -> None:
        _stop(self.proc)


_PASS_THROUGH = """
import json, sys
from emulator.fakegcs.passthrough import PassThrough
from emulator.fakegcs.upstream import UpstreamConfig
cfg = UpstreamConfig(("127.0.0.1", int(sys.argv[1])), sys.argv[2])
with PassThrough(cfg) as pt:
    print(json.dumps({"url": pt.url, "ca": pt.front.ca_pem}), flush=True)
    sys.stdin.read()
"""


class PassThroughProcess:
    """The front of ``gcs-hook record --upstream``, in its own process, forwarding to the
    TLS listener at ``127.0.0.1:upstream_port`` (verified with ``upstream_ca``). Attributes:
    ``pid``, ``port`` (its proxy port) and ``ca`` (its per-run CA, for the client)."""

    def __init__(self, upstream_port: int, upstream_ca: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PASS_THROUGH, str(upstream_port), upstream_ca],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            _stop(self.proc)
            raise RuntimeError("the pass-through front did not start")
        info = json.loads(line)
        self.port = int(info["url"].rsplit(":", 1)[1])
        self.ca: str = info["ca"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # it exits at end of input
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
