"""The front over real sockets: CONNECT + TLS, plain HTTP, forwarding, ledger (no TensorFlow)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
import tracemalloc

import pytest

from emulator.fakegcs.front import Front
from emulator.fakegcs.ledger import Ledger, RequestRecord, classify, parse_range
from emulator.fakegcs.shaping import ShapedSender, Shaping


def tls_conn(front: Front, host: str = "storage.googleapis.com") -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", front.port, context=front.client_ssl_context(), timeout=30
    )
    conn.set_tunnel(host, 443)
    return conn


def plain_conn(front: Front) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp, resp.read()


# -- binding / CONNECT policy ------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_bind_refused(host, gcs_emulator):
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        Front(gcs_emulator.backend.endpoint, host=host)


def test_bad_backend_endpoint_refused():
    with pytest.raises(ValueError, match="http://host:port"):
        Front("https://127.0.0.1:1")


def test_port_in_use_is_clear_error(gcs_emulator):
    with pytest.raises(OSError, match="cannot bind the front"):
        Front(gcs_emulator.backend.endpoint, port=gcs_emulator.front.port)


@pytest.mark.parametrize(
    "target", ["evil.example.com:443", "storage.googleapis.com:80", "127.0.0.1:443"]
)
def test_unknown_connect_target_refused(gcs_emulator, gcs_ledger, target):
    front = gcs_emulator.front
    mark = gcs_ledger.mark()
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 403")
    recs = gcs_ledger.since(mark, method="CONNECT")
    assert len(recs) == 1
    assert recs[0].status == 403 and recs[0].path == target and recs[0].kind == "other"


def test_unknown_connect_via_http_client(gcs_emulator):
    conn = tls_conn(gcs_emulator.front, host="evil.example.com")
    with pytest.raises(OSError, match="403"):
        request(conn, "GET", "/")
    conn.close()


# -- TLS path ----------------------------------------------------------------------------------
def test_tls_media_range_keepalive(gcs_emulator, gcs_bucket, gcs_ledger):
    blob = os.urandom(100_000)
    gcs_emulator.backend.put_object(gcs_bucket, "d/o.bin", blob)
    front = gcs_emulator.front
    connects = front.connects
    mark = gcs_ledger.mark()
    conn = tls_conn(front)
    r1, b1 = request(conn, "GET", f"/{gcs_bucket}/d%2Fo.bin", headers={"Range": "bytes=10-19"})
    r2, b2 = request(conn, "GET", f"/{gcs_bucket}/d/o.bin", headers={"Range": "bytes=99990-"})
    r3, b3 = request(conn, "HEAD", f"/{gcs_bucket}/d/o.bin")
    r4, b4 = request(conn, "GET", f"/{gcs_bucket}/d/o.bin")
    conn.close()
    assert (r1.status, b1) == (206, blob[10:20])
    assert (r2.status, b2) == (206, blob[99990:])
    assert (r3.status, b3, r3.getheader("Content-Length")) == (200, b"", str(len(blob)))
    assert (r4.status, b4) == (200, blob)
    assert front.connects == connects + 1
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert [r.kind for r in recs] == ["media"] * 4
    assert [r.range for r in recs] == [(10, 19), (99990, -1), None, None]
    assert [r.bytes_out for r in recs] == [10, 10, 0, len(blob)]
    assert {r.object for r in recs} == {"d/o.bin"}
    assert len({r.conn_id for r in recs}) == 1
    assert {r.scheme for r in recs} == {"https"}
    assert {r.host for r in recs} == {"storage.googleapis.com"}
    assert [r.seq for r in recs] == sorted(r.seq for r in recs)


def test_tls_json_api_on_www_host(gcs_emulator, gcs_bucket, gcs_ledger):
    gcs_emulator.backend.put_object(gcs_bucket, "a/b.txt", b"abc")
    mark = gcs_ledger.mark()
    conn = tls_conn(gcs_emulator.front, host="www.googleapis.com")
    r, body = request(conn, "GET", f"/storage/v1/b/{gcs_bucket}/o/a%2Fb.txt?fields=size")
    assert r.status == 200 and json.loads(body)["size"] == "3"
    r, body = request(conn, "GET", f"/storage/v1/b/{gcs_bucket}/o?prefix=a/&delimiter=/")
    assert r.status == 200 and [i["name"] for i in json.loads(body)["items"]] == ["a/b.txt"]
    r, body = request(conn, "GET", f"/storage/v1/b/{gcs_bucket}/o/a%2Fb.txt?alt=media")
    assert (r.status, body) == (200, b"abc")
    r, _ = request(conn, "DELETE", f"/storage/v1/b/{gcs_bucket}/o/a%2Fb.txt")
    assert r.status in (200, 204)
    r, _ = request(conn, "GET", f"/storage/v1/b/{gcs_bucket}")
    assert r.status == 200
    conn.close()
    recs = gcs_ledger.since(mark, bucket=gcs_bucket)
    assert [r.kind for r in recs] == ["metadata", "list", "media", "delete", "bucket"]
    assert recs[0].query == {"fields": "size"}
    assert recs[1].query == {"prefix": "a/", "delimiter": "/"}


def test_tls_resumable_upload_location_comes_back_through_front(
    gcs_emulator, gcs_bucket, gcs_ledger
):
    payload = os.urandom(300_000)
    conn = tls_conn(gcs_emulator.front, host="www.googleapis.com")
    r, _ = request(
        conn,
        "POST",
        f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=resumable&name=up.bin",
        body=b"",
    )
    location = r.getheader("Location")
    assert location.startswith("https://www.googleapis.com/upload/")
    path = location[len("https://www.googleapis.com") :]
    r, _ = request(conn, "PUT", path, body=payload, headers={"Content-Type": "x/y"})
    conn.close()
    assert r.status in (200, 201)
    assert gcs_emulator.backend.get_object(gcs_bucket, "up.bin") == payload
    ups = [r for r in gcs_ledger.records(bucket=gcs_bucket) if r.kind == "upload"]
    assert [u.method for u in ups] == ["POST", "PUT"]
    assert ups[1].bytes_in == len(payload)


# -- plain HTTP path ---------------------------------------------------------------------------
def test_plain_resumable_upload_location_points_at_front(gcs_emulator, gcs_bucket):
    front = gcs_emulator.front
    conn = plain_conn(front)
    r, _ = request(
        conn, "POST", f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=resumable&name=p.bin"
    )
    location = r.getheader("Location")
    assert location.startswith(front.url + "/upload/")
    r, _ = request(conn, "PUT", location[len(front.url) :], body=b"plain bytes")
    assert r.status in (200, 201)
    conn.close()
    assert gcs_emulator.backend.get_object(gcs_bucket, "p.bin") == b"plain bytes"


def test_plain_chunked_request_body_is_streamed(gcs_emulator, gcs_bucket, gcs_ledger):
    parts = [os.urandom(100_000) for _ in range(5)]
    conn = plain_conn(gcs_emulator.front)
    conn.request(
        "POST",
        f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=chunked.bin",
        body=iter(parts),
        encode_chunked=True,
    )
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200
    assert gcs_emulator.backend.get_object(gcs_bucket, "chunked.bin") == b"".join(parts)
    rec = gcs_ledger.records(bucket=gcs_bucket, kind="upload")[-1]
    assert rec.object == "chunked.bin" and rec.bytes_in == 500_000


def test_absolute_form_target_is_accepted(gcs_emulator, gcs_bucket):
    gcs_emulator.backend.put_object(gcs_bucket, "abs.txt", b"absolute")
    conn = plain_conn(gcs_emulator.front)
    r, body = request(conn, "GET", f"http://storage.googleapis.com/{gcs_bucket}/abs.txt")
    conn.close()
    assert (r.status, body) == (200, b"absolute")


@pytest.mark.parametrize("path_kind", ["plain", "tls"])
def test_large_object_streams_without_buffering(gcs_emulator, gcs_bucket, tmp_path, path_kind):
    """48 MiB through the front: Python memory peak stays a few MiB (no whole-body buffering).

    The plain path splices in the kernel; the TLS path copies through the 1 MiB buffer.
    """
    size = 48 << 20
    src = tmp_path / "big.bin"
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(size >> 20):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    gcs_emulator.backend.put_object(gcs_bucket, "big.bin", src)
    conn = plain_conn(gcs_emulator.front) if path_kind == "plain" else tls_conn(gcs_emulator.front)
    if path_kind == "tls":
        conn.connect()  # handshake outside the measured window
    tracemalloc.start()
    try:
        conn.request("GET", f"/download/storage/v1/b/{gcs_bucket}/o/big.bin?alt=media")
        resp = conn.getresponse()
        got = hashlib.sha256()
        n = 0
        while chunk := resp.read(1 << 20):
            got.update(chunk)
            n += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        conn.close()
    assert n == size and got.hexdigest() == h.hexdigest()
    assert peak < 16 << 20, f"peak traced memory {peak} bytes for a {size}-byte object"


def test_backend_down_gives_502(gcs_emulator):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with Front(f"http://127.0.0.1:{dead}") as front:
        conn = plain_conn(front)
        r, body = request(conn, "GET", "/storage/v1/b/x/o")
        conn.close()
        assert r.status == 502 and b"backend unreachable" in body
        assert front.ledger.records()[-1].status == 502


def test_close_removes_key_material(gcs_emulator):
    front = Front(gcs_emulator.backend.endpoint)
    ca_dir = os.path.dirname(front.ca_pem)
    assert oct(os.stat(ca_dir).st_mode & 0o777) == "0o700"
    key_files = [f for f in os.listdir(ca_dir) if "key" in f]
    assert key_files and all(
        os.stat(os.path.join(ca_dir, f)).st_mode & 0o777 == 0o600 for f in key_files
    )
    front.close()
    front.close()
    assert not os.path.exists(ca_dir)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", front.port), timeout=2).close()


# -- principals and auth -----------------------------------------------------------------------
def test_principals_and_no_secret_in_ledger(gcs_emulator, gcs_bucket, tmp_path):
    gcs_emulator.backend.put_object(gcs_bucket, "o", b"data")
    front = gcs_emulator.front
    env = front.tf_env(test_token="tok-for-principal-test")
    assert env["GOOGLE_AUTH_TOKEN_FOR_TESTING"] == "tok-for-principal-test"
    jsonl = tmp_path / "ledger.jsonl"
    ledger = front.ledger
    mark = ledger.mark()
    conn = plain_conn(front)
    path = f"/storage/v1/b/{gcs_bucket}/o/o"
    request(conn, "GET", path)
    request(conn, "GET", path, headers={"Authorization": "Bearer tok-for-principal-test"})
    request(conn, "GET", path, headers={"Authorization": "Bearer s3cr3t-unknown-token"})
    request(conn, "GET", path + "?access_token=s3cr3t-query-token")
    conn.close()
    recs = ledger.since(mark, bucket=gcs_bucket)
    assert [r.principal for r in recs] == ["anonymous", "test-token", "invalid", "anonymous"]
    assert recs[3].query == {"access_token": "<redacted>"}
    ledger.to_jsonl(jsonl)
    text = jsonl.read_text() + repr(recs) + repr(front)
    assert "s3cr3t" not in text and "tok-for-principal-test" not in text


def test_require_auth_at_run_time(gcs_emulator, gcs_bucket):
    gcs_emulator.backend.put_object(gcs_bucket, "o", b"data")
    front = gcs_emulator.front
    front.tf_env(test_token="auth-test-token")
    conn = plain_conn(front)
    path = f"/{gcs_bucket}/o"
    host = {"Host": "storage.googleapis.com"}
    assert request(conn, "GET", path, headers=host)[0].status == 200
    front.require_auth = True
    r, body = request(conn, "GET", path, headers=host)
    assert r.status == 401 and b"data" not in body
    bad = {**host, "Authorization": "Bearer nope"}
    assert request(conn, "GET", path, headers=bad)[0].status == 401
    good = {**host, "Authorization": "Bearer auth-test-token"}
    r, body = request(conn, "GET", path, headers=good)
    assert (r.status, body) == (200, b"data")
    r, _ = request(
        conn,
        "POST",
        f"/upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=n",
        body=b"refused upload",
    )
    assert r.status == 401
    front.require_auth = False
    conn.close()
    assert "n" not in gcs_emulator.backend.list_objects(gcs_bucket)


# -- shaping -----------------------------------------------------------------------------------
def test_shaping_set_at_run_time_keeps_bytes_exact(gcs_emulator, gcs_bucket):
    blob = os.urandom(300_000)
    gcs_emulator.backend.put_object(gcs_bucket, "s.bin", blob)
    front = gcs_emulator.front
    conn = tls_conn(front)
    front.shaping = Shaping(first_byte_latency_s=0.01, bandwidth_bytes_per_s=50e6)
    r, body = request(conn, "GET", f"/{gcs_bucket}/s.bin")
    front.shaping = None
    r2, body2 = request(conn, "GET", f"/{gcs_bucket}/s.bin", headers={"Range": "bytes=5-9"})
    conn.close()
    assert (r.status, body) == (200, blob)
    assert (r2.status, body2) == (206, blob[5:10])


@pytest.mark.parametrize(
    "kw",
    [
        {"first_byte_latency_s": -1},
        {"bandwidth_bytes_per_s": -5},
        {"per_request_overhead_s": float("nan")},
        {"first_byte_latency_s": "1"},
    ],
)
def test_shaping_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Shaping(**kw)


def test_shaped_sender_splits_without_losing_bytes():
    data = os.urandom(300_000)
    sender = ShapedSender(lambda: Shaping(bandwidth_bytes_per_s=1e12))
    pieces = list(sender.pieces(data))
    assert len(pieces) == 5 and b"".join(bytes(p) for p in pieces) == data
    unshaped = list(ShapedSender(lambda: None).pieces(data))
    assert len(unshaped) == 1


def test_shaping_expected_time():
    s = Shaping(first_byte_latency_s=0.05, bandwidth_bytes_per_s=1e6, per_request_overhead_s=0.01)
    assert s.expected_time(2_000_000) == pytest.approx(2.06)
    assert s.latency_s == 0.05 and s.bandwidth_Bps == 1e6


# -- ledger units ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header,expected",
    [
        ("bytes=0-1048575", (0, 1048575)),
        ("bytes=5-", (5, -1)),
        (" bytes = 7 - 9 ", (7, 9)),
        ("bytes=-500", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        (None, None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header) == expected


@pytest.mark.parametrize(
    "method,path,query,expected",
    [
        ("GET", "/storage/v1/b/bk/o/a%2Fb", {}, ("metadata", "bk", "a/b")),
        ("GET", "/storage/v1/b/bk/o/a%2Fb", {"alt": "media"}, ("media", "bk", "a/b")),
        ("GET", "/download/storage/v1/b/bk/o/a%2Fb", {"alt": "media"}, ("media", "bk", "a/b")),
        ("GET", "/bk/a/b", {}, ("media", "bk", "a/b")),
        ("GET", "/bk", {}, ("list", "bk", None)),
        ("GET", "/storage/v1/b/bk/o", {}, ("list", "bk", None)),
        ("GET", "/storage/v1/b/bk", {}, ("bucket", "bk", None)),
        ("GET", "/storage/v1/b", {}, ("list", None, None)),
        ("DELETE", "/storage/v1/b/bk/o/x", {}, ("delete", "bk", "x")),
        ("POST", "/upload/storage/v1/b/bk/o", {"name": "n"}, ("upload", "bk", "n")),
        ("PUT", "/upload/storage/v1/b/bk/o", {"name": "n"}, ("upload", "bk", "n")),
        ("POST", "/storage/v1/b/bk/o/x/rewriteTo/b/bk/o/y", {}, ("other", "bk", "x")),
        ("POST", "/oauth2/v4/token", {}, ("token", None, None)),
    ],
)
def test_classify(method, path, query, expected):
    assert classify(method, path, query) == expected


def _rec(**kw) -> RequestRecord:
    base = dict(
        seq=0, t=0.0, conn_id=1, host="h", method="GET", path="/p", query={}, range=None,
        status=200, bytes_out=0, bytes_in=0, principal="anonymous", kind="media",
    )  # fmt: skip
    base.update(kw)
    return RequestRecord(**base)


def test_ledger_mark_since_filters_and_jsonl(tmp_path):
    path = tmp_path / "l.jsonl"
    ledger = Ledger(jsonl_path=path)
    ledger.append(_rec(kind="metadata", bucket="b", object="o"))
    m = ledger.mark()
    ledger.append(_rec(kind="media", bucket="b", object="o", range=(0, 9)))
    ledger.append(_rec(kind="media", bucket="c", object="o"))
    assert [r.seq for r in ledger.records()] == [1, 2, 3]
    assert [r.seq for r in ledger.since(m)] == [2, 3]
    assert [r.seq for r in ledger.since(m, bucket="b")] == [2]
    assert [r.seq for r in ledger.records(kind={"metadata", "media"}, bucket="b")] == [1, 2]
    assert [r.seq for r in ledger.records(where=lambda r: r.range == (0, 9))] == [2]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3] and lines[1]["range"] == [0, 9]
    assert ledger.records()[1].as_trace_request() == {
        "kind": "media",
        "object": "b/o",
        "range": [0, 9],
    }
    assert ledger.wait_quiet(quiet_s=0.0, timeout=1.0)
    ledger.clear()
    assert ledger.records() == [] and ledger.mark() == 3


def test_tls_rejects_untrusted_client_ca(gcs_emulator):
    """A client that does not trust the per-run CA cannot complete the handshake."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", gcs_emulator.front.port, context=ssl.create_default_context(), timeout=10
    )
    conn.set_tunnel("storage.googleapis.com", 443)
    with pytest.raises(ssl.SSLCertVerificationError):
        request(conn, "GET", "/x/y")
    conn.close()


