"""Pass-through forwarding: the front as a recording proxy in front of real GCS.

With ``Front(upstream=Upstream(...))`` the front no longer answers from a backend: every request
TensorFlow sends inside a tunnel it terminates (``storage.googleapis.com``,
``www.googleapis.com``; see :data:`emulator.fakegcs.certs.GOOGLE_HOSTS`) is forwarded over TLS
to the same host upstream, and the answer is streamed back.

Invariants:
- The request is unchanged: same method, path, query and headers (``Range``, ``Authorization``,
  content headers) except the hop-by-hop ones; ``Host`` and the TLS server name (SNI) are the
  host the client asked for, also when :attr:`UpstreamConfig.address` sends the connection
  elsewhere (tests: a local impersonating upstream).
- The upstream is verified: the system trust store, or only :attr:`UpstreamConfig.cafile`.
- Upstream TLS connections are the front's own (never the client's tunnel). Idle ones are
  pooled per host (:data:`POOL_PER_HOST`) once an answer was read whole; a body-less request
  that finds a pooled connection closed is sent once more on a new one; a request with a body
  always gets a new connection and is never re-sent.
- Bodies stream both ways in pieces of at most ``CHUNK`` bytes; nothing is buffered whole.
- The answer is the upstream's: status, reason, headers (minus hop-by-hop) and body, also for
  errors (a 503 or 404 reaches the program as it came). A connection failure becomes a 502
  whose body names the host and the error class, never a header or a body.
- Every forwarded request's ledger record has ``extra["upstream"] = True``; an error answer
  (status >= 400) adds ``extra["upstream_error"] = status`` (``"unreachable"`` for a 502 made
  here). ``extra`` may also hold ``object_size`` / ``generation`` (from ``Content-Range`` and
  ``x-goog-generation``): only names, sizes, generations and ranges are kept. Resumable
  ``upload_id`` values (a capability on real GCS) are replaced by ``<redacted>``.
- Token requests (``/oauth2/...``) are forwarded like any other; their bodies are never read
  into the ledger, and the record's principal is :data:`PRINCIPAL` like every pass-through
  request (the front cannot and does not judge the user's credentials).
- ``Authorization`` values are passed on and never stored, logged or put in an error.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.front.errors import ClientGone
from emulator.fakegcs.front.forward import HOP_BY_HOP
from emulator.fakegcs.upstream_record import (
    METADATA_LIMIT,
    metadata_facts,
    redact_capabilities,
    response_facts,
)

if TYPE_CHECKING:
    from emulator.fakegcs.front.connection import ClientConnection
    from emulator.fakegcs.front.exchange import Exchange
    from emulator.fakegcs.front.recording import Recorder

log = logging.getLogger(__name__)

#: Ledger principal of every pass-through request (the program being recorded).
PRINCIPAL = "program"
#: The host a plain-HTTP (non-tunnel) request is forwarded to.
DEFAULT_HOST = "storage.googleapis.com"
CHUNK = 1 << 20
UPSTREAM_TIMEOUT_S = 120.0
#: Idle TLS connections kept per upstream host (TF opens a new client connection per request;
#: reusing the upstream side saves a TLS handshake per request).
POOL_PER_HOST = 16

_HOP_BY_HOP = HOP_BY_HOP  # Authorization is passed on unchanged: it is the program's own
_RETRY_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


@dataclass(frozen=True)
class UpstreamConfig:
    """Where forwarded requests go and how the upstream is verified.

    ``address`` None: the request's own host, port 443 (real GCS). Else ``(ip or name, port)``
    for every host (the host name stays in SNI and ``Host``). ``cafile`` None: the system trust
    store; else only the CAs in that PEM file.
    """

    address: tuple[str, int] | None = None
    cafile: str | None = None

    @classmethod
    def parse(cls, url: str, cafile: str | None = None) -> UpstreamConfig:
        """``https://host[:port]`` → config; ``ValueError`` with a one-line reason."""
        u = urllib.parse.urlsplit(url)
        if u.scheme != "https" or not u.hostname:
            raise ValueError(f"upstream must be an https://host[:port] URL, got {url!r}")
        if u.path not in ("", "/") or u.query or u.username or u.password:
            raise ValueError("upstream URL takes no path, query or user info")
        try:
            port = u.port or 443
        except ValueError as exc:
            raise ValueError(f"upstream URL has a bad port: {exc}") from None
        if cafile is not None:
            try:
                ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"upstream CA {cafile}: not a readable PEM CA file ({exc})"
                ) from None
        host = u.hostname
        if host in ("storage.googleapis.com", "www.googleapis.com") and port == 443:
            return cls(None, cafile)
        return cls((host, port), cafile)

    @property
    def is_loopback(self) -> bool:
        """True when every forwarded connection goes to this machine (tests)."""
        return self.address is not None and self.address[0] in ("127.0.0.1", "localhost", "::1")

    def describe(self) -> str:
        where = "each host on port 443"
        if self.address is not None:
            where = f"{self.address[0]}:{self.address[1]}"
        trust = "the system trust store" if self.cafile is None else f"CA {self.cafile}"
        return f"{where}, verified with {trust}"


