"""Issue 11 regressions at the front: stalls (2), silent death (3), bounds (4), ledger (7), faults.

Every test talks to 127.0.0.1 only, with socket timeouts bounding how long anything may take;
nothing here asserts on speed.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import tracemalloc

import pytest

from emulator.fakegcs.faults import Fault, FaultPlan
from emulator.fakegcs.front import Front
from emulator.fakegcs.ledger import Ledger, RequestRecord


def plain(front: Front, timeout: float = 10) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", front.port, timeout=timeout)


def tls(front: Front, timeout: float = 10) -> http.client.HTTPSConnection:
    c = http.client.HTTPSConnection(
        "127.0.0.1", front.port, context=front.client_ssl_context(), timeout=timeout
    )
    c.set_tunnel("storage.googleapis.com", 443)
    return c


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r, r.read()


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                piece = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not piece:
                break
            out += piece
            if b"\r\n\r\n" in out and b"connection: close" not in out.lower():
                head, _, body = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    low = line.lower()
                    if low.startswith(b"content-length:") and len(body) >= int(low[15:]):
                        return out
        return out


# -- finding 2: no cross-client stalls -------------------------------------------------------------
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_unfinished_upload_does_not_stall_other_clients(gcs_emulator, gcs_bucket, framing):
    gcs_emulator.backend.put_object(gcs_bucket, "o", b"abc")
    front = gcs_emulator.front
    path = f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=slow"
    frame = (
        "Content-Length: 1000000" if framing == "content-length" else "Transfer-Encoding: chunked"
    )
    slow = socket.create_connection(("127.0.0.1", front.port), timeout=10)
    try:
        slow.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{frame}\r\n\r\n".encode())
        slow.sendall(b"x" * 1000 if framing == "content-length" else b"3e8\r\n" + b"x" * 1000)
        for conn in (plain(front, 5), tls(front, 5)):  # each must answer within its timeout
            r, body = get(conn, f"/{gcs_bucket}/o")
            conn.close()
            assert (r.status, body) == (200, b"abc")
        up = plain(front, 5)
        up.request("POST", path.replace("slow", "other"), body=b"fast")
        assert up.getresponse().status == 200
        up.close()
    finally:
        slow.close()
    assert gcs_emulator.backend.get_object(gcs_bucket, "other") == b"fast"


def test_chunked_with_content_length_uses_chunked_and_closes(gcs_emulator, gcs_bucket):
    """TF sends both on its token POST; the chunked body wins (RFC 9112), no stale length."""
    front = gcs_emulator.front
    path = f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=te"
    out = raw_exchange(
        front.port,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 999\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
    )
    assert out.startswith(b"HTTP/1.1 200") and b"connection: close" in out.lower()
    assert gcs_emulator.backend.get_object(gcs_bucket, "te") == b"hello"


def test_conflicting_framing_is_400_at_once(gcs_emulator, gcs_ledger):
    mark = gcs_ledger.mark()
    out = raw_exchange(
        gcs_emulator.front.port,
        b"POST /upload/storage/v1/b/x/o HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
        b"Content-Length: 10\r\n\r\n",
        timeout=5,
    )
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 501")
    assert [r.status for r in gcs_ledger.since(mark)] in ([400], [501])


def test_bare_lf_head_is_answered(gcs_emulator, gcs_bucket):
    gcs_emulator.backend.put_object(gcs_bucket, "lf", b"bare")
    out = raw_exchange(
        gcs_emulator.front.port, f"GET /{gcs_bucket}/lf HTTP/1.1\nHost: x\n\n".encode(), timeout=5
    )
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"bare")


def test_trickled_head_hits_the_request_deadline(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint, request_timeout=1.0, idle_timeout=0.6) as front:
        s = socket.create_connection(("127.0.0.1", front.port), timeout=10)
        got = b""
        try:
            for ch in b"GET /storage/v1/b HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
                s.sendall(bytes([ch]))
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) if _readable(s) else b"":
                    break
                threading.Event().wait(0.05)  # ~2 s of trickle: past the 1 s deadline
            got = s.recv(4096)
        except OSError:
            pass
        finally:
            s.close()
        assert got.startswith(b"HTTP/1.1 408")
        assert [r.status for r in front.ledger.records()] == [408]


def _readable(s: socket.socket) -> bool:
    import select

    return bool(select.select([s], [], [], 0)[0])


# -- finding 3: fail loudly --------------------------------------------------------------------
class _FlakyFront(Front):
    failures = 1

    def _start_thread(self, t):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("can't start new thread")
        super()._start_thread(t)


def test_acceptor_survives_a_thread_that_cannot_start(gcs_emulator, capfd):
    with _FlakyFront(gcs_emulator.backend.endpoint) as front:
        r, body = get(plain(front), "/storage/v1/b")
        assert r.status == 503 and b"can't start new thread" in body
        r, _ = get(plain(front), "/storage/v1/b")
        assert r.status == 200
    err = capfd.readouterr().err
    assert "connection failed to start" in err
    front.close()  # idempotent, and no "cannot join thread" error


def test_ledger_write_error_is_reported_and_serving_goes_on(gcs_emulator, capfd):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (a disk that is always full)")
    ledger = Ledger("/dev/full")  # every write fails with ENOSPC, like a full disk
    with Front(gcs_emulator.backend.endpoint, ledger=ledger) as front:
        conn = plain(front)
        for _ in range(4):
            r, body = get(conn, "/storage/v1/b")
            assert r.status == 200 and json.loads(body)["kind"] == "storage#buckets"
    assert ledger.write_errors == 4 and len(ledger) == 4
    err = capfd.readouterr().err
    assert err.count("cannot write the ledger") == 1 and "still serving" in err


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=loop, daemon=True).start()
    return srv, held


def test_hung_backend_gives_504(gcs_emulator):
    srv, held = _silent_server()
    try:
        port = srv.getsockname()[1]
        with Front(f"http://127.0.0.1:{port}", backend_timeout=0.5) as front:
            r, body = get(plain(front), "/storage/v1/b/x/o")
            assert r.status == 504
            assert json.loads(body)["error"]["message"] == "backend did not answer in 0.5 s"
            assert front.ledger.records()[-1].status == 504
    finally:
        srv.close()
        for c in held:
            c.close()


# -- finding 4: bounded resources -----------------------------------------------------------------
def test_at_the_cap_an_idle_connection_makes_room(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint, max_connections=3) as front:
        idle = [socket.create_connection(("127.0.0.1", front.port), timeout=5) for _ in range(3)]
        try:
            threading.Event().wait(0.2)  # let the loop register them
            r, _ = get(plain(front), "/storage/v1/b")
            assert r.status == 200
            assert front.loop.evicted >= 1 and front.open_connections() <= 3
            assert any(s.recv(1) == b"" for s in idle)  # the evicted one was closed, no answer
        finally:
            for s in idle:
                s.close()


def test_connection_cap_answers_503_when_all_are_busy_and_recovers(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint, max_connections=3, request_timeout=30) as front:
        busy = [socket.create_connection(("127.0.0.1", front.port), timeout=5) for _ in range(3)]
        try:
            for s in busy:  # a whole head, a body that never comes: a worker waits on each
                s.sendall(b"POST /upload/storage/v1/b/x/o HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 100\r\n\r\n")  # fmt: skip
            threading.Event().wait(0.3)
            r, body = get(plain(front), "/storage/v1/b")
            assert r.status == 503 and b"too many connections (limit 3)" in body
            busy.pop().close()
            for _ in range(50):  # the freed slot comes back once its worker notices the close
                r, _ = get(plain(front), "/storage/v1/b")
                if r.status == 200:
                    break
                threading.Event().wait(0.05)
            assert r.status == 200
        finally:
            for s in busy:
                s.close()
        assert front.refused_connections >= 1
        assert 503 in [r.status for r in front.ledger.records()]


def test_idle_connections_hold_no_forwarding_buffers(gcs_emulator):
    with Front(gcs_emulator.backend.endpoint) as front:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            conns = [
                socket.create_connection(("127.0.0.1", front.port), timeout=5) for _ in range(60)
            ]
            threading.Event().wait(0.3)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        for c in conns:
            c.close()
        assert grown < 8 << 20, f"{grown} bytes for 60 idle connections"
        assert front.buffers.idle() == 0


def test_ledger_window_spills_and_queries_stay_exact(tmp_path):
    ledger = Ledger(window=10)
    mark_at = None
    for i in range(1, 36):
        if i == 20:
            mark_at = ledger.mark()
        ledger.append(
            RequestRecord(
                seq=0, t=float(i), conn_id=1, host="h", method="GET", path=f"/{i}", query={},
                range=None, status=200, bytes_out=i, bytes_in=0, principal="p",
                kind="media" if i % 2 else "list",
            )
        )  # fmt: skip
    assert len(ledger._records) == 10 and len(ledger) == 35
    assert [r.seq for r in ledger.records()] == list(range(1, 36))
    assert [r.bytes_out for r in ledger.records(kind="media")] == list(range(1, 36, 2))
    assert [r.seq for r in ledger.since(mark_at)] == list(range(20, 36))
    ledger.to_jsonl(tmp_path / "all.jsonl")
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 35
    ledger.clear()
    assert len(ledger) == 0 and ledger.records() == []


# -- finding 7: ledger completeness and protocol ----------------------------------------------------
def test_garbage_head_gets_400_and_a_record(gcs_emulator, gcs_ledger):
    mark = gcs_ledger.mark()
    out = raw_exchange(gcs_emulator.front.port, b"THIS IS NOT HTTP\r\n\r\n", timeout=5)
    assert out.startswith(b"HTTP/1.1 400")
    assert [(r.status, bool(r.extra.get("refused"))) for r in gcs_ledger.since(mark)] == [
        (400, True)
    ]


def test_http2_preface_is_refused_not_forwarded(gcs_emulator, gcs_ledger):
    mark = gcs_ledger.mark()
    out = raw_exchange(gcs_emulator.front.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", timeout=5)
    assert out.startswith(b"HTTP/1.1 505")
    recs = gcs_ledger.since(mark)
    assert [(r.method, r.status) for r in recs] == [("PRI", 505)]


def test_aborted_download_is_marked(gcs_emulator, gcs_bucket, gcs_ledger):
    blob = os.urandom(8 << 20)
    gcs_emulator.backend.put_object(gcs_bucket, "big", blob)
    for conn_fn in (plain, tls):
        mark = gcs_ledger.mark()
        conn = conn_fn(gcs_emulator.front)
        conn.request("GET", f"/{gcs_bucket}/big")
        r = conn.getresponse()
        r.read(1000)
        conn.sock.close()
        conn.close()
        assert gcs_ledger.wait_for(lambda recs, m=mark: any(x.seq > m for x in recs), timeout=10)
        rec = gcs_ledger.since(mark, bucket=gcs_bucket)[0]
        assert rec.extra.get("aborted") and rec.bytes_out < len(blob)


@pytest.mark.parametrize(
    "rng, status, body",
    [
        ("bytes=10-20", 416, None),
        ("bytes=99999999999999999999999-", 416, None),
        ("bytes=abc", 200, b"0123456789"),
        ("bytes=5-3", 200, b"0123456789"),
        ("bytes=5-", 206, b"56789"),
        ("bytes=5-99999999999999999999999", 206, b"56789"),
    ],
)
def test_range_follows_gcs(gcs_emulator, gcs_bucket, gcs_ledger, rng, status, body):
    gcs_emulator.backend.put_object(gcs_bucket, "r", b"0123456789")
    mark = gcs_ledger.mark()
    r, got = get(plain(gcs_emulator.front), f"/{gcs_bucket}/r", {"Range": rng})
    assert r.status == status
    if body is not None:
        assert got == body
    assert [x.status for x in gcs_ledger.since(mark)] == [status]


def test_jsonl_is_private_and_secrets_are_redacted(gcs_emulator, tmp_path):
    path = tmp_path / "l.jsonl"
    with Front(gcs_emulator.backend.endpoint, ledger=Ledger(path)) as front:
        q = "client_secret=s3cr3t&X-Goog-Signature=abcdef&X-Goog-Credential=cred&keep=1"
        get(plain(front), f"/storage/v1/b?{q}")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    text = path.read_text()
    for secret in ("s3cr3t", "abcdef", 'cred"'):
        assert secret not in text
    rec = json.loads(text.splitlines()[0])
    assert rec["query"]["keep"] == "1" and rec["query"]["client_secret"] == "<redacted>"


# -- fault injection -----------------------------------------------------------------------------
def test_truncate_reset_and_stall_faults(gcs_emulator, gcs_bucket, gcs_ledger):
    blob = os.urandom(1 << 20)
    gcs_emulator.backend.put_object(gcs_bucket, "f", blob)
    front = gcs_emulator.front
    path = f"/{gcs_bucket}/f"
    front.faults.add(Fault(action="truncate", after_bytes=1000, object="f"))
    conn = plain(front)
    conn.request("GET", path)
    with pytest.raises(http.client.IncompleteRead) as info:
        conn.getresponse().read()
    assert info.value.partial == blob[:1000]
    front.faults.add(Fault(action="reset", object="f"))
    conn = tls(front)
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        get(conn, path)
    front.faults.add(Fault(action="stall", stall_s=0.3, object="f"))
    r, got = get(plain(front), path)
    assert (r.status, got) == (200, blob)
    recs = gcs_ledger.records(bucket=gcs_bucket)[-3:]
    assert [r.extra.get("fault") for r in recs] == ["truncate", "reset", "stall"]
    assert [bool(r.extra.get("aborted")) for r in recs] == [True, True, False]
    assert recs[0].bytes_out == 1000


def test_seeded_probabilistic_faults_repeat(gcs_emulator, gcs_bucket):
    gcs_emulator.backend.put_object(gcs_bucket, "p", b"x")
    front = gcs_emulator.front

    def run(seed: int) -> list[int]:
        front.faults = FaultPlan(seed=seed)
        front.faults.add(Fault(status=503, probability=0.3, times=None, object="p"))
        conn = plain(front)
        statuses = [get(conn, f"/{gcs_bucket}/p")[0].status for _ in range(40)]
        conn.close()
        return statuses

    first, again = run(7), run(7)
    assert first == again and 0 < first.count(503) < 40
    assert set(first) == {200, 503}


@pytest.mark.parametrize(
    "kw",
    [{"action": "explode"}, {"probability": 0}, {"probability": 1.5}, {"stall_s": 1e300},
     {"after_bytes": -1}],
)  # fmt: skip
def test_fault_rejects_bad_network_values(kw):
    with pytest.raises(ValueError):
        Fault(**kw)


def test_soak_benchmark_smoke(capsys):
    """A 2-second, 4-reader soak with faults and 200 idle or half-open connections held on
    the front and a direct-TLS listener: every byte right, every reader finished."""
    from benchmarks.perf import soak as bench_soak

    argv = ["--seconds", "2", "--readers", "4", "--fault-rate", "0.1", "--idle", "200"]
    assert bench_soak.main(argv) == 0
    out = capsys.readouterr().out
    assert "corrupted bytes    : 0" in out and "reads completed" in out
    assert "idle crowd         : 200 held" in out


def test_spooled_upload_is_byte_exact_and_size_limited(gcs_emulator, gcs_bucket):
    blob = os.urandom(3 << 20)
    with Front(
        gcs_emulator.backend.endpoint, body_memory_limit=64 << 10, max_body_bytes=4 << 20
    ) as front:
        path = f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name="
        conn = plain(front, 30)
        conn.request("POST", path + "spooled", body=blob)
        assert conn.getresponse().status == 200
        conn.close()
        conn = plain(front, 30)
        conn.request("POST", path + "too-big", body=blob + blob)
        r = conn.getresponse()
        assert r.status == 413 and b"Payload too large" in r.read()
        conn.close()
        assert [r.status for r in front.ledger.records()] == [200, 413]
    assert gcs_emulator.backend.get_object(gcs_bucket, "spooled") == blob
    assert "too-big" not in gcs_emulator.backend.list_objects(gcs_bucket)


def test_backend_stalling_mid_body_cuts_the_answer_and_marks_it(tmp_path):
    import signal

    from emulator.fakegcs.session import GcsEmulator

    blob = os.urandom(48 << 20)
    with GcsEmulator(front_options={"backend_timeout": 1.0}) as emu:
        emu.backend.create_bucket("stall-bkt")
        emu.backend.put_object("stall-bkt", "big", blob)
        for conn_fn in (plain, tls):
            mark = emu.ledger.mark()
            conn = conn_fn(emu.front, 20)
            conn.request("GET", "/stall-bkt/big")
            resp = conn.getresponse()
            first = resp.read(1 << 20)
            os.kill(emu.backend.pid, signal.SIGSTOP)
            try:
                with pytest.raises((http.client.IncompleteRead, OSError)):
                    resp.read()
            finally:
                os.kill(emu.backend.pid, signal.SIGCONT)
            conn.close()
            assert first == blob[: 1 << 20]
            assert emu.ledger.wait_for(lambda r, m=mark: any(x.seq > m for x in r), timeout=10)
            rec = emu.ledger.since(mark)[0]
            assert rec.status == 200 and rec.bytes_out < len(blob)
            assert str(rec.extra.get("aborted", "")).startswith(("backend", "socket not ready"))


def test_malformed_chunked_body_is_400_and_recorded(gcs_emulator, gcs_bucket, gcs_ledger):
    mark = gcs_ledger.mark()
    out = raw_exchange(
        gcs_emulator.front.port,
        f"POST /upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=c HTTP/1.1\r\n"
        "Host: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n".encode(),
        timeout=5,
    )
    assert out.startswith(b"HTTP/1.1 400")
    assert [r.status for r in gcs_ledger.since(mark)] == [400]
    assert gcs_emulator.backend.list_objects(gcs_bucket) == []


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_te_identity_dropped_wherever_it_is(gcs_emulator, gcs_bucket, eol):
    """libcurl's ``Transfer-Encoding: identity`` on a body-less POST, also as the last line."""
    gcs_emulator.backend.put_object(gcs_bucket, "src", b"S")
    head = eol.join(
        [f"POST /storage/v1/b/{gcs_bucket}/o/src/copyTo/b/{gcs_bucket}/o/dst HTTP/1.1".encode(),
         b"Host: x", b"Content-Length: 0", b"Transfer-Encoding: identity"]
    )  # fmt: skip
    out = raw_exchange(gcs_emulator.front.port, head + eol + eol, timeout=10)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert gcs_emulator.backend.get_object(gcs_bucket, "dst") == b"S"
