"""Throughput of 64 MiB Range GETs: direct to fake-gcs-server vs through the front.

Run: ``python -m benchmarks.perf.front_throughput [--size-mib 64] [--rounds 6]``

Three paths, measured in the same run, interleaved round by round (so background load hits
them alike), all on one keep-alive connection each, client reading with ``readinto`` into one
preallocated buffer:

- ``direct``: plain HTTP to the backend (``GET /<bucket>/<object>``, ``Host:
  storage.googleapis.com``, ``Range: bytes=0-…``);
- ``front-plain``: the same request to the front's plain-HTTP endpoint;
- ``front-tls``: through ``CONNECT storage.googleapis.com:443`` + TLS terminated by the front
  (what TensorFlow does). TLS vs plain is not apples to apples; its ratio is printed separately.

Prints MB/s (10^6 bytes/s; median and best over rounds) and the ratios front/direct. Traffic
goes only to 127.0.0.1; total bytes are bounded by ``rounds × 3 × size``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from emulator.fakegcs.session import GcsEmulator

BUCKET = "bench-front"
OBJECT = "big.bin"


def _fetch(conn: http.client.HTTPConnection, path: str, size: int, buf: bytearray) -> float:
    headers = {"Host": "storage.googleapis.com", "Range": f"bytes=0-{size - 1}"}
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    n = 0
    mv = memoryview(buf)
    while True:
        k = resp.readinto(mv)
        if not k:
            break
        n += k
    dt = time.perf_counter() - t0
    if resp.status != 206 or n != size:
        raise RuntimeError(f"unexpected answer: HTTP {resp.status}, {n} bytes")
    return dt


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(seed_dir: str, state: str) -> subprocess.Popen:
    """``gcs-hook serve`` in its own process (as TensorFlow would use it), seeded from a dir."""
    cmd = [sys.executable, "-c", "from gcs_hook.cli import main; main()", "serve",
           "--data", seed_dir, "--state-file", state, "--duration", "600"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(state):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("gcs-hook serve did not start: " + proc.stderr.read()[-2000:])
        time.sleep(0.1)
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run the front in this process (shares the GIL with the client) instead of "
        "in a separate 'gcs-hook serve' process",
    )
    ap.add_argument(
        "--tf",
        action="store_true",
        help="also time real TensorFlow (subprocess, default GCS settings) reading the object "
        "through the front's CONNECT/TLS path",
    )
    args = ap.parse_args(argv)
    if not 1 <= args.size_mib <= 1024 or not 1 <= args.rounds <= 50:
        ap.error("--size-mib must be 1..1024 and --rounds 1..50")
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        seed = os.path.join(tmp, "seed", BUCKET)
        os.makedirs(seed)
        with open(os.path.join(seed, OBJECT), "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        proc = emu = None
        try:
            if args.in_process:
                emu = GcsEmulator()
                emu.backend.seed_from_dir(os.path.join(tmp, "seed"))
                backend_url, front_port = emu.backend.endpoint, emu.front.port
                ctx = emu.front.client_ssl_context()
                tf_env = emu.tf_env()
            else:
                state = os.path.join(tmp, "state.json")
                proc = _start_server(os.path.join(tmp, "seed"), state)
                with open(state) as f:
                    st = json.load(f)
                backend_url = st["backend_endpoint"]
                front_port = int(st["front_url"].rsplit(":", 1)[1])
                ctx = ssl.create_default_context(cafile=st["env"]["CURL_CA_BUNDLE"])
                tf_env = dict(st["env"])
            front_pid = os.getpid() if emu is not None else proc.pid
            times, cpu = _measure(backend_url, front_port, ctx, size, args.rounds, front_pid)
            tf_times = _measure_tf(tf_env, size, args.rounds) if args.tf else []
        finally:
            if emu is not None:
                emu.close()
            if proc is not None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    mbps = {k: [size / t / 1e6 for t in v] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in mbps.items()}
    where = "in this process" if args.in_process else "in a separate 'gcs-hook serve' process"
    print(f"Range GETs of {size} bytes, {args.rounds} rounds, {os.cpu_count()} CPUs, front {where}")
    gib = size * args.rounds / (1 << 30)
    for name in times:
        print(
            f"  {name:12s} median {med[name]:8.1f} MB/s   best {max(mbps[name]):8.1f} MB/s   "
            f"front-process CPU {cpu[name] / gib:6.3f} s/GiB"
        )
    if tf_times:
        tf_mbps = [size / t / 1e6 for t in tf_times]
        print(
            f"  {'tensorflow':12s} median {statistics.median(tf_mbps):8.1f} MB/s   "
            f"best {max(tf_mbps):8.1f} MB/s   (GFile.read() of the whole object, TLS path)"
        )
    print(
        f"  ratio front-plain / direct : {med['front-plain'] / med['direct']:.3f}  (target >= 0.9)"
    )
    print(
        f"  ratio front-tls   / direct : {med['front-tls'] / med['direct']:.3f}  (TLS, not like for like)"
    )
    return 0


def _measure_tf(env: dict[str, str], size: int, rounds: int) -> list[float]:
    """Seconds real TensorFlow takes to read the object whole (fresh GFile per round)."""
    from emulator.replay.tf_worker import TfWorker

    code = """
import time
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    n = len(tf.io.gfile.GFile(path, "rb").read())
    times.append(time.perf_counter() - t0)
    assert n == size, n
result = times
"""
    with TfWorker(env, timeout=600) as worker:
        return worker.run(code, path=f"gs://{BUCKET}/{OBJECT}", rounds=rounds, size=size)


def _measure(
    backend_url: str, front_port: int, ctx: ssl.SSLContext, size: int, rounds: int, front_pid: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-path fetch times, and CPU seconds the front's process used while serving each path.

    With ``--in-process`` the "front process" is this one, so its CPU includes the client.
    """
    bhost, _, bport = backend_url.removeprefix("http://").partition(":")
    direct = http.client.HTTPConnection(bhost, int(bport), timeout=120)
    plain = http.client.HTTPConnection("127.0.0.1", front_port, timeout=120)
    tls = http.client.HTTPSConnection("127.0.0.1", front_port, context=ctx, timeout=120)
    tls.set_tunnel("storage.googleapis.com", 443)
    paths = {"direct": direct, "front-plain": plain, "front-tls": tls}
    buf = bytearray(1 << 20)
    path = f"/{BUCKET}/{OBJECT}"
    for conn in paths.values():  # warm up: connections, TLS handshake, page cache
        _fetch(conn, path, size, buf)
    times: dict[str, list[float]] = {k: [] for k in paths}
    cpu = dict.fromkeys(paths, 0.0)
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            c0 = _cpu_seconds(front_pid)
            times[name].append(_fetch(paths[name], path, size, buf))
            cpu[name] += _cpu_seconds(front_pid) - c0
    for conn in paths.values():
        conn.close()
    return times, cpu


if __name__ == "__main__":
    sys.exit(main())
