"""The pass-through front (emulator/fakegcs/upstream.py, tunnel.py, passthrough.py), the direct-TLS
listener (tls_listener.py) and the CA bundle (ca_bundle.py), against an upstream that
impersonates GCS (tests/_impersonator.py). Real TLS on both sides, real fake-gcs-server, real
TF for the retried 503; everything on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import os
import secrets
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
import trustme
from _impersonator import Impersonator

from emulator.fakegcs.ca_bundle import CaBundle
from emulator.fakegcs.faults import Fault
from emulator.fakegcs.ledger import RequestRecord, front_time
from emulator.fakegcs.passthrough import PassThrough
from emulator.fakegcs.upstream import UpstreamConfig
from emulator.replay.trace import digest_chain

BUCKET = "upfail"
DATA = digest_chain("upfail", 2_000_000)


@pytest.fixture(scope="module")
def imp(tmp_path_factory):
    imp = Impersonator(tmp_path_factory.mktemp("imp"))
    imp.emu.backend.create_bucket(BUCKET)
    imp.emu.backend.put_object(BUCKET, "data.bin", DATA)
    yield imp
    imp.close()


@pytest.fixture(scope="module")
def token(imp) -> str:
    tok = "up-" + secrets.token_urlsafe(16)
    imp.emu.front.accept_test_token(tok)  # the upstream knows it; the recording front does not
    return tok


@pytest.fixture
def pt(imp):
    cfg = UpstreamConfig(("127.0.0.1", imp.tls.port), imp.emu.front.ca_pem)
    with PassThrough(cfg, connect_to=imp.connect_to()) as p:
        yield p


def _via_proxy(
    pt: PassThrough, host: str = "storage.googleapis.com"
) -> http.client.HTTPSConnection:
    """A client that reaches ``host`` through the front's CONNECT, trusting the program bundle."""
    ctx = ssl.create_default_context(cafile=pt.bundle.path)
    c = http.client.HTTPSConnection("127.0.0.1", pt.front.port, context=ctx, timeout=30)
    c.set_tunnel(host, 443)
    return c


def _direct(imp: Impersonator) -> http.client.HTTPSConnection:
    """A client talking to the upstream's TLS listener directly (SNI storage.googleapis.com)."""
    ctx = ssl.create_default_context(cafile=imp.emu.front.ca_pem)

    class Conn(http.client.HTTPSConnection):
        def connect(self) -> None:
            http.client.HTTPConnection.connect(self)
            self.sock = ctx.wrap_socket(self.sock, server_hostname="storage.googleapis.com")

    return Conn("127.0.0.1", imp.tls.port, timeout=30)


def _get(conn: http.client.HTTPSConnection, path: str, headers: dict) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_bytes_and_request_pass_unchanged(imp, pt, token) -> None:
    mark = imp.emu.ledger.mark()
    hdr = {"Authorization": f"Bearer {token}", "Range": "bytes=1000-1999"}
    status, body = _get(_via_proxy(pt), f"/{BUCKET}/data.bin?x=1", hdr)
    assert status == 206 and body == DATA[1000:2000]
    [up] = imp.emu.ledger.since(mark)
    # same method, path, query, range; the token arrived unchanged (principal of that token);
    # Host/SNI stayed storage.googleapis.com although the connection went to 127.0.0.1
    assert (up.method, up.path, up.query, up.range) == ("GET", f"/{BUCKET}/data.bin", {"x": "1"},
                                                         (1000, 1999))  # fmt: skip
    assert up.principal == "test-token" and up.host == "storage.googleapis.com"
    [rec] = pt.ledger.records()
    assert rec.extra == {"upstream": True, "object_size": len(DATA), "generation":
                         rec.extra["generation"]}  # fmt: skip
    assert rec.principal == "program" and rec.status == 206 and rec.bytes_out == 1000


