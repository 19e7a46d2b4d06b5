"""Soak: 32 readers through the front while it injects seeded network faults and 600 idle or
half-open connections sit on it, for a bounded time.

Run: ``python -m benchmarks.perf.soak [--seconds 20] [--readers 32] [--idle 600] [--seed 1]``

Setup: an embedded fake GCS (memory backend) with a few random objects; the front's
:class:`emulator.fakegcs.faults.FaultPlan` (seeded) answers media requests with, at the given
probabilities: a 503, a connection reset mid-body, a body truncated below its
``Content-Length``, or a short stall. Half of the readers use the plain endpoint, half the
``CONNECT`` + TLS path (what TensorFlow uses). Each reader loops until time is up: pick an
object and a random range, GET it, check every byte against the local copy, retry (new
connection) on a fault.

Hostile crowd (``--idle N``, default 600, opened before the readers start and held to the end):
a quarter each of connections that send nothing, half a request head (slowloris), a ``CONNECT``
and then no TLS handshake, and (on a direct-TLS listener, :class:`TlsListener`) a TCP connect
with no ClientHello. Every good read must still be served, byte for byte; the benchmark prints
how many of the crowd the front closed (it evicts the least-progressed when its table is full)
and its thread count, which stays bounded.

Prints: faults injected by kind, reads completed, retries, corrupted bytes (must be 0; bytes
of a cut body are checked too), p50/p99 read latency (from the first attempt to the verified
answer, retries included), and what the ledger recorded. Exit code 1 if any byte was wrong
or a reader died. Traffic goes to 127.0.0.1 only; time is bounded by ``--seconds`` (≤ 600).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import resource
import select
import socket
import statistics
import sys
import threading
import time

from emulator.fakegcs.faults import Fault, FaultPlan
from emulator.fakegcs.session import GcsEmulator
from emulator.fakegcs.tls_listener import TlsListener

BUCKET = "soak"
N_OBJECTS = 8
OBJECT_SIZE = 4 << 20
READ_SIZE = 256 << 10


#: what each quarter of the idle crowd sends, and to which port ("front" or "tls")
CROWD = (
    ("front", b""),  # connects, sends nothing
    ("front", b"GET /storage/v1/b HTTP/1.1\r\nHost: storage.googleapis.com\r\nX-Slow: "),
    ("front", b"CONNECT storage.googleapis.com:443 HTTP/1.1\r\n\r\n"),  # then no handshake
    ("tls", b""),  # direct TLS: no ClientHello
)


def open_crowd(n: int, ports: dict[str, int]) -> list[socket.socket]:
    """``n`` idle or half-open loopback connections, a quarter of each kind of :data:`CROWD`."""
    out = []
    for i in range(n):
        where, first = CROWD[i % len(CROWD)]
        s = socket.create_connection(("127.0.0.1", ports[where]), timeout=10)
        if first:
            s.sendall(first)
        out.append(s)
    return out


def closed_by_front(crowd: list[socket.socket]) -> list[int]:
    """How many crowd sockets of each :data:`CROWD` kind the front has closed (readable with
    EOF or reset; a ``CONNECT`` answer of 200 is read past)."""
    n = [0] * len(CROWD)
    poller = select.poll()
    for s in crowd:
        s.setblocking(False)
        poller.register(s, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(0)}
    for i, s in enumerate(crowd):
        if s.fileno() not in ready:
            continue
        try:
            while s.recv(65536):
                pass
            n[i % len(CROWD)] += 1  # EOF
        except BlockingIOError:
            pass  # only the CONNECT answer: still open
        except OSError:
            n[i % len(CROWD)] += 1  # reset
    return n


def _front_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("front-"))


class Reader(threading.Thread):
    """One client: range reads in a loop, verifying bytes, reconnecting after faults."""

    def __init__(self, idx: int, emu: GcsEmulator, blobs: list[bytes], stop_at: float) -> None:
        super().__init__(name=f"soak-reader-{idx}", daemon=True)
        self.emu, self.blobs, self.stop_at = emu, blobs, stop_at
        self.use_tls = idx % 2 == 1
        self.rng = random.Random(idx)
        self.latencies: list[float] = []
        self.retries = 0
        self.corrupted = 0
        self.error: BaseException | None = None
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        front = self.emu.front
        if self.use_tls:
            c = http.client.HTTPSConnection(
                "127.0.0.1", front.port, context=front.client_ssl_context(), timeout=30
            )
            c.set_tunnel("storage.googleapis.com", 443)
            return c
        return http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)

    def _check(self, want: bytes, got: bytes) -> None:
        n = min(len(want), len(got))
        if want[:n] != got[:n]:
            self.corrupted += sum(a != b for a, b in zip(want[:n], got[:n], strict=True))
        self.corrupted += max(0, len(got) - len(want))

    def run(self) -> None:
        try:
            while time.monotonic() < self.stop_at:
                i = self.rng.randrange(len(self.blobs))
                off = self.rng.randrange(OBJECT_SIZE - READ_SIZE)
                want = self.blobs[i][off : off + READ_SIZE]
                t0 = time.perf_counter()
                while time.monotonic() < self.stop_at + 30:
                    if self.conn is None:
                        self.conn = self._connect()
                    try:
                        self.conn.request(
                            "GET", f"/{BUCKET}/obj-{i}",
                            headers={"Range": f"bytes={off}-{off + READ_SIZE - 1}"},
                        )  # fmt: skip
                        resp = self.conn.getresponse()
                        body = resp.read()
                    except http.client.IncompleteRead as exc:  # truncated: what came must be right
                        self._check(want, exc.partial)
                        self._retry()
                        continue
                    except (OSError, http.client.HTTPException):
                        self._retry()
                        continue
                    if resp.status == 503:
                        self.retries += 1
                        continue
                    if resp.status != 206:
                        raise RuntimeError(f"unexpected HTTP {resp.status}")
                    self._check(want, body)
                    if len(body) != len(want):
                        self.corrupted += abs(len(want) - len(body))
                    self.latencies.append(time.perf_counter() - t0)
                    break
        except BaseException as exc:  # reported by main()
            self.error = exc
        finally:
            if self.conn is not None:
                self.conn.close()

    def _retry(self) -> None:
        self.retries += 1
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--readers", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-rate", type=float, default=0.02, help="probability per fault kind")
    ap.add_argument("--idle", type=int, default=600, help="idle/half-open connections held")
    args = ap.parse_args(argv)
    if not 1 <= args.seconds <= 600 or not 1 <= args.readers <= 128:
        ap.error("--seconds must be 1..600 and --readers 1..128")
    if not 0 <= args.idle <= 4000:
        ap.error("--idle must be 0..4000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.idle + 4 * args.readers + 256  # both ends live in this process
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    if not 0 < args.fault_rate <= 0.2:
        ap.error("--fault-rate must be in (0, 0.2]")
    rng = random.Random(args.seed)
    blobs = [rng.randbytes(OBJECT_SIZE) for _ in range(N_OBJECTS)]
    with GcsEmulator() as emu:
        emu.backend.create_bucket(BUCKET)
        for i, blob in enumerate(blobs):
            emu.backend.put_object(BUCKET, f"obj-{i}", blob)
        plan = FaultPlan(seed=args.seed)
        p = args.fault_rate
        for fault in (
            Fault(status=503, kind="media", probability=p, times=None),
            Fault(action="reset", kind="media", probability=p, times=None),
            Fault(action="truncate", kind="media", probability=p, times=None),
            Fault(action="stall", stall_s=0.2, kind="media", probability=p, times=None),
        ):
            plan.add(fault)
        emu.front.faults = plan
        listener = TlsListener(emu.front)
        crowd = open_crowd(args.idle, {"front": emu.front.port, "tls": listener.port})
        mark = emu.ledger.mark()
        stop_at = time.monotonic() + args.seconds
        readers = [Reader(i, emu, blobs, stop_at) for i in range(args.readers)]
        t0 = time.monotonic()
        for r in readers:
            r.start()
        for r in readers:
            r.join(timeout=args.seconds + 90)
        wall = time.monotonic() - t0
        threads = _front_threads()
        closed = closed_by_front(crowd)
        emu.ledger.wait_quiet(0.2, timeout=10)
        recs = emu.ledger.since(mark)
        for c in crowd:
            c.close()
        listener.close()
    lat = sorted(x for r in readers for x in r.latencies)
    done = len(lat)
    corrupted = sum(r.corrupted for r in readers)
    dead = [r for r in readers if r.error is not None or r.is_alive()]
    print(
        f"soak: {args.readers} readers ({args.readers // 2} TLS) for {args.seconds:g} s "
        f"(wall {wall:.1f} s), seed {args.seed}, fault rate {p:g} per kind, "
        f"{os.cpu_count()} CPUs"
    )
    print("  faults injected    : " + ", ".join(f"{k} {v}" for k, v in plan.by_action.items())
          + f" (total {plan.injected})")  # fmt: skip
    print(
        f"  reads completed    : {done} ({done / wall:.0f}/s), retries {sum(r.retries for r in readers)}"
    )
    print(f"  corrupted bytes    : {corrupted}")
    print(
        f"  idle crowd         : {args.idle} held; closed by the front: silent "
        f"{closed[0]}, half head {closed[1]}, CONNECT without handshake {closed[2]}, TLS "
        f"without ClientHello {closed[3]}; front threads at the end {threads}"
    )
    if lat:
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000
        print(f"  read latency       : p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    aborted = sum(1 for r in recs if r.extra.get("aborted"))
    injected = sum(1 for r in recs if r.extra.get("injected"))
    print(f"  ledger             : {len(recs)} records, {injected} injected, {aborted} aborted")
    for r in dead:
        print(f"  reader {r.name} failed: {r.error!r}", file=sys.stderr)
    return 1 if corrupted or dead else 0


if __name__ == "__main__":
    raise SystemExit(main())