class _HostHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to ``address`` that verifies and names (SNI) ``server_name``."""

    def __init__(self, address: tuple[str, int], server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(
            address[0], address[1], context=context, timeout=UPSTREAM_TIMEOUT_S, blocksize=CHUNK
        )
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the TCP connection (self.sock)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class Upstream:
    """The pass-through target of a :class:`~emulator.fakegcs.front.Front` (shared, stateless)."""

    PRINCIPAL = PRINCIPAL

    def __init__(self, config: UpstreamConfig | None = None) -> None:
        self.config = config or UpstreamConfig()
        ctx = ssl.create_default_context(cafile=self.config.cafile)  # None: system store
        ctx.set_alpn_protocols(["http/1.1"])
        self.context = ctx
        self._lock = threading.Lock()
        self._idle: dict[str, list[http.client.HTTPSConnection]] = {}
        self._closed = False

    def connection(self, host: str, fresh: bool = False) -> http.client.HTTPSConnection:
        """An idle pooled connection to ``host`` (or a new one; always new when ``fresh``)."""
        if not fresh:
            with self._lock:
                idle = self._idle.get(host)
                if idle:
                    return idle.pop()
        address = self.config.address or (host, 443)
        return _HostHTTPSConnection(address, host, self.context)

    def release(self, host: str, conn: http.client.HTTPSConnection) -> None:
        """Give back a connection whose last answer was read whole (kept alive for reuse)."""
        with self._lock:
            idle = self._idle.setdefault(host, [])
            if not self._closed and len(idle) < POOL_PER_HOST:
                idle.append(conn)
                return
        _close_quietly(conn)

    def close(self) -> None:
        """Close every idle connection. Idempotent."""
        with self._lock:
            self._closed = True
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            _close_quietly(c)

    def forwarder(self, conn: ClientConnection) -> UpstreamForwarder:
        return UpstreamForwarder(self, conn)

    def __repr__(self) -> str:
        return f"Upstream({self.config.describe()})"


def _close_quietly(conn: http.client.HTTPConnection) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class UpstreamForwarder:
    """The upstream side of one client connection (a pooled connection per request)."""

    def __init__(self, upstream: Upstream, conn: ClientConnection) -> None:
        self.upstream = upstream
        self.conn = conn
        self.current: http.client.HTTPSConnection | None = None  # in use by this request

    def close(self) -> None:
        if self.current is not None:
            _close_quietly(self.current)
            self.current = None

    def _connection(self, host: str, fresh: bool) -> http.client.HTTPSConnection:
        self.close()
        self.current = self.upstream.connection(host, fresh=fresh)
        return self.current

    def _done(self, host: str, reusable: bool) -> None:
        """The request is over: pool its connection if the answer was read whole."""
        c, self.current = self.current, None
        if c is None:
            return
        if reusable:
            self.upstream.release(host, c)
        else:
            _close_quietly(c)

    def forward(self, ex: Exchange) -> None:
        """Forward one request upstream and stream the answer back; record it once."""
        conn, h, rec, hmap = self.conn, ex.h, ex.rec, ex.hmap
        host = conn.tunnel_host or DEFAULT_HOST
        redact_capabilities(rec)
        chunked_in = "chunked" in hmap.get("transfer-encoding", "").lower()
        # with both framings the chunked one wins (RFC 9112 6.3): no Content-Length upstream
        drop = _HOP_BY_HOP | ({"content-length"} if chunked_in else set())
        out_headers = [(k, v) for k, v in ex.headers if k.lower() not in drop]
        out_headers.append(("Host", host))
        has_body = "content-length" in hmap or chunked_in
        chunked_up = chunked_in or (has_body and "content-length" not in hmap)
        close_after = bool(getattr(ex, "close_after", False))
        if chunked_up:
            out_headers.append(("Transfer-Encoding", "chunked"))
        bytes_in = 0
        resp: http.client.HTTPResponse | None = None
        for attempt in (0, 1):
            # a request with a body never rides on a pooled connection (it cannot be retried)
            up = self._connection(host, fresh=attempt > 0 or has_body)
            try:
                up.putrequest(ex.method, ex.target, skip_host=True, skip_accept_encoding=True)
                for k, v in out_headers:
                    up.putheader(k, v)
                up.endheaders()
                if has_body:
                    if h.they_are_waiting_for_100_continue:
                        conn.send(h, h11.InformationalResponse(status_code=100, headers=[]))
                    while True:
                        ev = conn.next_event(h)
                        if isinstance(ev, h11.Data):
                            bytes_in += len(ev.data)
                            rec.bytes_in = bytes_in
                            if chunked_up:
                                up.send(b"%x\r\n" % len(ev.data) + bytes(ev.data) + b"\r\n")
                            else:
                                up.send(ev.data)
                        elif isinstance(ev, h11.EndOfMessage):
                            if chunked_up:
                                up.send(b"0\r\n\r\n")
                            break
                        else:
                            raise ClientGone()
                arrived = getattr(conn, "arrived", None)
                if arrived is not None:
                    arrived()  # the whole request is in: lift the front's arrival deadline
                rec.mark_upstream_sent()
                resp = up.getresponse()
                break
            except _RETRY_ERRORS as exc:
                if has_body or attempt:
                    self._unreachable(ex, host, exc, bytes_in)
                    return
            except (OSError, http.client.HTTPException) as exc:
                self._unreachable(ex, host, exc, bytes_in)
                return
            except ValueError:  # http.client refused a target or header value: never echo it
                self._unreachable(ex, host, ValueError("request not forwardable"), bytes_in)
                return
        assert resp is not None
        rec.mark_upstream_first()
        extra: dict[str, object] = {"upstream": True, **response_facts(resp)}
        if resp.status >= 400:
            extra["upstream_error"] = resp.status
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
        if close_after:
            headers.append(("Connection", "close"))
        rec.status = resp.status
        rec.mark_first_byte()
        if resp.length == 0:
            rec.record(resp.status, 0, bytes_in, extra=extra)
        conn.send(
            h,
            h11.Response(
                status_code=resp.status,
                headers=headers,
                reason=(resp.reason or "").encode("latin-1", "replace"),
            ),
        )
        tee = ex.kind == "metadata" and resp.status == 200
        self._stream_body(h, resp, rec, bytes_in, extra, tee)
        self._done(host, reusable=not resp.will_close)

    def _stream_body(
        self,
        h: h11.Connection,
        resp: http.client.HTTPResponse,
        rec: Recorder,
        bytes_in: int,
        extra: dict[str, object],
        tee: bool,
    ) -> None:
        with self.conn.front.buffers.borrow() as buf:  # per request: idle connections hold none
            self._stream_through(h, resp, rec, bytes_in, extra, tee, buf)

    def _stream_through(
        self,
        h: h11.Connection,
        resp: http.client.HTTPResponse,
        rec: Recorder,
        bytes_in: int,
        extra: dict[str, object],
        tee: bool,
        buf: bytearray,
    ) -> None:
        conn = self.conn
        mv = memoryview(buf)
        bytes_out = 0
        seen = bytearray()  # a metadata answer, for its size and generation only
        try:
            while True:
                n = resp.readinto(buf)
                if not n:
                    break
                if tee and len(seen) + n <= METADATA_LIMIT:
                    seen += mv[:n]
                if resp.length == 0:  # the last piece of a Content-Length body
                    extra.update(metadata_facts(seen))
                    rec.record(resp.status, bytes_out + n, bytes_in, extra=extra)
                conn.send(h, h11.Data(data=mv[:n]))
                bytes_out += n
                rec.bytes_out = bytes_out
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # the upstream died mid-body: truncated answer, closed client
            log.debug("upstream body read failed: %s", type(exc).__name__)
            raise ClientGone() from exc
        extra.update(metadata_facts(seen))
        rec.record(resp.status, bytes_out, bytes_in, extra=extra)
        conn.send(h, h11.EndOfMessage())

    def _unreachable(self, ex: Exchange, host: str, exc: BaseException, bytes_in: int) -> None:
        """A 502 the program sees as a gateway error (host and error class only)."""
        self.close()
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else type(exc).__name__
        if isinstance(exc, ValueError) and not isinstance(exc, OSError):
            reason = str(exc)  # our own fixed text (http.client's would quote the value)
        message = f"upstream {host} unreachable: {reason}"
        body = json.dumps({"error": {"code": 502, "message": message}}).encode()
        h = ex.h
        close = h.their_state is not h11.DONE
        ex.rec.record(
            502, len(body), bytes_in, extra={"upstream": True, "upstream_error": "unreachable"}
        )
        if h.our_state is h11.SEND_RESPONSE:
            self.conn.simple_response(h, 502, body, close=close)
