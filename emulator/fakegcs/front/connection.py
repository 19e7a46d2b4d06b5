"""One client connection: the HTTP/1.1 loop (h11), socket I/O, ``CONNECT`` and the TLS tunnel.

Invariants:
- A connection is served by one thread, request after request (keep-alive); a request is
  handed to :class:`emulator.fakegcs.front.exchange.Exchange` and the loop goes on only when
  both sides of h11 are ``DONE``.
- ``CONNECT`` is accepted once per connection, only to ``GOOGLE_HOSTS`` on port 443; the
  connection then speaks TLS (``self.sock``) over the same TCP socket (``self.raw``) and the
  loop is re-entered inside the tunnel.
- Every socket error or protocol violation of the client ends the connection
  (:class:`ClientGone`); it never escapes the connection's thread. A malformed head gets a 400,
  an HTTP/2 preface a 505; both are recorded in the ledger and never forwarded.
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
import re
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import h11

from emulator.fakegcs.certs import GOOGLE_HOSTS
from emulator.fakegcs.front.errors import ClientGone, RequestTimeout
from emulator.fakegcs.front.exchange import Exchange
from emulator.fakegcs.front.forward import Forwarder
from emulator.fakegcs.front.recording import record_connect, record_refused

if TYPE_CHECKING:
    from emulator.fakegcs.front.body import SpooledBody
    from emulator.fakegcs.front.server import Front

log = logging.getLogger(__name__)
__all__ = ["ClientConnection", "ClientGone", "RequestTimeout"]  # the errors live in .errors

_RECV = 64 * 1024  # one recv for a body (allocated only while a recv is waiting)
_RECV_HEAD = 8 * 1024  # one recv while waiting for a request: idle connections hold only this
_MAX_HEAD = 64 * 1024
_TE_IDENTITY = re.compile(rb"(?i)^transfer-encoding[ \t]*:[ \t]*identity[ \t]*$")
_LINGER_S = 1.0
_LINGER_BYTES = 16 << 20
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class ClientConnection:
    """Serves one client connection (plain HTTP, possibly upgraded into a TLS tunnel)."""

    def __init__(self, front: Front, sock: socket.socket, conn_id: int) -> None:
        self.front = front
        self.raw = sock
        self.sock: socket.socket = sock
        self.conn_id = conn_id
        self.scheme = "http"
        self.tunnel_host: str | None = None
        self.forwarder = Forwarder(self)
        # pass-through mode (emulator.fakegcs.upstream): this connection's upstream side
        self.upstream_forwarder = front.upstream.forwarder(self) if front.upstream else None
        self.deadline: float | None = None  # absolute end of the current request's arrival
        sock.settimeout(front.idle_timeout)

    def close(self) -> None:
        self.forwarder.close()
        if self.upstream_forwarder is not None:
            self.upstream_forwarder.close()
        for s in {self.sock, self.raw}:
            with contextlib.suppress(OSError):
                s.close()

    # -- HTTP loop --------------------------------------------------------------------------
    def run(self) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        while True:
            self.deadline = None
            try:
                event = self.next_event(h)
            except RequestTimeout:
                self.refuse(h, 408, "-", "", "request head not received in time")
                return
            except ClientGone:
                return
            except h11.RemoteProtocolError as exc:
                log.debug("connection %d: protocol error: %s", self.conn_id, exc)
                self.refuse(h, 400, "-", "", f"bad request: {exc}")
                return
            if isinstance(event, h11.ConnectionClosed) or event is None:
                return
            if not isinstance(event, h11.Request):
                return
            if self.deadline is None:  # a pipelined head that was already buffered
                self.deadline = time.monotonic() + self.front.request_timeout
            if not event.http_version.startswith(b"1"):  # e.g. the HTTP/2 preface "PRI * HTTP/2.0"
                version = event.http_version.decode("latin-1")
                self.refuse(
                    h, 505, event.method.decode("latin-1"), event.target.decode("latin-1"),
                    f"HTTP/{version} is not supported here; use HTTP/1.1",
                )  # fmt: skip
                return
            if event.method == b"CONNECT":
                if self.tunnel_host is not None:
                    self.refuse(h, 400, "CONNECT", "", "CONNECT inside a tunnel")
                    return
                if self._handle_connect(h, event):
                    return  # run() was re-entered for the tunnel and has finished
            else:
                Exchange(self, h, event).handle()
            if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                return
            if h.their_state is h11.SEND_BODY:  # a body we did not need (GET/HEAD/refused)
                try:
                    self.drain_body(h)
                except (ClientGone, h11.RemoteProtocolError):
                    return
            if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return
            h.start_next_cycle()

    def next_event(self, h: h11.Connection) -> Any:
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            if h.their_state is h11.IDLE and not len(getattr(h, "_receive_buffer", b"x")):
                h.receive_data(self._recv_head())  # a fresh head starts in our buffer
            else:
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

    def _recv_head(self) -> bytes:
        """Receive at least a whole request head and drop ``Transfer-Encoding: identity``.

        libcurl as used by TF sends ``Transfer-Encoding: identity`` on body-less POSTs (upload
        initiation), which h11 (correctly, per RFC 9112) rejects; it means "no coding", so the
        line is removed before h11 parses the head. The request deadline starts at the first
        byte.
        """
        data = self.recv(_RECV_HEAD)
        self.deadline = time.monotonic() + self.front.request_timeout
        while data and not _HEAD_END.search(data) and len(data) < _MAX_HEAD:
            more = self.recv(_RECV_HEAD)
            if not more:
                break
            data += more
        m = _HEAD_END.search(data)
        if m and b"identity" in data[: m.start()].lower():
            lines = re.split(rb"\r?\n", data[: m.start()])
            kept = [ln for ln in lines if not _TE_IDENTITY.match(ln)]
            return b"\r\n".join(kept) + data[m.start() :]
        return data

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
        ``_LINGER_S`` seconds and ``_LINGER_BYTES``), so closing does not turn into a TCP reset
        that destroys the error answer before the client has read it."""
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_WR)
        end = time.monotonic() + _LINGER_S
        left = _LINGER_BYTES
        with contextlib.suppress(OSError, ssl.SSLError):
            while left > 0:
                wait = end - time.monotonic()
                if wait <= 0:
                    return
                self.raw.settimeout(wait)
                got = self.raw.recv(min(left, _RECV))
                if not got:
                    return
                left -= len(got)

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
    def _handle_connect(self, h: h11.Connection, req: h11.Request) -> bool:
        t0 = time.monotonic()
        target = req.target.decode("latin-1")
        host, _, port = target.rpartition(":")
        host = host.strip("[]").lower()
        allowed = host in GOOGLE_HOSTS and port == "443"
        if not allowed and self.front.connect_policy is not None and port.isdigit():
            from emulator.fakegcs.tunnel import relay  # other hosts: a blind tunnel

            return relay(self, h, host, int(port), target, t0)
        if not allowed:
            seq = self.front.ledger.next_seq()
            body = json.dumps(
                {"error": {"code": 403, "message": f"CONNECT to {target} is not allowed"}}
            ).encode()
            self.drain_body(h)
            record_connect(self, seq, t0, host or target, target, 403, len(body))
            self.simple_response(h, 403, body)
            return False
        self.send(h, h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        if h.our_state is not h11.SWITCHED_PROTOCOL:  # pragma: no cover - h11 contract
            return True
        trailing, _closed = h.trailing_data
        if trailing:  # client spoke TLS before our 200: unsupported, drop the connection
            return True
        try:
            # the whole handshake is one socket operation: its total time is bounded by this
            self.raw.settimeout(min(self.front.idle_timeout, self.front.request_timeout))
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
