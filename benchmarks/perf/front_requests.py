"""Many small requests (as a test suite makes): straight at fake-gcs-server vs through the front.

Run: ``python -m benchmarks.perf.front_requests [--rounds 5] [--ops 300]``

One ``gcs-hook serve`` process (the front and its fake-gcs-server) holds 20 objects of 64 KiB.
Two clients, each run straight at the backend and through the front's plain endpoint, in an
order reversed every other round:

- ``gcsfs``: a ``gcsfs.GCSFileSystem`` (its own event loop and connection pool) doing, per op,
  ``info`` of an object, ``ls`` of a prefix, a 4 KiB ``cat_file`` range and, every tenth op,
  ``pipe`` of a new 1 KiB object (a metadata GET, a listing, a ranged media GET, an upload:
  what a test suite's requests look like);
- ``http``: the same reads as raw ``http.client`` requests on one keep-alive connection (a
  client with almost no cost of its own: the front's per-request cost shows fully).

Printed: milliseconds per request (median over rounds), the ratio front / direct (target for
the gcsfs client: <= 1.3) and the front process's CPU per request. Traffic goes only to
127.0.0.1, bounded by ``rounds x ops x 4`` requests per client and path.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from benchmarks.perf.servers import ServeProcess, cpu_times

BUCKET = "bench-requests"
N_OBJECTS = 20


def _http_ops(host: str, port: int, ops: int) -> Callable[[], int]:
    conn = http.client.HTTPConnection(host, port, timeout=60)

    def run() -> int:
        n = 0
        for i in range(ops):
            o = f"o{i % N_OBJECTS}"
            for path, extra in (
                (f"/storage/v1/b/{BUCKET}/o/{o}", {}),
                (f"/storage/v1/b/{BUCKET}/o?prefix=o1", {}),
                (f"/download/storage/v1/b/{BUCKET}/o/{o}?alt=media", {"Range": "bytes=0-4095"}),
            ):
                conn.request("GET", path, headers={"Host": "storage.googleapis.com", **extra})
                r = conn.getresponse()
                r.read()
                if r.status not in (200, 206):
                    raise RuntimeError(f"HTTP {r.status} for {path}")
                n += 1
        return n

    return run


def _gcsfs_ops(url: str, ops: int, tag: str) -> Callable[[], int]:
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # as gcs-hook env says
    import gcsfs

    fs = gcsfs.GCSFileSystem(endpoint_url=url, token="anon", skip_instance_cache=True)
    state = {"round": 0}

    def run() -> int:
        state["round"] += 1
        n = 0
        for i in range(ops):
            o = f"{BUCKET}/o{i % N_OBJECTS}"
            fs.info(o)
            fs.ls(f"{BUCKET}/", detail=False, refresh=True)
            fs.cat_file(o, start=0, end=4096)
            n += 3
            if i % 10 == 0:
                fs.pipe_file(f"{BUCKET}/new/{tag}-{state['round']}-{i}", b"x" * 1024)
                n += 1
        return n

    return run


def measure(serve: ServeProcess, rounds: int, ops: int) -> dict[tuple[str, str], dict]:
    bhost, _, bport = serve.backend_url.removeprefix("http://").partition(":")
    front_url = f"http://127.0.0.1:{serve.front_port}"
    clients = {
        ("gcsfs", "direct"): _gcsfs_ops(serve.backend_url, ops, "d"),
        ("gcsfs", "front"): _gcsfs_ops(front_url, ops, "f"),
        ("http", "direct"): _http_ops(bhost, int(bport), ops),
        ("http", "front"): _http_ops("127.0.0.1", serve.front_port, ops),
    }
    for run in clients.values():  # warm: connections, imports, the backend's first answers
        run()
    out = {k: {"ms": [], "cpu": 0.0, "n": 0} for k in clients}
    keys = list(clients)
    for r in range(rounds):
        for key in keys if r % 2 == 0 else reversed(keys):
            u0, s0 = cpu_times(serve.pid)
            t0 = time.perf_counter()
            n = clients[key]()
            dt = time.perf_counter() - t0
            u1, s1 = cpu_times(serve.pid)
            st = out[key]
            st["ms"].append(dt / n * 1e3)
            st["cpu"] += (u1 - u0) + (s1 - s0)
            st["n"] += n
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=300)
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 10 <= args.ops <= 10_000:
        ap.error("--rounds must be 1..50 and --ops 10..10000")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "seed", BUCKET))
        for i in range(N_OBJECTS):
            with open(os.path.join(tmp, "seed", BUCKET, f"o{i}"), "wb") as f:
                f.write(os.urandom(64 << 10))
        serve = ServeProcess(os.path.join(tmp, "seed"))
        try:
            out = measure(serve, args.rounds, args.ops)
        finally:
            serve.close()
    print(f"small requests, {args.rounds} rounds of {args.ops} ops, {os.cpu_count()} CPUs "
          "(median ms per request; front CPU: the gcs-hook serve process)")  # fmt: skip
    for client in ("gcsfs", "http"):
        d, f = out[(client, "direct")], out[(client, "front")]
        md, mf = statistics.median(d["ms"]), statistics.median(f["ms"])
        print(f"  {client:6s} direct {md:7.3f} ms   front {mf:7.3f} ms   front/direct "
              f"{mf / md:5.2f}   front CPU {f['cpu'] / f['n'] * 1e3:6.3f} ms/request")  # fmt: skip
    print("  target (gcsfs, a request-heavy client): front/direct <= 1.3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
