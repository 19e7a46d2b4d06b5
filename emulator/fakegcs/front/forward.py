"""Forwarding one request to the backend and streaming the answer back to the client.

Invariants:
- One persistent backend connection per client connection (:class:`Forwarder`), reopened once
  when a body-less request finds it closed; a request with a body is never retried.
- Hop-by-hop headers and ``Authorization`` are never forwarded; ``Host`` becomes
  ``storage.googleapis.com``; ``Location`` answers are rewritten to come back through the front.
- The request body was received whole before (:mod:`emulator.fakegcs.front.body`), so the
  backend never waits on a slow client; it is sent with a ``Content-Length``.
- Response bodies stream through a buffer of ``CHUNK`` bytes borrowed for the request only;
  on the plain path, large ``Content-Length`` bodies move backend socket → pipe → client
  socket with ``splice(2)``.
- The backend must answer within ``backend_timeout`` (else 504 "backend did not answer in N s")
  and keep sending within it (else the answer is cut and its record marked ``aborted``).
- A Range start past the end that the backend ignored gets GCS's 416.
- The ledger record is made before the last byte of the answer goes out.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import struct
import urllib.parse
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.front.errors import ClientGone
from emulator.fakegcs.front.splice import HAVE_SPLICE, SPLICE_MIN, splice_body
from emulator.fakegcs.shaping import ShapedSender

if TYPE_CHECKING:
    from emulator.fakegcs.faults import Fault
    from emulator.fakegcs.front.connection import ClientConnection
    from emulator.fakegcs.front.exchange import Exchange
    from emulator.fakegcs.front.recording import Recorder

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # forward buffer (bytes), borrowed per request from Front.buffers
#: bodies up to this size are read whole and sent with their head in one piece
SMALL_BODY = 64 * 1024
#: Request headers a proxy must not pass on (RFC 9110 §7.6.1 hop-by-hop headers, plus ``Host``
#: and ``Expect``, which the forwarding connection sets itself). Shared with the pass-through
#: forwarder (:mod:`emulator.fakegcs.upstream`).
HOP_BY_HOP = frozenset(
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
    }
)
#: To the fake backend the front also drops ``Authorization``: the front checked it already.
_HOP_BY_HOP = HOP_BY_HOP | {"authorization"}
_UPSTREAM_RETRY_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)

_INT64 = 1 << 63


class Forwarder:
    """The backend side of one client connection."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.front = conn.front
        self.upstream: http.client.HTTPConnection | None = None
        self.pipe: tuple[int, int] | None = None

    def close(self) -> None:
        if self.pipe is not None:
            for fd in self.pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.pipe = None
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
            self.upstream = http.client.HTTPConnection(
                host, port, timeout=self.front.backend_timeout, blocksize=CHUNK
            )
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

    def forward(self, ex: Exchange, fault: Fault | None = None) -> None:
        """Forward one request (its body already spooled) and stream the answer back.

        ``fault``: a network fault to apply to this answer (``reset``, ``truncate``, ``stall``).
        """
        conn, h, rec, hmap = self.conn, ex.h, ex.rec, ex.hmap
        out_headers = [
            (k, v) for k, v in ex.headers if k.lower() not in _HOP_BY_HOP | {"content-length"}
        ]
        rng = rec.fields["range"]
        if rng is not None and rng[1] >= _INT64 and rng[0] < _INT64:
            # an end past 2^63 (the backend ignores the header): GCS reads it as "to the end"
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "range"]
            out_headers.append(("Range", f"bytes={rng[0]}-"))
        out_headers.append(("Host", "storage.googleapis.com"))
        if ex.body is not None or "content-length" in hmap:
            out_headers.append(("Content-Length", str(ex.bytes_in)))
        bytes_in = ex.bytes_in
        timeout = self.front.backend_timeout
        resp: http.client.HTTPResponse | None = None
        for attempt in (0, 1):
            up = self._upstream(fresh=attempt > 0)
            try:
                up.putrequest(ex.method, ex.target, skip_host=True, skip_accept_encoding=True)
                for k, v in out_headers:
                    up.putheader(k, v)
                up.endheaders()
                if ex.body is not None:
                    for piece in ex.body.chunks(CHUNK):
                        up.send(piece)
                resp = up.getresponse()
                break
            except TimeoutError:
                self._gateway_error(h, 504, f"backend did not answer in {timeout:g} s", rec)
                return
            except _UPSTREAM_RETRY_ERRORS:
                if ex.body is not None or attempt:
                    self._gateway_error(h, 502, "backend connection lost", rec)
                    return
            except OSError as exc:
                self._gateway_error(h, 502, f"backend unreachable: {exc}", rec)
                return
        assert resp is not None
        if (
            rng is not None
            and resp.status == 200
            and ex.method == "GET"
            and resp.length is not None
            and rng[0] >= resp.length
        ):  # a start past the end that the backend ignored (e.g. it overflowed): GCS says 416
            self._discard(resp)
            self._gateway_error(h, 416, "The requested range cannot be satisfied.", rec)
            return
        if resp.status >= 400 and self.front.persist_dir and (resp.length or 0) <= 65536:
            self._redacted_error(h, resp, rec)  # e.g. "mkdir /the/persist/dir/b/p: not a dir"
            return
        client_host = hmap.get("host", "")
        resp_headers: list[tuple[str, str]] = []
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in _HOP_BY_HOP:
                continue
            if lk == "location":
                v = self._rewrite_location(v, client_host)
            resp_headers.append((k, v))
        if ex.close_after:
            resp_headers.append(("Connection", "close"))
        if resp.will_close:
            self.upstream = None  # http.client closes it after the body; reconnect next time
        shaping = self.front.shaping
        if shaping is not None:
            shaping.delay_first_byte()
        if fault is not None and fault.action == "stall":
            self.front.stopping.wait(fault.stall_s)
        rec.status = resp.status
        rec.mark_first_byte()
        extra = {"injected": True, "fault": fault.action} if fault is not None else None
        if resp.length == 0:  # HEAD, 204/304, or an empty body: complete with the headers
            rec.record(resp.status, 0, bytes_in, extra=extra)
        head = h11.Response(
            status_code=resp.status,
            headers=resp_headers,
            reason=(resp.reason or "").encode("latin-1", "replace"),
        )
        if fault is None and shaping is None and resp.length and resp.length <= SMALL_BODY:
            self._send_small(h, head, resp, rec, bytes_in)
            return
        conn.send(h, head)
        if (
            HAVE_SPLICE
            and fault is None
            and conn.scheme == "http"
            and self.front.shaping is None
            and resp.length is not None
            and resp.length >= SPLICE_MIN
        ):
            splice_body(self, h, resp, rec, bytes_in)
            return
        cut = None
        if fault is not None and fault.action in ("reset", "truncate"):
            cut = fault.after_bytes if fault.after_bytes is not None else (resp.length or 0) // 2
        with self.front.buffers.borrow() as buf:
            self._stream_body(h, resp, rec, bytes_in, buf, cut, fault, extra)

    def _send_small(
        self,
        h: h11.Connection,
        head: h11.Response,
        resp: http.client.HTTPResponse,
        rec: Recorder,
        bytes_in: int,
    ) -> None:
        """A body of at most ``SMALL_BODY`` bytes: read whole, then head and body in one send
        (most of a test suite's answers: metadata, listings, small ranges)."""
        try:
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            log.debug("backend body read failed: %s", exc)
            self._gateway_error(h, 502, "backend connection lost", rec)
            return
        rec.record(resp.status, len(body), bytes_in)
        rec.bytes_out = len(body)
        out = h.send(head) or b""
        out += h.send(h11.Data(data=body)) or b""
        out += h.send(h11.EndOfMessage()) or b""
        self.conn.sendall(out)

    def _stream_body(
        self,
        h: h11.Connection,
        resp: http.client.HTTPResponse,
        rec: Recorder,
        bytes_in: int,
        buf: bytearray,
        cut: int | None,
        fault: Fault | None,
        extra: dict | None,
    ) -> None:
        """Copy the body backend → client through ``buf`` (shaped; cut at ``cut`` bytes)."""
        conn = self.conn
        bytes_out = 0
        sender = ShapedSender(lambda: self.front.shaping)
        mv = memoryview(buf)
        try:
            while True:
                n = resp.readinto(buf)
                if not n:
                    break
                if cut is not None and bytes_out + n >= cut:
                    n = max(0, cut - bytes_out)
                    assert fault is not None
                    self._cut(h, mv[:n], rec, bytes_out, bytes_in, fault)
                if resp.length == 0:  # this is the last piece of a Content-Length body
                    rec.record(
                        resp.status, bytes_out + n, bytes_in, extra=extra, t_end=sender.due(n)
                    )
                for piece in h.send_with_data_passthrough(h11.Data(data=mv[:n])):
                    for part in sender.pieces(piece):
                        conn.sendall(part)
                bytes_out += n
                rec.bytes_out = bytes_out
        except (OSError, http.client.HTTPException) as exc:
            # backend died or stalled mid-body: the client sees a truncated response and a
            # closed connection; the record says so
            self.upstream = None
            log.debug("backend body read failed: %s", exc)
            rec.record(resp.status, bytes_out, bytes_in, extra={"aborted": f"backend: {exc}"})
            raise ClientGone() from exc
        rec.record(resp.status, bytes_out, bytes_in, extra=extra)
        conn.send(h, h11.EndOfMessage())

    def _cut(
        self,
        h: h11.Connection,
        last: memoryview,
        rec: Recorder,
        sent: int,
        bytes_in: int,
        fault: Fault,
    ) -> None:
        """Send ``last``, then end the connection the way ``fault`` says; never returns."""
        conn = self.conn
        rec.record(
            rec.status, sent + len(last), bytes_in,
            extra={"injected": True, "fault": fault.action, "aborted": "injected"},
        )  # fmt: skip
        with contextlib.suppress(Exception):
            for piece in h.send_with_data_passthrough(h11.Data(data=last)):
                conn.sock.sendall(piece)
        self.upstream = None
        if fault.action == "reset":  # RST instead of FIN
            with contextlib.suppress(OSError):
                conn.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            with contextlib.suppress(OSError):
                conn.raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.raw.close()
        raise ClientGone()

    def _redacted_error(
        self, h: h11.Connection, resp: http.client.HTTPResponse, rec: Recorder
    ) -> None:
        """Pass on a small backend error answer with the persist directory's path removed."""
        try:
            body = resp.read()
        except (OSError, http.client.HTTPException):
            body = b""
            self.upstream = None
        persist_dir = self.front.persist_dir or ""
        real = os.path.realpath(persist_dir)
        for form in (persist_dir, json.dumps(persist_dir)[1:-1], real, json.dumps(real)[1:-1]):
            body = body.replace(form.encode(), b"<persist dir>")
        if resp.will_close:
            self.upstream = None
        close = h.their_state is not h11.DONE
        rec.record(resp.status, len(body), rec.bytes_in)
        self.conn.simple_response(h, resp.status, body, close=close)

    @staticmethod
    def _discard(resp: http.client.HTTPResponse) -> None:
        with contextlib.suppress(Exception):
            if resp.length is not None and resp.length <= CHUNK:
                resp.read()
            else:
                resp.close()

    def _gateway_error(self, h: h11.Connection, status: int, message: str, rec: Recorder) -> None:
        """Answer ``status`` (502/504/416) with GCS's error JSON; record it."""
        self.upstream = None
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        close = h.their_state is not h11.DONE
        rec.record(status, len(body), rec.bytes_in)
        self.conn.simple_response(h, status, body, close=close)
