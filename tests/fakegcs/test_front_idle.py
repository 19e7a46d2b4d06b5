"""Issue 19 item 3: idle and half-open connections cannot lock anyone out.

Over real loopback sockets: hundreds of connections that send nothing, half a head, or stop in
the TLS handshake, on the front's port and on a direct-TLS listener; a normal client is still
served, the front's threads stay bounded, junk gets its 400 at once, a worker that cannot start
costs one connection only, and closing does not wait on pending handshakes. Every wait is
bounded by a socket timeout; nothing here asserts on speed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import tracemalloc

import pytest

from emulator.fakegcs.front import Front
from emulator.fakegcs.tls_listener import TlsListener

N_IDLE = 600


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _open(port: int, n: int, first: bytes = b"") -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first:
            s.sendall(first)
        out.append(s)
    return out


def _front_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("front-"))


def _get_plain(front: Front) -> int:
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        c.request("GET", "/storage/v1/b")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def _get_tls(front: Front, listener: TlsListener | None) -> int:
    ctx = front.client_ssl_context()
    if listener is None:  # CONNECT + TLS, as TensorFlow does
        c = http.client.HTTPSConnection("127.0.0.1", front.port, context=ctx, timeout=10)
        c.set_tunnel("storage.googleapis.com", 443)
    else:
        ctx.check_hostname = False
        c = http.client.HTTPSConnection("127.0.0.1", listener.port, context=ctx, timeout=10)
    try:
        c.request("GET", "/storage/v1/b", headers={"Host": "storage.googleapis.com"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


@pytest.mark.parametrize("where", ["plain", "tls"])
def test_600_idle_and_half_open_connections_lock_nobody_out(gcs_emulator, where):
    with Front(gcs_emulator.backend.endpoint) as front:
        listener = TlsListener(front) if where == "tls" else None
        port = listener.port if listener is not None else front.port
        threads_before = _front_threads()
        rss_before = _rss_bytes()
        tracemalloc.start()
        held: list[socket.socket] = []
        try:
            py_before = tracemalloc.get_traced_memory()[0]
            held += _open(port, N_IDLE // 3)  # idle (TLS: half-open, no client hello)
            if listener is None:  # half a head, and a CONNECT that never starts TLS
                held += _open(port, N_IDLE // 3, b"GET /storage/v1/b HTTP/1.1\r\nHost: x\r\n")
                held += _open(
                    port,
                    N_IDLE // 3,
                    b"CONNECT storage.googleapis.com:443 HTTP/1.1\r\nHost: storage.googleapis.com:443\r\n\r\n",
                )
            else:  # half a client hello, and half a head inside a finished handshake
                held += _open(port, N_IDLE // 3, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                ctx = front.client_ssl_context()
                ctx.check_hostname = False
                for s in _open(port, N_IDLE // 3):
                    tls = ctx.wrap_socket(s, server_hostname="storage.googleapis.com")
                    tls.sendall(b"GET /storage/v1/b HTTP/1.1\r\n")
                    held.append(tls)
            threading.Event().wait(0.5)
            assert front.open_connections() == N_IDLE  # all held, none refused or evicted
            assert front.loop.evicted == 0 and front.refused_connections == 0
            for _ in range(3):  # a normal client is served, on both kinds of port
                assert _get_plain(front) == 200
                assert _get_tls(front, listener) == 200
            grown_py = tracemalloc.get_traced_memory()[0] - py_before
            assert _front_threads() - threads_before <= 1 + front.max_workers  # not per conn
            assert grown_py < 48 << 20, f"{grown_py} bytes of Python objects for {N_IDLE}"
            assert _rss_bytes() - rss_before < 160 << 20
        finally:
            tracemalloc.stop()
            for s in held:
                s.close()
            if listener is not None:
                listener.close()


def test_junk_and_a_tls_hello_on_the_plain_port_get_400_at_once(gcs_emulator):
    # the idle and request timeouts are far beyond the socket timeout: only an answer made
    # as soon as the bytes showed they are junk arrives within it
    with Front(gcs_emulator.backend.endpoint, idle_timeout=300, request_timeout=300) as front:
        for junk in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
            b"hello there\r\n",
            b"GET / HTTP/1.1\r\n\x00\x01",
        ):
            with socket.create_connection(("127.0.0.1", front.port), timeout=5) as s:
                s.sendall(junk)
                got = s.recv(4096)
            assert got.startswith(b"HTTP/1.1 400"), (junk, got)
        assert [r.status for r in front.ledger.records()] == [400, 400, 400]
        assert all("bad request" in r.extra["refused"] for r in front.ledger.records())


def test_a_head_arriving_in_pieces_is_still_served(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint) as front:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as s:
            for piece in (b"GE", b"T /storage/v1/b HT", b"TP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
                s.sendall(piece)
                threading.Event().wait(0.3)  # past the worker's wait: the loop holds it
            got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")


class _FlakyFront(Front):
    failures = 1

    def _start_thread(self, t):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("can't start new thread")
        super()._start_thread(t)


def test_tls_listener_survives_a_worker_that_cannot_start(gcs_emulator, capfd):
    with _FlakyFront(gcs_emulator.backend.endpoint) as front, TlsListener(front) as listener:
        with pytest.raises((OSError, http.client.HTTPException)):
            _get_tls(front, listener)  # its worker did not start: closed, nothing else
        assert _get_tls(front, listener) == 200
        assert _get_tls(front, None) == 200
    assert "connection failed to start" in capfd.readouterr().err


def test_close_does_not_wait_on_pending_handshakes(gcs_emulator):
    front = Front(gcs_emulator.backend.endpoint)
    listener = TlsListener(front)
    held = _open(listener.port, 30)  # TCP up, no client hello
    held += _open(
        front.port,
        30,
        b"CONNECT storage.googleapis.com:443 HTTP/1.1\r\nHost: storage.googleapis.com:443\r\n\r\n",
    )
    try:
        threading.Event().wait(0.3)
        assert front.open_connections() == 60
        assert _front_threads() <= 1 + 30  # the loop and the CONNECTs' workers, none per handshake
        listener.close()
        front.close()
        assert not front.loop.thread.is_alive()
        assert front.open_connections() == 0
        for s in held:  # every client sees its connection closed
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except OSError:
                pass
            assert b"HTTP/1.1 200" in data or data == b""
    finally:
        for s in held:
            s.close()
        front.close()


def test_a_handshake_that_fails_costs_nothing_more(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint) as front, TlsListener(front) as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port
            try:
                got = s.recv(4096)
            except OSError:
                got = b""
            assert not got.startswith(b"HTTP")  # no answer: the handshake failed, closed
        bad = ssl.create_default_context()  # does not trust the per-run CA
        s = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
        with s, pytest.raises(ssl.SSLError):
            bad.wrap_socket(s, server_hostname="storage.googleapis.com")
        assert _get_tls(front, listener) == 200
        threading.Event().wait(0.3)
        assert front.open_connections() == 0
