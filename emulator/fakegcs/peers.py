"""Which local process sent a request: the owner of a loopback client socket, from ``/proc``.

``gcs-hook record`` must count a request as the program's whatever token it carries (anonymous
gcsfs, the program's own credentials) and not only when it sends the test token. The front
listens on 127.0.0.1, so every client is a local process: :class:`PeerAttribution` looks up,
once per accepted connection, the process that holds the client end of the socket
(``/proc/net/tcp`` gives the socket's inode, ``/proc/<pid>/fd`` who holds it) and whether that
process belongs to the recorded process tree: its environment carries the marker
``GCS_HOOK_RECORD_ID=<id>`` that ``record`` gives the program and every child inherits.

Invariants:
- :meth:`PeerAttribution.observe` never raises and never blocks on the client: on a system
  without ``/proc`` (or a socket gone before the look-up) the connection is simply unknown,
  and the caller falls back to the token rule.
- Only the marker's presence is read from a process's environment; nothing else from it is
  kept or logged.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass

__all__ = ["MARKER_ENV", "Peer", "PeerAttribution", "socket_owner"]

#: Environment variable carrying the recording's id into the recorded process tree.
MARKER_ENV = "GCS_HOOK_RECORD_ID"


@dataclass(frozen=True)
class Peer:
    """The process behind one connection: ``pid`` and whether it is in the recorded tree."""

    pid: int
    in_tree: bool


def _hex_addr(host: str, port: int) -> str:
    a = socket.inet_aton(host)
    return f"{int.from_bytes(a, 'little'):08X}:{port:04X}"


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the TCP socket whose local/remote ends are ``local``/``remote``."""
    want_l, want_r = _hex_addr(*local), _hex_addr(*remote)
    try:
        with open("/proc/net/tcp", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                parts = line.split()
                if len(parts) > 9 and parts[1] == want_l and parts[2] == want_r:
                    inode = int(parts[9])
                    return inode or None
    except (OSError, ValueError):
        return None
    return None


def _holds(pid: int, target: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") == target:
                return True
    return False


def socket_owner(inode: int, first: list[int] | tuple[int, ...] = ()) -> int | None:
    """A pid holding socket ``inode`` (the pids in ``first`` are tried before the rest)."""
    target = f"socket:[{inode}]"
    for pid in first:
        if _holds(pid, target):
            return pid
    tried = set(first)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for name in entries:
        if name.isdigit() and int(name) not in tried and _holds(int(name), target):
            return int(name)
    return None


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


class PeerAttribution:
    """Connection id → :class:`Peer`, for the connections of one front (see the module doc).

    ``record_id`` is the marker value the recorded tree carries; the front port is taken from
    each accepted socket."""

    def __init__(self, record_id: str) -> None:
        self.marker = f"{MARKER_ENV}={record_id}".encode()
        self._peers: dict[int, Peer] = {}
        self._recent: list[int] = []  # pids seen lately, most recent first (tried first)
        self._member: dict[int, bool] = {}  # pid -> in the tree (read once per pid)
        self._lock = threading.Lock()

    def observe(self, conn_id: int, sock: socket.socket) -> None:
        """Look up the process behind the accepted ``sock`` (never raises)."""
        try:
            server = sock.getsockname()[:2]
            client = sock.getpeername()[:2]
            inode = _socket_inode(client, server)
            if inode is None:
                return
            with self._lock:
                first = list(self._recent)
            pid = socket_owner(inode, first)
            if pid is None:
                return
            with self._lock:
                known = self._member.get(pid)
            member = known if known is not None else _has_marker(pid, self.marker)
            with self._lock:
                self._member[pid] = member
                self._peers[conn_id] = Peer(pid, member)
                if pid in self._recent:
                    self._recent.remove(pid)
                self._recent.insert(0, pid)
                del self._recent[32:]
        except Exception:  # noqa: BLE001 - attribution is best effort; the token rule remains
            return

    def peers(self) -> dict[int, Peer]:
        """A copy of what was found so far (connection id → peer)."""
        with self._lock:
            return dict(self._peers)
