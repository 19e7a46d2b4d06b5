"""One client connection: the HTTP/1.1 loop (h11), socket I/O, ``CONNECT`` and the TLS tunnel.

Invariants:
- A connection is never read by two threads: while it waits for a request (or a TLS handshake)
  it is held by the connection loop (:mod:`emulator.fakegcs.front.loop`, no thread of its
  own); once a whole request head is in, a worker thread serves it through :meth:`serve`,
  request after request while the next one follows within ``LINGER_FOR_NEXT_S``, then hands it
  back (:data:`PARK`), closes it (:data:`CLOSE`) or asks for a TLS handshake (:data:`HANDSHAKE`,
  after ``CONNECT``). A request is handed to :class:`emulator.fakegcs.front.exchange.Exchange`
  and the loop goes on only when both sides of h11 are ``DONE``.
- ``CONNECT`` is accepted once per connection, only to ``GOOGLE_HOSTS`` on port 443; the
  connection then speaks TLS (``self.sock``) over the same TCP socket (``self.raw``) with a new
  h11 state.
- Every socket error or protocol violation of the client ends the connection
  (:class:`ClientGone`); it never escapes the connection's thread. A malformed head gets a 400
  (as soon as its first bytes show it, :func:`emulator.fakegcs.front.heads.head_problem`), an
  HTTP/2 preface a 505; both are recorded in the ledger and never forwarded.
- Time limits: waiting for the first byte of a request may take ``idle_timeout``; from that
  byte on, the head and the whole body must arrive within ``request_timeout`` (an absolute
  deadline, so a client trickling bytes cannot stretch it), else 408 and close. Each piece of an
  answer (at most ``CHUNK`` bytes) must be taken by the client within ``idle_timeout``.
- Heads may end lines with bare LF (h11 accepts them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import h11

from emulator.fakegcs.certs import GOOGLE_HOSTS
from emulator.fakegcs.front.errors import ClientGone, RequestTimeout
from emulator.fakegcs.front.exchange import Exchange
from emulator.fakegcs.front.forward import Forwarder
from emulator.fakegcs.front.heads import MAX_HEAD, head_complete, head_problem, strip_te_identity
from emulator.fakegcs.front.recording import record_connect, record_refused

if TYPE_CHECKING:
    from emulator.fakegcs.front.body import SpooledBody
    from emulator.fakegcs.front.server import Front

log = logging.getLogger(__name__)
__all__ = ["ClientConnection", "ClientGone", "RequestTimeout"]  # the errors live in .errors

_RECV = 64 * 1024  # one recv for a body (allocated only while a recv is waiting)
_LINGER_S = 1.0
#: after an answer, a worker waits this long for the next request before parking the connection
LINGER_FOR_NEXT_S = 0.25
#: what :meth:`ClientConnection.serve` asks of the connection loop next
PARK, CLOSE, HANDSHAKE = "park", "close", "handshake"
#: head bytes collected so far: ``"more"`` (wait), ``"head"`` (whole), ``"junk"``, ``"gone"``
MORE, HEAD, JUNK, GONE = "more", "head", "junk", "gone"


class ClientConnection:
    """Serves one client connection (plain HTTP, possibly upgraded into a TLS tunnel)."""

    def __init__(
        self, front: Front, sock: socket.socket, conn_id: int, origin: object = None
    ) -> None:
        self.front = front
        self.raw = sock
        self.sock: socket.socket = sock
        self.conn_id = conn_id
        self.observed = False  # the front's connection observers have seen it
        self.origin = origin  # the listener that accepted it (None: the front's own port)
        self.scheme = "http"
        self.tunnel_host: str | None = None
        self.direct_tls = False  # a TLS listener connection (TLS from the first byte)
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.forwarder = Forwarder(self)
        # pass-through mode (emulator.fakegcs.upstream): this connection's upstream side
        self.upstream_forwarder = front.upstream.forwarder(self) if front.upstream else None
        self.deadline: float | None = None  # absolute end of the current request's arrival
        self.pending = bytearray()  # head bytes collected while no thread serves it
        self.first_byte: float | None = None  # when the first byte of ``pending`` came
        self.handed_off = False  # the raw socket now belongs to the front's lingering closes

    def close(self) -> None:
        self.forwarder.close()
        if self.upstream_forwarder is not None:
            self.upstream_forwarder.close()
        for s in {self.sock, self.raw}:
            if s is self.raw and self.handed_off:
                continue
            with contextlib.suppress(OSError):
                s.close()

    # -- collecting a head (no thread waits for it) -----------------------------------------
    def collect(self) -> str:
        """Read what the (non-blocking) socket holds into :attr:`pending` and judge it:
        :data:`MORE`, :data:`HEAD`, :data:`JUNK` or :data:`GONE`. Never blocks."""
        while True:
            try:
                data = self.sock.recv(_RECV)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (OSError, ssl.SSLError):
                return GONE
            if not data:
                return GONE
            if self.first_byte is None:
                self.first_byte = time.monotonic()
            self.pending += data
            if len(self.pending) > MAX_HEAD or head_complete(self.pending):
                break
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                break
        if head_problem(self.pending) is not None:
            return JUNK
        return HEAD if head_complete(self.pending) else MORE

    def _next_request_soon(self) -> str:
        """After an answer: wait up to ``LINGER_FOR_NEXT_S`` for the next request's bytes
        (:data:`HEAD`, :data:`JUNK`, :data:`GONE`, or :data:`MORE` to hand back to the loop)."""
        sock = self.sock
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            try:
                ready = select.select([sock], [], [], LINGER_FOR_NEXT_S)[0]
            except (OSError, ValueError):
                return GONE
            if not ready:
                return MORE
        try:
            sock.setblocking(False)
            return self.collect()
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.front.idle_timeout)

    # -- HTTP loop --------------------------------------------------------------------------
    def serve(self, refuse: tuple[int, str] | None = None) -> str:
        """Serve the request whose head is in :attr:`pending` and the ones that follow it
        closely (blocking, in a worker thread); :data:`PARK`, :data:`CLOSE` or
        :data:`HANDSHAKE`. ``refuse``: answer ``(status, why)`` instead and close."""
        h = self.h
        with contextlib.suppress(OSError):
            self.sock.settimeout(self.front.idle_timeout)
        while True:
            first = self.first_byte or time.monotonic()
            self.deadline = first + self.front.request_timeout
            head, self.pending, self.first_byte = bytes(self.pending), bytearray(), None
            if refuse is not None:
                self.refuse(h, refuse[0], "-", "", refuse[1])
                return CLOSE
            h.receive_data(strip_te_identity(head))
            verdict = self._requests(h)
            if verdict is not None:
                return verdict
            state = self._next_request_soon()
            if state == MORE:
                return PARK
            if state == GONE:
                return CLOSE
            if state == JUNK:
                refuse = (400, f"bad request: {head_problem(self.pending)}")

    def _requests(self, h: h11.Connection) -> str | None:
        """Serve requests while h11 holds their bytes; None when it needs a new head."""
        while True:
            verdict = self._one_request(h)
            if verdict is not None:
                return verdict
            h.start_next_cycle()
            buffered = len(getattr(h, "_receive_buffer", b"x"))
            if isinstance(self.sock, ssl.SSLSocket):
                buffered += self.sock.pending()
            if not buffered:
                return None
            self.deadline = time.monotonic() + self.front.request_timeout  # pipelined

    def _one_request(self, h: h11.Connection) -> str | None:
        """One request and its answer; a verdict when the connection cannot go on."""
        try:
            event = self.next_event(h)
        except RequestTimeout:
            self.refuse(h, 408, "-", "", "request head not received in time")
            return CLOSE
        except ClientGone:
            return CLOSE
        except h11.RemoteProtocolError as exc:
            log.debug("connection %d: protocol error: %s", self.conn_id, exc)
            self.refuse(h, 400, "-", "", f"bad request: {exc}")
            return CLOSE
        if not isinstance(event, h11.Request):
            return CLOSE
        if not event.http_version.startswith(b"1"):  # e.g. the HTTP/2 preface "PRI * HTTP/2.0"
            version = event.http_version.decode("latin-1")
            self.refuse(
                h, 505, event.method.decode("latin-1"), event.target.decode("latin-1"),
                f"HTTP/{version} is not supported here; use HTTP/1.1",
            )  # fmt: skip
            return CLOSE
        if event.method == b"CONNECT":
            if self.tunnel_host is not None:
                self.refuse(h, 400, "CONNECT", "", "CONNECT inside a tunnel")
                return CLOSE
            verdict = self._handle_connect(h, event)
            if verdict is not None:
                return verdict
        else:
            Exchange(self, h, event).handle()
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            return CLOSE
        if h.their_state is h11.SEND_BODY:  # a body we did not need (GET/HEAD/refused)
            try:
                self.drain_body(h)
            except (ClientGone, h11.RemoteProtocolError):
                return CLOSE
        if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            return CLOSE
        return None

    def next_event(self, h: h11.Connection) -> Any:
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            h.receive_data(self.recv())

    def recv(self, n: int = _RECV) -> bytes:
        idle = self.front.idle_timeout
        if self.deadline is None:
            self.sock.settimeout(idle)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout()
            self.sock.settimeout(min(idle, left))
        try:
            return self.sock.recv(n)
        except TimeoutError as exc:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise RequestTimeout() from exc
            raise ClientGone() from exc
        except (OSError, ssl.SSLError) as exc:
            raise ClientGone() from exc

    # -- sending ----------------------------------------------------------------------------
    def send(self, h: h11.Connection, event: Any) -> None:
        data = h.send(event)
        if data:
            self.sendall(data)

    def arrived(self) -> None:
        """The whole request is in: lift its deadline; answers use the idle timeout."""
        self.deadline = None
        with contextlib.suppress(OSError):
            self.sock.settimeout(self.front.idle_timeout)

    def sendall(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            raise ClientGone() from exc

    def send_error_and_close(self, h: h11.Connection, status: int, message: str) -> None:
        with contextlib.suppress(Exception):
            if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                body = json.dumps({"error": {"code": status, "message": message}}).encode()
                self.send(
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
                self.send(h, h11.Data(data=body))
                self.send(h, h11.EndOfMessage())
        if h.their_state is not h11.DONE:
            self._lingering_close()

    def _lingering_close(self) -> None:
        """Stop sending, then read and drop what the client still sends, briefly (at most
        ``_LINGER_S`` seconds), so closing does not turn into a TCP reset that destroys the
        error answer before the client has read it. A plain socket is handed to the front's
        loop for that (no thread waits on it); a TLS one is closed (its raw socket is the TLS
        layer's)."""
        if self.sock is not self.raw:
            return
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_WR)
        self.handed_off = True
        self.front.linger(self.raw, _LINGER_S)

    def refuse(self, h: h11.Connection, status: int, method: str, target: str, why: str) -> None:
        """Record and answer a request that cannot be parsed or served at all; then close."""
        self.arrived()
        seq = self.front.ledger.next_seq()
        body = json.dumps({"error": {"code": status, "message": why}}).encode()
        record_refused(self, seq, method, target, status, len(body), why)
        self.send_error_and_close(h, status, why)

    def simple_response(
        self, h: h11.Connection, status: int, body: bytes, close: bool = False
    ) -> int:
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        self.send(h, h11.Response(status_code=status, headers=headers))
        if body:
            self.send(h, h11.Data(data=body))
        self.send(h, h11.EndOfMessage())
        return len(body)

    # -- request bodies ---------------------------------------------------------------------
    def drain_body(self, h: h11.Connection) -> int:
        """Read and discard the request body; returns its size."""
        n = 0
        if h.they_are_waiting_for_100_continue:
            return 0  # never asked for it: the client will not send it (h11 closes after)
        while True:
            ev = self.next_event(h)
            if isinstance(ev, h11.Data):
                n += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return n
            else:
                raise ClientGone()

    def spool_body(self, h: h11.Connection, body: SpooledBody) -> None:
        """Receive the whole request body into ``body`` (asking for it if the client waits
        for ``100 Continue``). :class:`RequestTimeout` past the deadline; ``BodyTooLarge``."""
        if h.they_are_waiting_for_100_continue:
            self.send(h, h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            ev = self.next_event(h)
            if isinstance(ev, h11.Data):
                body.write(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return
            else:
                raise ClientGone()

    def read_body(self, h: h11.Connection, limit: int) -> bytes:
        if h.they_are_waiting_for_100_continue:
            self.send(h, h11.InformationalResponse(status_code=100, headers=[]))
        out = bytearray()
        while True:
            ev = self.next_event(h)
            if isinstance(ev, h11.Data):
                out += ev.data
                if len(out) > limit:
                    raise ClientGone()
            elif isinstance(ev, h11.EndOfMessage):
                return bytes(out)
            else:
                raise ClientGone()

    # -- CONNECT ----------------------------------------------------------------------------
    def _handle_connect(self, h: h11.Connection, req: h11.Request) -> str | None:
        """Answer a ``CONNECT``: a verdict, or None when refused (the connection goes on)."""
        t0 = time.monotonic()
        target = req.target.decode("latin-1")
        host, _, port = target.rpartition(":")
        host = host.strip("[]").lower()
        allowed = host in GOOGLE_HOSTS and port == "443"
        if not allowed and self.front.connect_policy is not None and port.isdigit():
            from emulator.fakegcs.tunnel import relay  # other hosts: a blind tunnel

            return CLOSE if relay(self, h, host, int(port), target, t0) else None
        if not allowed:
            seq = self.front.ledger.next_seq()
            body = json.dumps(
                {"error": {"code": 403, "message": f"CONNECT to {target} is not allowed"}}
            ).encode()
            self.drain_body(h)
            record_connect(self, seq, t0, host or target, target, 403, len(body))
            self.simple_response(h, 403, body)
            return None
        self.send(h, h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        if h.our_state is not h11.SWITCHED_PROTOCOL:  # pragma: no cover - h11 contract
            return CLOSE
        trailing, _closed = h.trailing_data
        if trailing:  # client spoke TLS before our 200: unsupported, drop the connection
            return CLOSE
        self.tunnel_host = host
        return HANDSHAKE

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the raw socket for a server-side TLS handshake driven by the caller
        (non-blocking; :meth:`tls_step`); a new h11 state for the requests inside."""
        self.raw.setblocking(False)
        self.sock = context.wrap_socket(self.raw, server_side=True, do_handshake_on_connect=False)
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    def tls_step(self) -> str:
        """Advance the handshake: ``"read"`` / ``"write"`` (wait for that), ``"done"``,
        ``"failed"``. Never blocks."""
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return "read"
        except ssl.SSLWantWriteError:
            return "write"
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.debug("TLS handshake failed on connection %d: %s", self.conn_id, exc)
            return "failed"
        self.scheme = "https"
        if self.direct_tls:
            sni = getattr(self.sock, "gcs_hook_sni", None)  # tls_listener.SNI_ATTR
            self.tunnel_host = sni if sni in GOOGLE_HOSTS else GOOGLE_HOSTS[0]
        return "done"
