"""Zero-copy forwarding of large plain-HTTP answers: backend socket → pipe → client socket.

Used by :mod:`emulator.fakegcs.front.forward` on the plain path only (TLS needs the bytes in
user space) for ``Content-Length`` bodies of at least ``SPLICE_MIN`` bytes when no shaping or
fault applies. Invariants: every byte goes through the kernel once; waits on the backend are
bounded by ``backend_timeout``, on the client by ``idle_timeout``; h11 is told about every
byte so its bookkeeping stays right; a failure marks the record ``aborted`` and ends the
connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import logging
import os
import select
import socket
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.front.errors import ClientGone

if TYPE_CHECKING:
    from emulator.fakegcs.front.forward import Forwarder
    from emulator.fakegcs.front.recording import Recorder

log = logging.getLogger(__name__)

HAVE_SPLICE = hasattr(os, "splice")
SPLICE_MIN = 256 * 1024  # bodies at least this large on the plain path are spliced
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


_ZEROS = memoryview(bytes(256 * 1024))  # h11 bookkeeping for spliced bytes (never sent)


def _wait_fd(fd: int, events: int, timeout: float) -> None:
    poller = select.poll()
    poller.register(fd, events)
    if not poller.poll(timeout * 1000):
        raise TimeoutError(f"socket not ready within {timeout:g} s")


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


def splice_body(
    fw: Forwarder, h: h11.Connection, resp: http.client.HTTPResponse, rec: Recorder, bytes_in: int
) -> None:
    """Move a Content-Length body backend socket → pipe → client socket in the kernel.

    Used on the plain-HTTP path only (TLS needs the bytes in user space). Bytes that
    http.client had already buffered go first; h11 is told about every byte (without
    copying) so its Content-Length bookkeeping stays right.
    """
    conn = fw.conn
    total = resp.length or 0
    assert resp.fp is not None and fw.upstream is not None
    up_sock = fw.upstream.sock
    pre = resp.fp.read1(total)  # what the buffered reader already holds (or one read)
    remaining = total - len(pre)
    sent = 0
    idle, backend_wait = fw.front.idle_timeout, fw.front.backend_timeout
    try:
        if remaining == 0:
            rec.record(resp.status, total, bytes_in)
        if pre:
            conn.sendall(pre)
        sent = len(pre)
        rec.bytes_out = sent
        if fw.pipe is None:
            fw.pipe = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(fw.pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)
        rfd, wfd = fw.pipe
        src, dst = up_sock.fileno(), conn.raw.fileno()
        while remaining:
            lowat = min(remaining, _PIPE_SIZE // 2)
            up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
            n = _splice_all_once(src, wfd, min(remaining, _PIPE_SIZE), backend_wait)
            if n == 0:
                raise ConnectionResetError("backend closed the connection mid-body")
            remaining -= n
            if remaining == 0:
                rec.record(resp.status, total, bytes_in)
            while n:
                k = _splice_out(rfd, dst, n, idle)
                n -= k
                sent += k
            rec.bytes_out = sent
    except OSError as exc:
        fw.upstream = None
        with contextlib.suppress(Exception):
            resp.close()
        log.debug("splice failed: %s", exc)
        rec.record(resp.status, sent, bytes_in, extra={"aborted": str(exc)[:200]})
        raise ClientGone() from exc
    up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    resp.length = 0
    resp.close()  # body fully consumed; the backend connection stays reusable
    left = total
    while left:  # account for the spliced bytes in h11 (nothing is sent here)
        k = min(left, len(_ZEROS))
        h.send_with_data_passthrough(h11.Data(data=_ZEROS[:k]))
        left -= k
    conn.send(h, h11.EndOfMessage())
