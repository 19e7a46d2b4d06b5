"""Throughput and CPU per GiB of the front: direct to fake-gcs-server vs plain, TLS, pass-through.

Run: ``python -m benchmarks.perf.front_throughput [--size-mib 64] [--rounds 5] [--clients 1,8]``

Four paths, each client on one keep-alive connection doing Range GETs of the whole object and
reading them with ``readinto`` into one preallocated buffer:

- ``direct``: plain HTTP to the backend (``GET /<bucket>/<object>``, ``Host:
  storage.googleapis.com``);
- ``plain``: the same request to the front's plain-HTTP endpoint (gcsfs, google-cloud-storage);
- ``tls``: ``CONNECT storage.googleapis.com:443`` + TLS terminated by the front (what
  TensorFlow does);
- ``pass-through``: the same through the front of ``gcs-hook record --upstream`` (its own
  process) to an upstream ``gcs-hook serve --tls``: TLS in and out of the measured process.

Every (path, clients) pair runs once per round, in an order reversed every other round, so
background load hits them alike. With N clients, N threads read at once, each on its own
connection. Printed per pair: MB/s (10^6 bytes/s; median and best over rounds), the measured
process's CPU per GiB (user + system, from ``/proc``, summed over rounds) and its CPU time over
wall time (above 1: it used more than one core). The front's numbers are the ``gcs-hook serve``
process for plain/TLS and the pass-through process for pass-through (``direct`` has no front:
its column is the backend's CPU, for scale). Traffic goes only to 127.0.0.1; total bytes are
bounded by ``rounds × 4 × (sum of clients) × size``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.perf.servers import PassThroughProcess, ServeProcess, cpu_times

BUCKET = "bench-front"
OBJECT = "big.bin"
PATHS = ("direct", "plain", "tls", "pass-through")
#: the issue's goals, printed beside the numbers (1 client; CPU of the front process)
TARGETS = {"plain": (0.9, 0.15), "tls": (0.5, 0.6)}


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


@dataclass
class Stats:
    """One (path, clients) pair over the rounds."""

    seconds: list[float] = field(default_factory=list)
    user: float = 0.0
    sys: float = 0.0
    wall: float = 0.0
    bytes: int = 0


def _round(
    connect: Callable[[], http.client.HTTPConnection], clients: int, size: int, pid: int
) -> tuple[float, float, float]:
    """All ``clients`` read the object once at the same time: (wall s, user s, sys s)."""
    conns = [connect() for _ in range(clients)]
    bufs = [bytearray(1 << 20) for _ in conns]
    path = f"/{BUCKET}/{OBJECT}"
    for c, b in zip(conns, bufs, strict=True):  # warm: connection, TLS handshake, page cache
        _fetch(c, path, 1 << 20, b)
    errors: list[BaseException] = []

    def read(i: int) -> None:
        try:
            _fetch(conns[i], path, size, bufs[i])
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(clients)]
    u0, s0 = cpu_times(pid)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    u1, s1 = cpu_times(pid)
    for c in conns:
        c.close()
    if errors:
        raise errors[0]
    return wall, u1 - u0, s1 - s0


def _connectors(
    serve: ServeProcess, pt: PassThroughProcess
) -> dict[str, tuple[Callable[[], http.client.HTTPConnection], int]]:
    """Per path: how a client connects, and the pid whose CPU is measured."""
    bhost, _, bport = serve.backend_url.removeprefix("http://").partition(":")
    front_ctx = ssl.create_default_context(cafile=serve.env["CURL_CA_BUNDLE"])
    pt_ctx = ssl.create_default_context(cafile=pt.ca)

    def tunnel(port: int, ctx: ssl.SSLContext) -> Callable[[], http.client.HTTPConnection]:
        def make() -> http.client.HTTPConnection:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=120)
            c.set_tunnel("storage.googleapis.com", 443)
            return c

        return make

    return {
        "direct": (
            lambda: http.client.HTTPConnection(bhost, int(bport), timeout=120),
            serve.backend_pid or serve.pid,
        ),  # fmt: skip
        "plain": (
            lambda: http.client.HTTPConnection("127.0.0.1", serve.front_port, timeout=120),
            serve.pid,
        ),  # fmt: skip
        "tls": (tunnel(serve.front_port, front_ctx), serve.pid),
        "pass-through": (tunnel(pt.port, pt_ctx), pt.pid),
    }


def measure(
    serve: ServeProcess, pt: PassThroughProcess, size: int, rounds: int, clients: list[int]
) -> dict[tuple[str, int], Stats]:
    """Every (path, clients) pair once per round, interleaved (see the module docstring)."""
    conns = _connectors(serve, pt)
    pairs = [(p, k) for k in clients for p in PATHS]
    stats = {pair: Stats() for pair in pairs}
    for r in range(rounds):
        for path, k in pairs if r % 2 == 0 else reversed(pairs):
            connect, pid = conns[path]
            wall, user, sys_s = _round(connect, k, size, pid)
            st = stats[(path, k)]
            st.seconds.append(wall)
            st.user, st.sys, st.wall = st.user + user, st.sys + sys_s, st.wall + wall
            st.bytes += k * size
    return stats


def report(stats: dict[tuple[str, int], Stats], size: int, rounds: int) -> None:
    print(f"Range GETs of {size} bytes per client, {rounds} rounds, {os.cpu_count()} CPUs; "
          "CPU of the front process (direct: of the backend)")  # fmt: skip
    print(f"  {'path':13s} {'clients':>7s} {'median MB/s':>12s} {'best MB/s':>10s} "
          f"{'CPU s/GiB':>10s} {'(user+sys)':>12s} {'CPU/wall':>9s} {'vs direct':>10s}")  # fmt: skip
    for (path, k), st in stats.items():
        mbps = [k * size / t / 1e6 for t in st.seconds]
        direct = stats[("direct", k)]
        d_mbps = statistics.median(k * size / t / 1e6 for t in direct.seconds)
        gib = st.bytes / (1 << 30)
        print(
            f"  {path:13s} {k:7d} {statistics.median(mbps):12.1f} {max(mbps):10.1f} "
            f"{(st.user + st.sys) / gib:10.3f} {f'{st.user / gib:.2f}+{st.sys / gib:.2f}':>12s} "
            f"{(st.user + st.sys) / st.wall:9.2f} {statistics.median(mbps) / d_mbps:10.3f}"
        )
    one = min(k for _, k in stats)
    for path, (ratio, cpu) in TARGETS.items():
        print(f"  target, {path}, {one} client: >= {ratio} x direct, <= {cpu} CPU s/GiB")
    many = max(k for _, k in stats)
    if many != one:
        for path in ("plain", "tls", "pass-through"):
            a, b = stats[(path, one)], stats[(path, many)]
            ratio_s = "n/a (too little CPU time to tell: use a larger --size-mib)"
            if a.user + a.sys > 0:
                per = ((b.user + b.sys) / b.bytes) / ((a.user + a.sys) / a.bytes)
                ratio_s = f"{per:.2f} (target <= 1.2, and CPU/wall > 1)"
            print(f"  {path}: CPU per GiB with {many} clients / with {one}: {ratio_s}")


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", default="1,8", help="client counts, comma-separated (1..32)")
    ap.add_argument(
        "--tf",
        action="store_true",
        help="also time real TensorFlow (subprocess, default GCS settings) reading the object "
        "through the front's CONNECT/TLS path",
    )
    args = ap.parse_args(argv)
    try:
        clients = sorted({int(x) for x in args.clients.split(",")})
    except ValueError:
        ap.error("--clients takes numbers, e.g. 1,8")
    if not 1 <= args.size_mib <= 1024 or not 1 <= args.rounds <= 50:
        ap.error("--size-mib must be 1..1024 and --rounds 1..50")
    if not all(1 <= k <= 32 for k in clients):
        ap.error("--clients must be 1..32 each")
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        seed = os.path.join(tmp, "seed", BUCKET)
        os.makedirs(seed)
        with open(os.path.join(seed, OBJECT), "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        serve = ServeProcess(os.path.join(tmp, "seed"), "--tls")
        pt = None
        try:
            assert serve.tls_port is not None and serve.ca is not None
            pt = PassThroughProcess(serve.tls_port, serve.ca)
            stats = measure(serve, pt, size, args.rounds, clients)
            tf_times = _measure_tf(dict(serve.env), size, args.rounds) if args.tf else []
        finally:
            if pt is not None:
                pt.close()
            serve.close()
    report(stats, size, args.rounds)
    if tf_times:
        tf_mbps = [size / t / 1e6 for t in tf_times]
        print(f"  tensorflow: median {statistics.median(tf_mbps):.1f} MB/s, best "
              f"{max(tf_mbps):.1f} MB/s (GFile.read() of the whole object, TLS path)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