def test_refused_upload_with_expect_continue_does_not_hang(gcs_emulator, gcs_bucket):
    """require_auth + ``Expect: 100-continue``: 401 without reading the body, connection closed."""
    front = gcs_emulator.front
    front.require_auth = True
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as s:
            s.sendall(
                (
                    f"PUT /upload/storage/v1/b/{gcs_bucket}/o?uploadType=media&name=x HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nContent-Length: 5000000\r\n"
                    "Expect: 100-continue\r\n\r\n"
                ).encode()
            )
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 401")
            assert b"connection: close" in head.lower()
    finally:
        front.require_auth = False
    assert gcs_emulator.backend.list_objects(gcs_bucket) == []


def test_transfer_encoding_identity_is_tolerated(gcs_emulator, gcs_bucket):
    """libcurl (TF) sends ``Transfer-Encoding: identity`` on body-less POSTs."""
    with socket.create_connection(("127.0.0.1", gcs_emulator.front.port), timeout=10) as s:
        s.sendall(
            (
                f"POST /upload/storage/v1/b/{gcs_bucket}/o?uploadType=resumable&name=i HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"location:" in head.lower()


def test_concurrent_tls_clients(gcs_emulator, gcs_bucket, gcs_ledger):
    """Eight clients at once through CONNECT/TLS: every byte right, every request recorded."""
    import threading

    blob = os.urandom(1_000_000)
    gcs_emulator.backend.put_object(gcs_bucket, "c.bin", blob)
    mark = gcs_ledger.mark()
    errors: list[str] = []

    def client(i: int) -> None:
        conn = tls_conn(gcs_emulator.front)
        try:
            for j in range(5):
                start = (i * 5 + j) * 20_000
                r, body = request(
                    conn, "GET", f"/{gcs_bucket}/c.bin",
                    headers={"Range": f"bytes={start}-{start + 99_999}"},
                )  # fmt: skip
                if r.status != 206 or body != blob[start : start + 100_000]:
                    errors.append(f"client {i} request {j}: HTTP {r.status}, {len(body)} bytes")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    recs = gcs_ledger.since(mark, bucket=gcs_bucket, kind="media")
    assert len(recs) == 40
    assert len({r.conn_id for r in recs}) == 8
    assert len({r.seq for r in recs}) == 40
    assert sorted(r.range[0] for r in recs) == [k * 20_000 for k in range(40)]