def test_upstream_errors_pass_through_and_are_marked(imp, pt, token) -> None:
    hdr = {"Authorization": f"Bearer {token}"}
    direct = _get(_direct(imp), f"/storage/v1/b/{BUCKET}/o/missing.bin", hdr)
    proxied = _get(_via_proxy(pt, "www.googleapis.com"), f"/storage/v1/b/{BUCKET}/o/missing.bin",
                   hdr)  # fmt: skip
    assert proxied == direct and proxied[0] == 404  # status and body as the upstream sent them
    imp.emu.front.faults.add(Fault(503, kind="media", object="data.bin", message="slow down"))
    status, body = _get(_via_proxy(pt), f"/{BUCKET}/data.bin", hdr)
    assert status == 503 and json.loads(body)["error"]["message"] == "slow down"
    # a request without a token: the upstream's 401 reaches the client
    assert _get(_via_proxy(pt), f"/{BUCKET}/data.bin", {})[0] == 401
    marks = [(r.status, r.extra.get("upstream_error")) for r in pt.ledger.records()]
    assert marks == [(404, 404), (503, 503), (401, 401)]


def test_unreachable_and_unverified_upstreams_are_502(imp, token, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connection refused
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        cases = [
            (UpstreamConfig(("127.0.0.1", closed), imp.emu.front.ca_pem), "ConnectionRefused"),
            (UpstreamConfig(("127.0.0.1", imp.tls.port), str(other_ca)), "CERTIFICATE_VERIFY"),
        ]
        for cfg, reason in cases:
            with PassThrough(cfg) as p:
                status, body = _get(_via_proxy(p), f"/{BUCKET}/data.bin",
                                    {"Authorization": f"Bearer {token}"})  # fmt: skip
                msg = json.loads(body)["error"]["message"]
                assert status == 502 and reason in msg and token not in msg
                [rec] = p.ledger.records()
                assert rec.extra["upstream_error"] == "unreachable"


def test_tf_meets_upstream_503_and_404_as_from_gcs(imp, pt, token) -> None:
    """The same TF reads with the same 503 on the first media GET (and a missing object: 404),
    once through the pass-through front and once straight at the (impersonated) GCS: the same
    requests, statuses, bytes and errors."""
    pytest.importorskip("tensorflow")
    from emulator.replay.tf_worker import TfWorker

    code = """
f = tf.io.gfile.GFile(p, 'rb'); f.seek(5000); data = f.read(3000)
try:
    tf.io.gfile.GFile(p + '.missing', 'rb').read(); missing = 'read'
except tf.errors.NotFoundError:
    missing = 'NotFoundError'
result = [data, missing, tf.io.gfile.exists(p + '.missing')]
"""
    seen = []
    for env in (pt.env(), imp.emu.tf_env(test_token=token)):
        imp.emu.front.faults.add(Fault(503, kind="media", object="data.bin", times=1))
        mark = imp.emu.ledger.mark()
        env = {**env, "GOOGLE_AUTH_TOKEN_FOR_TESTING": token, "NO_GCE_CHECK": "true",
               "GCS_READ_CACHE_BLOCK_SIZE_MB": "0"}  # fmt: skip
        with TfWorker(env) as w:
            assert w.run(code, p=f"gs://{BUCKET}/data.bin") == [DATA[5000:8000], "NotFoundError",
                                                                 False]  # fmt: skip
        seen.append([(r.kind, r.range, r.status) for r in imp.emu.ledger.since(mark)])
    assert seen[0] == seen[1]
    assert [s for _, _, s in seen[0]].count(503) == 1 and 404 in [s for _, _, s in seen[0]]
    fwd = [(r.kind, r.range, r.status) for r in pt.ledger.records()]
    assert fwd == seen[0]  # what TF got through the front is what the upstream answered
    marked = [r.extra.get("upstream_error") for r in pt.ledger.records()]
    assert marked.count(503) == 1 and marked.count(404) == [s for _, _, s in fwd].count(404)
    assert marked.count(None) == sum(1 for _, _, s in fwd if s < 400)


def test_blind_tunnel_only_where_the_policy_allows(imp, pt) -> None:
    c = _via_proxy(pt, "example.com")
    with pytest.raises(OSError, match="403"):
        c.connect()
    c.close()
    [rec] = pt.ledger.records()
    assert (rec.method, rec.host, rec.status, rec.extra) == ("CONNECT", "example.com", 403,
                                                             {"tunnel": "blind"})  # fmt: skip
    assert pt.policy.resolve("example.com", 443) is None  # loopback upstream: mapped hosts only
    real = PassThrough()  # real GCS: any host on 443 (nothing is connected here)
    try:
        assert real.policy.resolve("example.com", 443) == ("example.com", 443)
        assert real.policy.resolve("example.com", 22) is None
    finally:
        real.close()


def test_tls_listener_serves_https_and_refuses_connect(imp, token) -> None:
    status, body = _get(_direct(imp), f"/storage/v1/b/{BUCKET}/o/data.bin",
                        {"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 200 and json.loads(body)["size"] == str(len(DATA))
    c = _direct(imp)
    c.request("CONNECT", "storage.googleapis.com:443")
    assert c.getresponse().status == 400
    c.close()


def test_ca_bundle_is_private_and_removed(tmp_path) -> None:
    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    with CaBundle(str(ca_pem)) as b:
        path = Path(b.path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        text = path.read_text()
        assert text.startswith(ca_pem.read_text().rstrip("\n"))
        assert text.count("BEGIN CERTIFICATE") > 1  # the system CAs follow
        ctx = ssl.create_default_context(cafile=b.path)
        assert len(ctx.get_ca_certs()) == text.count("BEGIN CERTIFICATE")
    assert not path.parent.exists()


def test_pass_through_removes_its_key_material(imp) -> None:
    p = PassThrough(UpstreamConfig(("127.0.0.1", imp.tls.port), imp.emu.front.ca_pem))
    ca_dir = Path(p.front.ca_pem).parent
    bundle_dir = Path(p.bundle.path).parent
    keys = [f for f in ca_dir.iterdir() if "key" in f.name]
    assert keys and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in keys)
    env = p.env()
    assert env["CURL_CA_BUNDLE"] == p.front.ca_pem and env["SSL_CERT_FILE"] == p.bundle.path
    assert "GOOGLE_AUTH_TOKEN_FOR_TESTING" not in env
    assert p.env(curl_per_run_ca=False)["CURL_CA_BUNDLE"] == p.bundle.path
    p.close()
    assert not ca_dir.exists() and not bundle_dir.exists()


@pytest.mark.parametrize(
    ("url", "ca", "why"),
    [
        ("http://storage.googleapis.com", None, "https://"),
        ("https://", None, "https://"),
        ("https://h:99999", None, "port"),
        ("https://h/path", None, "no path"),
        ("https://h", os.devnull, "PEM"),
    ],
)
def test_upstream_config_errors(url, ca, why) -> None:
    with pytest.raises(ValueError, match=why):
        UpstreamConfig.parse(url, ca)


def test_upstream_config_real_gcs_and_override() -> None:
    assert UpstreamConfig.parse("https://storage.googleapis.com").address is None
    cfg = UpstreamConfig.parse("https://127.0.0.1:8443")
    assert cfg.address == ("127.0.0.1", 8443) and cfg.is_loopback


def test_tf_upload_streams_through_unchanged(imp, pt, token) -> None:
    """A 6 MB GFile upload: the upstream stores exactly the bytes TF wrote; the front recorded
    the body's size, not the body."""
    pytest.importorskip("tensorflow")
    from emulator.replay.tf_worker import TfWorker

    data = digest_chain("upload", 6_000_000)
    env = {**pt.env(), "GOOGLE_AUTH_TOKEN_FOR_TESTING": token, "NO_GCE_CHECK": "true"}
    with TfWorker(env) as w:
        w.run("with tf.io.gfile.GFile(p, 'wb') as f: f.write(d)\nresult = None",
              p=f"gs://{BUCKET}/up.bin", d=data)  # fmt: skip
    assert imp.emu.backend.get_object(BUCKET, "up.bin") == data
    puts = [r for r in pt.ledger.records() if r.kind == "upload" and r.method == "PUT"]
    assert [r.bytes_in for r in puts] == [len(data)] and puts[0].status == 200


class _ChunkedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        _ChunkedHandler.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (b'{"kind": ', b'"storage#objects", ', b'"items": []}'):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


def test_chunked_answers_and_headers_pass_unchanged(tmp_path) -> None:
    """An upstream answering with chunked framing (as GCS does for JSON): the client gets every
    byte and the upstream's own headers; the request's headers arrive as the client sent them."""
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("www.googleapis.com").configure_cert(ctx)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    try:
        with PassThrough(UpstreamConfig(("127.0.0.1", server.server_address[1]), str(ca_pem))) as p:
            c = _via_proxy(p, "www.googleapis.com")
            hdr = {"Authorization": "Bearer abc.def", "Accept-Encoding": "gzip", "X-Custom": "1"}
            c.request("GET", "/storage/v1/b/bkt/o?prefix=a%2Fb", headers=hdr)
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and body == b'{"kind": "storage#objects", "items": []}'
            assert r.getheader("content-encoding") == "gzip"
            c.close()
            [rec] = p.ledger.records()
            assert rec.bytes_out == len(body) and rec.kind == "list"
            assert rec.query == {"prefix": "a/b"}
    finally:
        server.shutdown()
        server.server_close()
    [got] = _ChunkedHandler.seen
    assert got["authorization"] == "Bearer abc.def" and got["x-custom"] == "1"
    assert got["accept-encoding"] == "gzip" and got["host"] == "www.googleapis.com"


def test_unforwardable_request_is_refused_without_echo(pt) -> None:
    """A request line the front cannot pass on (a DEL byte in the target): refused before it goes
    upstream, and the answer repeats no header value."""
    raw = socket.create_connection(("127.0.0.1", pt.front.port), timeout=30)
    raw.sendall(b"CONNECT storage.googleapis.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=pt.bundle.path)
    with ctx.wrap_socket(raw, server_hostname="storage.googleapis.com") as tls:
        tls.sendall(b"GET /bkt/a\x7fb HTTP/1.1\r\nHost: storage.googleapis.com\r\n"
                    b"Authorization: Bearer sekrit-value\r\n\r\n")  # fmt: skip
        answer = b""
        while b"}}" not in answer:
            piece = tls.recv(4096)
            if not piece:
                break
            answer += piece
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 502")), answer[:200]
    assert b"sekrit" not in answer
    assert not [r for r in pt.ledger.records() if r.extra.get("upstream")]


def test_pass_through_records_upstream_first_byte_and_end(imp, pt, token) -> None:
    """The record separates the upstream's time from the front's: t <= t_up_sent <= t_up_first
    <= t_first <= t_end, the upstream's own first-byte delay shows in t_up_first (and not in
    the front's own time), and t_up_end is set."""
    from emulator.fakegcs.shaping import Shaping

    imp.emu.front.shaping = Shaping(first_byte_latency_s=0.05)
    try:
        status, body = _get(_via_proxy(pt), f"/{BUCKET}/data.bin",
                            {"Authorization": f"Bearer {token}", "Range": "bytes=0-99"})  # fmt: skip
    finally:
        imp.emu.front.shaping = None
    assert status == 206 and body == DATA[:100]
    [rec] = pt.ledger.records()
    assert rec.t_up_first is not None and rec.t_up_end is not None
    assert rec.t_up_sent is not None
    assert rec.t <= rec.t_up_sent <= rec.t_up_first <= rec.t_first <= rec.t_end
    assert rec.t_up_first <= rec.t_up_end <= rec.t_end
    assert rec.t_up_first - rec.t_up_sent >= 0.05  # the upstream's shaping delay is upstream's
    own = front_time(rec)
    assert own is not None and own == pytest.approx(
        (rec.t_up_sent - rec.t) + (rec.t_first - rec.t_up_first)
    )
    assert front_time(dataclasses.replace(rec, t_up_sent=None)) is None  # not forwarded
    assert RequestRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
