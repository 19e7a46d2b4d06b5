"""Blind ``CONNECT`` tunnels for the hosts the front does not terminate (pass-through mode).

While recording a real job (:mod:`emulator.fakegcs.upstream`) the program reaches every host
through the front's ``https_proxy``. The Google storage hosts are terminated and forwarded;
any other host (the OAuth token endpoint ``oauth2.googleapis.com``, anything else) goes
through :func:`relay`: the front connects to it and copies bytes both ways without looking at
them. The program verifies that host's certificate itself (its CA bundle holds the system
CAs).

Invariants:
- :class:`ConnectPolicy` alone decides where a tunnel may go: ``connect_to`` maps a host to a
  fixed address (tests: loopback only); other hosts go to their own name on an allowed port
  only when ``allow_other`` is set; anything else is refused with 403.
- No TLS termination, no parsing: the ledger gets one record per tunnel (method ``CONNECT``,
  kind ``other``, the ``host:port`` asked for, ``extra["tunnel"] = "blind"``) with the byte
  counts each way (``bytes_in`` program → host, ``bytes_out`` host → program), made when the
  tunnel closes.
- A tunnel lives while both sides are open and neither is idle longer than the front's
  ``idle_timeout``; then both sockets are closed.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.front.recording import Recorder

if TYPE_CHECKING:
    from emulator.fakegcs.front.connection import ClientConnection

_PIECE = 256 * 1024
CONNECT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ConnectPolicy:
    """Where a blind tunnel to ``host:port`` may go."""

    connect_to: dict[str, tuple[str, int]] = field(default_factory=dict)
    allow_other: bool = True
    ports: frozenset[int] = frozenset({443})

    @staticmethod
    def parse_connect_to(spec: str) -> tuple[str, tuple[str, int]]:
        """``HOST=ADDR:PORT`` → ``(host, (addr, port))``; ValueError with a one-line reason."""
        host, sep, addr = spec.partition("=")
        ip, colon, port = addr.rpartition(":")
        if not sep or not host or not colon or not ip or not port.isdigit():
            raise ValueError(f"--connect-to {spec!r}: use HOST=ADDR:PORT")
        if not 0 < int(port) < 65536:
            raise ValueError(f"--connect-to {spec!r}: port out of range")
        return host.lower(), (ip.strip("[]"), int(port))

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """The address to connect to, or None (refused)."""
        if host in self.connect_to:
            return self.connect_to[host]
        if self.allow_other and port in self.ports:
            return (host, port)
        return None


def _refuse(
    conn: ClientConnection, h: h11.Connection, rec: Recorder, status: int, msg: str
) -> None:
    body = json.dumps({"error": {"code": status, "message": msg}}).encode()
    conn.drain_body(h)
    rec.record(status, len(body), 0, extra={"tunnel": "blind"})
    conn.simple_response(h, status, body)


def relay(
    conn: ClientConnection, h: h11.Connection, host: str, port: int, target: str, t0: float
) -> bool:
    """Serve a ``CONNECT host:port`` as a blind tunnel. True when the connection is used up."""
    front = conn.front
    rec = Recorder(
        conn, seq=front.ledger.next_seq(), t0=t0, host=host, method="CONNECT", path=target,
        query={}, rng=None, principal="program", kind="other", bucket=None, obj=None,
    )  # fmt: skip
    policy = front.connect_policy
    address = policy.resolve(host, port) if policy is not None else None
    if address is None:
        _refuse(conn, h, rec, 403, f"CONNECT to {target} is not allowed")
        return False
    try:
        far = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        _refuse(conn, h, rec, 502, f"cannot reach {target}: {type(exc).__name__}")
        return False
    try:
        conn.send(h, h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        trailing, _closed = h.trailing_data
        n_in, n_out = _pump(conn.raw, far, bytes(trailing), front.idle_timeout)
        rec.record(200, n_out, n_in, extra={"tunnel": "blind"})
    finally:
        rec.finish()
        with contextlib.suppress(OSError):
            far.close()
    return True


def _pump(client: socket.socket, far: socket.socket, first: bytes, idle: float) -> tuple[int, int]:
    """Copy bytes both ways until both sides have closed (an end of file is passed on as a
    half-close), a socket fails, or nothing moved for ``idle`` s. Returns (in, out)."""
    n_in = n_out = 0
    client.setblocking(True)
    far.setblocking(True)
    if first:
        far.sendall(first)
        n_in += len(first)
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, far)
    sel.register(far, selectors.EVENT_READ, client)
    open_sides = 2
    last = time.monotonic()
    try:
        while open_sides:
            ready = sel.select(timeout=1.0)
            if not ready:
                if time.monotonic() - last > idle:
                    break
                continue
            last = time.monotonic()
            for key, _ in ready:
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                dst: socket.socket = key.data
                try:
                    data = src.recv(_PIECE)
                    if data:
                        dst.sendall(data)
                except OSError:
                    return n_in, n_out
                if not data:
                    sel.unregister(src)
                    open_sides -= 1
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                elif src is client:
                    n_in += len(data)
                else:
                    n_out += len(data)
    finally:
        sel.close()
    return n_in, n_out
