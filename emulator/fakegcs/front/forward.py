"""Forwarding one request to the backend and streaming the answer back to the client.

Invariants:
- One persistent backend connection per client connection (:class:`Forwarder`), reopened once
  when a body-less request finds it closed; a request with a body is never retried.
- Hop-by-hop headers and ``Authorization`` are never forwarded; ``Host`` becomes
  ``storage.googleapis.com``; ``Location`` answers are rewritten to come back through the front.
- Response bodies stream in pieces of at most ``CHUNK`` bytes; on the plain path, large
  ``Content-Length`` bodies move backend socket → pipe → client socket with ``splice(2)``.
- The ledger record is made before the last byte of the answer goes out.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import select
import socket
import urllib.parse
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.shaping import ShapedSender

if TYPE_CHECKING:
    from emulator.fakegcs.front.connection import ClientConnection
    from emulator.fakegcs.front.exchange import Exchange
    from emulator.fakegcs.front.recording import Recorder

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # forward buffer (bytes) per direction per connection
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


class Forwarder:
    """The backend side of one client connection."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.front = conn.front
        self.upstream: http.client.HTTPConnection | None = None
        self.buf = bytearray(CHUNK)
        self._pipe: tuple[int, int] | None = None

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pipe = None
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                self.upstream.close()

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
        if self.conn.scheme == "https":
            return "https://www.googleapis.com"
        return f"http://{client_host}" if client_host else self.front.url

    def _rewrite_location(self, value: str, client_host: str) -> str:
        u = urllib.parse.urlsplit(value)
        if not u.scheme:
            return value
        rest = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, u.fragment))
        return self._location_base(client_host) + rest

    def forward(self, ex: Exchange) -> None:
        """Forward one request to the backend and stream the answer back."""
        from emulator.fakegcs.front.connection import ClientGone

        conn, h, rec, hmap = self.conn, ex.h, ex.rec, ex.hmap
        out_headers = [(k, v) for k, v in ex.headers if k.lower() not in _HOP_BY_HOP]
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
                resp = up.getresponse()
                break
            except _UPSTREAM_RETRY_ERRORS:
                if has_body or attempt:
                    self._bad_gateway(h, "backend connection lost", bytes_in, rec)
                    return
            except OSError as exc:
                self._bad_gateway(h, f"backend unreachable: {exc}", bytes_in, rec)
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
        rec.status = resp.status
        if resp.length == 0:  # HEAD, 204/304, or an empty body: complete with the headers
            rec.record(resp.status, 0, bytes_in)
        conn.send(
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
            and conn.scheme == "http"
            and self.front.shaping is None
            and resp.length is not None
            and resp.length >= _SPLICE_MIN
        ):
            self._splice_body(h, resp, rec, bytes_in)
            return
        try:
            while True:
                n = resp.readinto(self.buf)
                if not n:
                    break
                if resp.length == 0:  # this is the last piece of a Content-Length body
                    rec.record(resp.status, bytes_out + n, bytes_in)
                for piece in h.send_with_data_passthrough(h11.Data(data=mv[:n])):
                    for part in sender.pieces(piece):
                        conn.sendall(part)
                bytes_out += n
                rec.bytes_out = bytes_out
        except (OSError, http.client.HTTPException) as exc:
            # backend died mid-body: the client sees a truncated response and a closed connection
            self.upstream = None
            log.debug("backend body read failed: %s", exc)
            raise ClientGone() from exc
        rec.record(resp.status, bytes_out, bytes_in)
        conn.send(h, h11.EndOfMessage())

    def _splice_body(
        self, h: h11.Connection, resp: http.client.HTTPResponse, rec: Recorder, bytes_in: int
    ) -> None:
        """Move a Content-Length body backend socket → pipe → client socket in the kernel.

        Used on the plain-HTTP path only (TLS needs the bytes in user space). Bytes that
        http.client had already buffered go first; h11 is told about every byte (without
        copying) so its Content-Length bookkeeping stays right.
        """
        from emulator.fakegcs.front.connection import ClientGone

        conn = self.conn
        total = resp.length or 0
        assert resp.fp is not None and self.upstream is not None
        up_sock = self.upstream.sock
        pre = resp.fp.read1(total)  # what the buffered reader already holds (or one read)
        remaining = total - len(pre)
        sent = 0
        timeout = self.front.idle_timeout
        try:
            if remaining == 0:
                rec.record(resp.status, total, bytes_in)
            if pre:
                conn.sendall(pre)
            sent = len(pre)
            rec.bytes_out = sent
            if self._pipe is None:
                self._pipe = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(self._pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)
            rfd, wfd = self._pipe
            src, dst = up_sock.fileno(), conn.raw.fileno()
            while remaining:
                lowat = min(remaining, _PIPE_SIZE // 2)
                up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                n = _splice_all_once(src, wfd, min(remaining, _PIPE_SIZE), timeout)
                if n == 0:
                    raise ConnectionResetError("backend closed the connection mid-body")
                remaining -= n
                if remaining == 0:
                    rec.record(resp.status, total, bytes_in)
                while n:
                    k = _splice_out(rfd, dst, n, timeout)
                    n -= k
                    sent += k
                rec.bytes_out = sent
        except OSError as exc:
            self.upstream = None
            with contextlib.suppress(Exception):
                resp.close()
            log.debug("splice failed: %s", exc)
            raise ClientGone() from exc
        up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        resp.length = 0
        resp.close()  # body fully consumed; the backend connection stays reusable
        zero = memoryview(self.buf)
        left = total
        while left:  # account for the spliced bytes in h11 (nothing is sent here)
            k = min(left, len(zero))
            h.send_with_data_passthrough(h11.Data(data=zero[:k]))
            left -= k
        conn.send(h, h11.EndOfMessage())

    def _bad_gateway(self, h: h11.Connection, message: str, bytes_in: int, rec: Recorder) -> None:
        self.upstream = None
        body = json.dumps({"error": {"code": 502, "message": message}}).encode()
        close = h.their_state is not h11.DONE
        rec.record(502, len(body), bytes_in)
        self.conn.simple_response(h, 502, body, close=close)
