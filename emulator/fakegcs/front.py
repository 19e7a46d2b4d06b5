"""The front: a loopback-only HTTP proxy + TLS terminator in front of fake-gcs-server.

One listening port (``Front.url``, plain HTTP on 127.0.0.1) serves two kinds of clients:

- TensorFlow's C++ filesystem, through ``https_proxy``: it sends ``CONNECT host:443``; the front
  accepts only ``storage.googleapis.com:443`` and ``www.googleapis.com:443`` (anything else:
  403 + a ledger record), answers 200, terminates TLS itself with a per-run CA
  (:class:`emulator.fakegcs.certs.LocalCA`) and then serves HTTP/1.1 inside the tunnel.
- Python clients (gcsfs ``endpoint_url``, google-cloud-storage ``api_endpoint``,
  ``STORAGE_EMULATOR_HOST``) sending plain HTTP requests directly.

Every request (both kinds) is recorded in the :class:`emulator.fakegcs.ledger.Ledger` and then either
answered by the fake OAuth token endpoint (``/oauth2/v3/token``, ``/oauth2/v4/token``) or
forwarded to the backend over plain HTTP, keeping ``Host: storage.googleapis.com`` so XML-style
``GET /<bucket>/<object>`` works.

Invariants:
- Binds 127.0.0.1 only (``ValueError`` for any other host).
- Bodies are streamed both ways in chunks of at most ``CHUNK`` bytes: memory per connection is
  bounded whatever the object size. Keep-alive is honoured on both sides.
- One thread per client connection; one persistent backend connection per client connection.
- ``Location`` headers of resumable uploads are rewritten to come back through the front
  (``https://www.googleapis.com/...`` inside a tunnel, the client's own ``http://host:port`` on
  the plain path).
- ``Authorization`` is read only to attribute a principal; it is never forwarded, stored,
  logged or shown. Tokens never appear in the ledger.
- ``shaping`` and ``require_auth`` may be changed while the front runs; each new response reads
  the current values. ``faults`` (:class:`emulator.fakegcs.faults.FaultPlan`) turns chosen requests
  into error answers (after the auth check, before forwarding).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import itertools
import json
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any

import h11

from emulator.fakegcs.certs import GOOGLE_HOSTS, LocalCA
from emulator.fakegcs.faults import FaultPlan
from emulator.fakegcs.ledger import Ledger, RequestRecord, classify, clean_query, parse_range
from emulator.fakegcs.oauth import TokenIssuer
from emulator.fakegcs.shaping import ShapedSender, Shaping

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # forward buffer (bytes) per direction per connection
_RECV = 256 * 1024
_LOOPBACK = ("127.0.0.1", "localhost")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "host",
        "authorization",
    }
)
_UPSTREAM_RETRY_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


_TE_IDENTITY = re.compile(rb"(?im)^transfer-encoding[ \t]*:[ \t]*identity[ \t]*\r\n")


_HAVE_SPLICE = hasattr(os, "splice")
_SPLICE_MIN = 256 * 1024  # bodies at least this large on the plain path are spliced
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _wait_fd(fd: int, events: int, timeout: float) -> None:
    poller = select.poll()
    poller.register(fd, events)
    if not poller.poll(timeout * 1000):
        raise TimeoutError("socket not ready within the idle timeout")


def _splice_all_once(src: int, dst: int, n: int, timeout: float) -> int:
    """One splice of up to ``n`` bytes from socket ``src`` into pipe ``dst`` (waits if needed)."""
    while True:
        try:
            return os.splice(src, dst, n, flags=os.SPLICE_F_MOVE)
        except BlockingIOError:
            _wait_fd(src, select.POLLIN, timeout)


def _splice_out(src: int, dst: int, n: int, timeout: float) -> int:
    """Splice up to ``n`` bytes from pipe ``src`` to socket ``dst`` (waits if it is full)."""
    while True:
        try:
            k = os.splice(src, dst, n, flags=os.SPLICE_F_MOVE)  # no MORE: it corks the tail
        except BlockingIOError:
            _wait_fd(dst, select.POLLOUT, timeout)
            continue
        if k == 0:
            raise ConnectionResetError("client closed the connection")
        return k


class _ClientGone(Exception):
    """The client closed its connection or sent garbage; stop serving it."""


class Front:
    """TLS-terminating CONNECT proxy + plain HTTP endpoint with a request ledger.

    See the module docstring for the invariants. Use as a context manager or call
    :meth:`close`; ``close()`` is idempotent and removes the CA directory.
    """

    def __init__(
        self,
        backend_endpoint: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ledger: Ledger | None = None,
        require_auth: bool = False,
        shaping: Shaping | None = None,
        token_issuer: TokenIssuer | None = None,
        workdir: str | None = None,
        idle_timeout: float = 300.0,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the front binds to 127.0.0.1 only, refusing host {host!r}")
        u = urllib.parse.urlsplit(backend_endpoint)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"backend endpoint must be http://host:port, got {backend_endpoint!r}")
        self.backend_endpoint = backend_endpoint
        self._backend_addr = (u.hostname, u.port or 80)
        self.ledger = ledger if ledger is not None else Ledger()
        self.require_auth = require_auth
        self.shaping = shaping
        self.token_issuer = token_issuer if token_issuer is not None else TokenIssuer()
        self.faults = (
            FaultPlan()
        )  # injected errors (emulator.fakegcs.faults); empty = forward everything
        self.idle_timeout = idle_timeout
        self._test_tokens: set[str] = set()
        self._conn_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self.connects = 0  # accepted CONNECT tunnels (not in the ledger)
        self._ca = LocalCA(workdir)
        try:
            self._tls = self._ca.server_context()
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._sock.bind(("127.0.0.1", port))
            except OSError as exc:
                self._sock.close()
                raise OSError(
                    exc.errno, f"cannot bind the front to 127.0.0.1:{port}: {exc}"
                ) from exc
            self._sock.listen(128)
            self.port = self._sock.getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"
            self.ca_pem = self._ca.ca_pem
            self._acceptor = threading.Thread(
                target=self._accept_loop, name=f"front-accept-{self.port}", daemon=True
            )
            self._acceptor.start()
        except BaseException:
            self._ca.close()
            raise

    # -- public API -------------------------------------------------------------------------
    def accept_test_token(self, token: str) -> None:
        """Treat ``Bearer <token>`` as principal ``test-token`` (GOOGLE_AUTH_TOKEN_FOR_TESTING)."""
        with self._lock:
            self._test_tokens.add(token)

    def tf_env(self, *, test_token: str | None = "fake-token") -> dict[str, str]:
        """Environment a TensorFlow (or other client) process needs to use this front.

        ``test_token=None`` leaves out ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` (for real credential
        flows); otherwise the token is accepted as principal ``test-token``.
        """
        env = {
            "https_proxy": self.url,
            "HTTPS_PROXY": self.url,
            "no_proxy": "",
            "NO_PROXY": "",
            "CURL_CA_BUNDLE": self.ca_pem,
            "NO_GCE_CHECK": "true",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "STORAGE_EMULATOR_HOST": self.url,
        }
        if test_token is not None:
            self.accept_test_token(test_token)
            env["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = test_token
        return env

    def client_ssl_context(self) -> ssl.SSLContext:
        """Client-side TLS context trusting the per-run CA (for Python tests/benchmarks)."""
        return self._ca.client_context()

    def close(self) -> None:
        """Stop accepting, close every client connection, remove key material. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients)
            threads = list(self._threads)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._sock.close()
        for s in clients:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self._acceptor.join(timeout=5)
        for t in threads:
            t.join(timeout=5)
        self._ca.close()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Front(url={getattr(self, 'url', None)!r}, backend={self.backend_endpoint!r})"

    # -- accepting --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn_id = next(self._conn_ids)
            t = threading.Thread(
                target=self._serve_client, args=(client, conn_id), name=f"front-conn-{conn_id}"
            )
            t.daemon = True
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._clients.add(client)
                self._threads.add(t)
            t.start()

    def _serve_client(self, client: socket.socket, conn_id: int) -> None:
        session = _ClientSession(self, client, conn_id)
        try:
            session.run()
        except Exception:  # never let one connection's failure escape its thread
            log.debug("connection %d failed", conn_id, exc_info=True)
        finally:
            session.close()
            with self._lock:
                self._clients.discard(client)
                self._threads.discard(threading.current_thread())

    # -- helpers used by sessions -----------------------------------------------------------
    def principal_for(self, authorization: str | None) -> tuple[str, bool]:
        """(principal, authorized) for an ``Authorization`` header value (never logged)."""
        if not authorization:
            return "anonymous", False
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "invalid", False
        with self._lock:
            if token in self._test_tokens:
                return "test-token", True
        found = self.token_issuer.principal_for_token(token)
        if found is None:
            return "invalid", False
        principal, valid = found
        return principal, valid


class _ClientSession:
    """Serves one client connection (plain HTTP, possibly upgraded into a TLS tunnel)."""

    def __init__(self, front: Front, sock: socket.socket, conn_id: int) -> None:
        self.front = front
        self.raw = sock
        self.sock: socket.socket = sock
        self.conn_id = conn_id
        self.scheme = "http"
        self.tunnel_host: str | None = None
        self.upstream: http.client.HTTPConnection | None = None
        self.buf = bytearray(CHUNK)
        self._pipe: tuple[int, int] | None = None
        sock.settimeout(front.idle_timeout)

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pipe = None
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                self.upstream.close()
        for s in {self.sock, self.raw}:
            with contextlib.suppress(OSError):
                s.close()

    # -- HTTP loop --------------------------------------------------------------------------
    def run(self) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        while True:
            try:
                event = self._next_event(h)
            except _ClientGone:
                return
            except h11.RemoteProtocolError as exc:
                log.debug("connection %d: protocol error: %s", self.conn_id, exc)
                self._send_error_and_close(h, 400, f"bad request: {exc}")
                return
            if isinstance(event, h11.ConnectionClosed) or event is None:
                return
            if not isinstance(event, h11.Request):
                return
            if event.method == b"CONNECT":
                if self.tunnel_host is not None:
                    self._send_error_and_close(h, 400, "CONNECT inside a tunnel")
                    return
                if self._handle_connect(h, event):
                    return  # run() was re-entered for the tunnel and has finished
            else:
                self._handle_request(h, event)
            if h.their_state is h11.SEND_BODY:  # a body we did not need (GET/HEAD/refused)
                try:
                    self._drain_body(h)
                except (_ClientGone, h11.RemoteProtocolError):
                    return
            if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                return
            if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return
            h.start_next_cycle()

    def _next_event(self, h: h11.Connection) -> Any:
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            if h.their_state is h11.IDLE and not len(getattr(h, "_receive_buffer", b"x")):
                h.receive_data(self._recv_head())  # a fresh head starts in our buffer
            else:
                h.receive_data(self._recv())

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(_RECV)
        except (OSError, ssl.SSLError) as exc:
            raise _ClientGone() from exc

    def _recv_head(self) -> bytes:
        """Receive at least a whole request head and drop ``Transfer-Encoding: identity``.

        libcurl as used by TF sends ``Transfer-Encoding: identity`` on body-less POSTs (upload
        initiation), which h11 (correctly, per RFC 9112) rejects; it means "no coding", so the
        line is removed before h11 parses the head.
        """
        data = self._recv()
        while data and b"\r\n\r\n" not in data and len(data) < 64 * 1024:
            more = self._recv()
            if not more:
                break
            data += more
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep and b"identity" in head.lower():
            head = _TE_IDENTITY.sub(b"", head + b"\r\n")[:-2]
        return head + sep + rest

    def _send(self, h: h11.Connection, event: Any) -> None:
        data = h.send(event)
        if data:
            self._sendall(data)

    def _sendall(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            raise _ClientGone() from exc

    def _send_error_and_close(self, h: h11.Connection, status: int, message: str) -> None:
        with contextlib.suppress(Exception):
            if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                body = json.dumps({"error": {"code": status, "message": message}}).encode()
                self._send(
                    h,
                    h11.Response(
                        status_code=status,
                        headers=[
                            ("content-type", "application/json"),
                            ("content-length", str(len(body))),
                            ("connection", "close"),
                        ],
                    ),
                )
                self._send(h, h11.Data(data=body))
                self._send(h, h11.EndOfMessage())

    def _simple_response(
        self, h: h11.Connection, status: int, body: bytes, close: bool = False
    ) -> int:
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        self._send(h, h11.Response(status_code=status, headers=headers))
        if body:
            self._send(h, h11.Data(data=body))
        self._send(h, h11.EndOfMessage())
        return len(body)

    # -- CONNECT ----------------------------------------------------------------------------
    def _handle_connect(self, h: h11.Connection, req: h11.Request) -> bool:
        t0 = time.monotonic()
        target = req.target.decode("latin-1")
        host, _, port = target.rpartition(":")
        host = host.strip("[]").lower()
        allowed = host in GOOGLE_HOSTS and port == "443"
        if not allowed:
            seq = self.front.ledger.next_seq()
            body = json.dumps(
                {"error": {"code": 403, "message": f"CONNECT to {target} is not allowed"}}
            ).encode()
            self._drain_body(h)
            self._record(
                seq, t0, host or target, "CONNECT", target, "", None, 403, len(body), 0,
                "anonymous", "other", None, None,
            )  # fmt: skip
            self._simple_response(h, 403, body)
            return False
        self._send(h, h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        if h.our_state is not h11.SWITCHED_PROTOCOL:  # pragma: no cover - h11 contract
            return True
        trailing, _closed = h.trailing_data
        if trailing:  # client spoke TLS before our 200: unsupported, drop the connection
            return True
        try:
            self.sock = self.front._tls.wrap_socket(self.raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake failed on connection %d: %s", self.conn_id, exc)
            return True
        with self.front._lock:
            self.front.connects += 1
        self.scheme = "https"
        self.tunnel_host = host
        self.run()
        return True

    # -- ordinary requests ------------------------------------------------------------------
    def _drain_body(self, h: h11.Connection) -> int:
        """Read and discard the request body; returns its size."""
        n = 0
        if h.they_are_waiting_for_100_continue:
            return 0  # never asked for it: the client will not send it (h11 closes after)
        while True:
            ev = self._next_event(h)
            if isinstance(ev, h11.Data):
                n += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return n
            else:
                raise _ClientGone()

    def _read_body(self, h: h11.Connection, limit: int) -> bytes:
        if h.they_are_waiting_for_100_continue:
            self._send(h, h11.InformationalResponse(status_code=100, headers=[]))
        out = bytearray()
        while True:
            ev = self._next_event(h)
            if isinstance(ev, h11.Data):
                out += ev.data
                if len(out) > limit:
                    raise _ClientGone()
            elif isinstance(ev, h11.EndOfMessage):
                return bytes(out)
            else:
                raise _ClientGone()

    def _handle_request(self, h: h11.Connection, req: h11.Request) -> None:
        """Answer one non-CONNECT request and record it in the ledger."""
        front = self.front
        t0 = time.monotonic()
        seq = front.ledger.next_seq()
        front.ledger.begin()
        try:
            self._handle_request_inner(h, req, t0, seq)
        finally:
            front.ledger.end()

    def _handle_request_inner(
        self, h: h11.Connection, req: h11.Request, t0: float, seq: int
    ) -> None:
        front = self.front
        method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers]
        hmap: dict[str, str] = {}
        for k, v in headers:
            hmap.setdefault(k.lower(), v)
        client_host = hmap.get("host", "")
        if target.startswith(("http://", "https://")):  # absolute form (a client using a proxy)
            u = urllib.parse.urlsplit(target)
            client_host = u.netloc
            target = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
        host = self.tunnel_host or client_host.rsplit(":", 1)[0] or "127.0.0.1"
        path, _, raw_query = target.partition("?")
        query = clean_query(raw_query)
        kind, bucket, obj = classify(method, path, query, host)
        rng = parse_range(hmap.get("range"))
        principal, authorized = front.principal_for(hmap.get("authorization"))

        done = False
        partial = [0, 0, 0]  # status, bytes_out, bytes_in seen so far (for aborted requests)

        def record(
            status: int,
            bytes_out: int,
            bytes_in: int,
            who: str = principal,
            extra: dict[str, Any] | None = None,
        ) -> None:
            # Called BEFORE the last byte of the response goes out, so a client that has the
            # whole response always finds its record in the ledger.
            nonlocal done
            if done:
                return
            done = True
            self._record(
                seq, t0, host, method, path, raw_query, rng, status, bytes_out, bytes_in, who,
                kind, bucket, obj, query=query, extra=extra,
            )  # fmt: skip

        try:
            if kind == "token":
                try:
                    body = self._read_body(h, limit=64 * 1024)
                except _ClientGone:
                    record(400, 0, 0, "invalid")
                    raise
                reply = front.token_issuer.handle(path, body, method)
                payload = json.dumps(reply.payload).encode()
                record(reply.status, len(payload), len(body), reply.principal)
                self._simple_response(h, reply.status, payload)
                return

            if front.require_auth and not authorized:
                n_in = self._drain_body(h)
                body = json.dumps(
                    {"error": {"code": 401, "message": "Anonymous or invalid credentials"}}
                ).encode()
                close = h.their_state is not h11.DONE
                record(401, len(body), n_in)
                self._simple_response(h, 401, body, close=close)
                return

            fault = front.faults.take(kind, bucket, obj, method)
            if fault is not None:
                n_in = self._drain_body(h)
                body = json.dumps(
                    {"error": {"code": fault.status, "message": fault.message}}
                ).encode()
                close = h.their_state is not h11.DONE
                record(fault.status, len(body), n_in, extra={"injected": True})
                self._simple_response(h, fault.status, body, close=close)
                return

            self._forward(h, method, target, headers, hmap, record, partial)
        finally:
            if not done:  # aborted mid-way (client or backend went away)
                record(partial[0] or 499, partial[1], partial[2])

    def _record(
        self,
        seq: int,
        t0: float,
        host: str,
        method: str,
        path: str,
        raw_query: str,
        rng: tuple[int, int] | None,
        status: int,
        bytes_out: int,
        bytes_in: int,
        principal: str,
        kind: str,
        bucket: str | None,
        obj: str | None,
        query: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.front.ledger.append(
            RequestRecord(
                seq=seq,
                t=t0,
                conn_id=self.conn_id,
                host=host,
                method=method,
                path=path,
                query=query if query is not None else clean_query(raw_query),
                range=rng,
                status=status,
                bytes_out=bytes_out,
                bytes_in=bytes_in,
                principal=principal,
                kind=kind,
                bucket=bucket,
                object=obj,
                t_end=time.monotonic(),
                scheme=self.scheme,
                extra=extra or {},
            )
        )

    # -- forwarding -------------------------------------------------------------------------
    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        if fresh and self.upstream is not None:
            with contextlib.suppress(Exception):
                self.upstream.close()
            self.upstream = None
        if self.upstream is None:
            host, port = self.front._backend_addr
            self.upstream = http.client.HTTPConnection(host, port, timeout=120, blocksize=CHUNK)
        return self.upstream

    def _location_base(self, client_host: str) -> str:
        if self.scheme == "https":
            return "https://www.googleapis.com"
        return f"http://{client_host}" if client_host else self.front.url

    def _rewrite_location(self, value: str, client_host: str) -> str:
        u = urllib.parse.urlsplit(value)
        if not u.scheme:
            return value
        rest = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, u.fragment))
        return self._location_base(client_host) + rest

    def _forward(
        self,
        h: h11.Connection,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        hmap: dict[str, str],
        record: Any,
        partial: list[int],
    ) -> None:
        """Forward one request to the backend and stream the answer back.

        ``record(status, bytes_out, bytes_in)`` is called once, before the client can have the
        complete response; ``partial`` tracks progress for aborted requests.
        """
        out_headers = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        out_headers.append(("Host", "storage.googleapis.com"))
        has_body = (
            "content-length" in hmap or "chunked" in hmap.get("transfer-encoding", "").lower()
        )
        chunked_up = has_body and "content-length" not in hmap
        if chunked_up:
            out_headers.append(("Transfer-Encoding", "chunked"))
        bytes_in = 0
        resp: http.client.HTTPResponse | None = None
        for attempt in (0, 1):
            up = self._upstream(fresh=attempt > 0)
            try:
                up.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in out_headers:
                    up.putheader(k, v)
                up.endheaders()
                if has_body:
                    if h.they_are_waiting_for_100_continue:
                        self._send(h, h11.InformationalResponse(status_code=100, headers=[]))
                    while True:
                        ev = self._next_event(h)
                        if isinstance(ev, h11.Data):
                            bytes_in += len(ev.data)
                            partial[2] = bytes_in
                            if chunked_up:
                                up.send(b"%x\r\n" % len(ev.data) + bytes(ev.data) + b"\r\n")
                            else:
                                up.send(ev.data)
                        elif isinstance(ev, h11.EndOfMessage):
                            if chunked_up:
                                up.send(b"0\r\n\r\n")
                            break
                        else:
                            raise _ClientGone()
                resp = up.getresponse()
                break
            except _UPSTREAM_RETRY_ERRORS:
                if has_body or attempt:
                    self._bad_gateway(h, "backend connection lost", bytes_in, record)
                    return
            except OSError as exc:
                self._bad_gateway(h, f"backend unreachable: {exc}", bytes_in, record)
                return
        assert resp is not None
        client_host = hmap.get("host", "")
        resp_headers: list[tuple[str, str]] = []
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in _HOP_BY_HOP:
                continue
            if lk == "location":
                v = self._rewrite_location(v, client_host)
            resp_headers.append((k, v))
        if resp.will_close:
            self.upstream = None  # http.client closes it after the body; reconnect next time
        shaping = self.front.shaping
        if shaping is not None:
            shaping.delay_first_byte()
        partial[0] = resp.status
        if resp.length == 0:  # HEAD, 204/304, or an empty body: complete with the headers
            record(resp.status, 0, bytes_in)
        self._send(
            h,
            h11.Response(
                status_code=resp.status,
                headers=resp_headers,
                reason=(resp.reason or "").encode("latin-1", "replace"),
            ),
        )
        bytes_out = 0
        sender = ShapedSender(lambda: self.front.shaping)
        mv = memoryview(self.buf)
        if (
            _HAVE_SPLICE
            and self.scheme == "http"
            and self.front.shaping is None
            and resp.length is not None
            and resp.length >= _SPLICE_MIN
        ):
            self._splice_body(h, resp, record, bytes_in, partial)
            return
        try:
            while True:
                n = resp.readinto(self.buf)
                if not n:
                    break
                if resp.length == 0:  # this is the last piece of a Content-Length body
                    record(resp.status, bytes_out + n, bytes_in)
                for piece in h.send_with_data_passthrough(h11.Data(data=mv[:n])):
                    for part in sender.pieces(piece):
                        self._sendall(part)
                bytes_out += n
                partial[1] = bytes_out
        except (OSError, http.client.HTTPException) as exc:
            # backend died mid-body: the client sees a truncated response and a closed connection
            self.upstream = None
            log.debug("backend body read failed: %s", exc)
            raise _ClientGone() from exc
        record(resp.status, bytes_out, bytes_in)
        self._send(h, h11.EndOfMessage())

    def _splice_body(
        self,
        h: h11.Connection,
        resp: http.client.HTTPResponse,
        record: Any,
        bytes_in: int,
        partial: list[int],
    ) -> None:
        """Move a Content-Length body backend socket → pipe → client socket in the kernel.

        Used on the plain-HTTP path only (TLS needs the bytes in user space). Bytes that
        http.client had already buffered go first; h11 is told about every byte (without
        copying) so its Content-Length bookkeeping stays right.
        """
        total = resp.length or 0
        assert resp.fp is not None and self.upstream is not None
        up_sock = self.upstream.sock
        pre = resp.fp.read1(total)  # what the buffered reader already holds (or one read)
        remaining = total - len(pre)
        sent = 0
        try:
            if remaining == 0:
                record(resp.status, total, bytes_in)
            if pre:
                self._sendall(pre)
            sent = len(pre)
            partial[1] = sent
            if self._pipe is None:
                self._pipe = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(self._pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)
            rfd, wfd = self._pipe
            src, dst = up_sock.fileno(), self.raw.fileno()
            while remaining:
                lowat = min(remaining, _PIPE_SIZE // 2)
                up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                n = _splice_all_once(src, wfd, min(remaining, _PIPE_SIZE), self.front.idle_timeout)
                if n == 0:
                    raise ConnectionResetError("backend closed the connection mid-body")
                remaining -= n
                if remaining == 0:
                    record(resp.status, total, bytes_in)
                while n:
                    k = _splice_out(rfd, dst, n, self.front.idle_timeout)
                    n -= k
                    sent += k
                partial[1] = sent
        except OSError as exc:
            self.upstream = None
            with contextlib.suppress(Exception):
                resp.close()
            log.debug("splice failed: %s", exc)
            raise _ClientGone() from exc
        up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        resp.length = 0
        resp.close()  # body fully consumed; the backend connection stays reusable
        zero = memoryview(self.buf)
        left = total
        while left:  # account for the spliced bytes in h11 (nothing is sent here)
            k = min(left, len(zero))
            h.send_with_data_passthrough(h11.Data(data=zero[:k]))
            left -= k
        self._send(h, h11.EndOfMessage())

    def _bad_gateway(self, h: h11.Connection, message: str, bytes_in: int, record: Any) -> None:
        self.upstream = None
        body = json.dumps({"error": {"code": 502, "message": message}}).encode()
        close = h.their_state is not h11.DONE
        record(502, len(body), bytes_in)
        self._simple_response(h, 502, body, close=close)
