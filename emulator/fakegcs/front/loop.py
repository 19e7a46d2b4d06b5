"""The connection loop: one thread accepts, holds every waiting connection and runs handshakes.

Why: with a thread per connection, idle or half-open clients (a keep-alive pool, a port
scanner, a slowloris) each held a thread and a slot until a 60 s timeout, and enough of them
locked every other client out. Here a connection costs a thread only while a request is being
served; waiting costs a socket and a few KB.

What the loop holds (selector, non-blocking sockets):
- the listening sockets: the front's port (plain HTTP + ``CONNECT``) and any direct-TLS
  listener (:mod:`emulator.fakegcs.tls_listener`);
- every connection waiting for a request head, collecting its bytes
  (:meth:`ClientConnection.collect`) until the head is whole (then a worker serves it,
  :mod:`emulator.fakegcs.front.workers`) or shows junk (400 at once);
- every connection in a TLS handshake (after ``CONNECT``, or on a TLS listener), driven
  without blocking.

Invariants:
- At most ``front.max_connections`` connections are open. At the cap a new one evicts the
  waiting connection that made no progress for longest (idle or handshaking before partial
  heads); only when none waits is the new one answered 503 and closed.
- Deadlines: no first byte within ``idle_timeout`` — closed; a head not whole within
  ``request_timeout`` of its first byte — 408; a handshake not done within
  ``min(idle_timeout, request_timeout)`` — closed.
- The loop never blocks on a client and survives any per-connection failure (a worker that
  cannot start: 503 where possible, one line on stderr).
- Sockets held by the loop are touched only by the loop thread; :meth:`stop` closes them
  there; it returns within its timeout.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.fakegcs.front.connection import (
    GONE,
    HEAD,
    JUNK,
    ClientConnection,
)
from emulator.fakegcs.front.heads import head_problem
from emulator.fakegcs.front.notices import warn

if TYPE_CHECKING:
    from emulator.fakegcs.front.server import Front

log = logging.getLogger(__name__)

TICK_S = 0.25  # deadlines are checked this often
_ACCEPT_BURST = 64  # connections accepted per wake-up of one listener
_EMFILE_PAUSE_S = 0.05


@dataclass(eq=False)
class Listener:
    """A listening socket served by the loop; ``direct_tls``: TLS from the first byte."""

    sock: socket.socket
    direct_tls: bool = False
    owner: object = None
    paused_until: float = 0.0


@dataclass(eq=False)
class Waiting:
    """A connection the loop holds: ``state`` is ``"head"`` or ``"handshake"``."""

    conn: ClientConnection
    state: str
    since: float  # last progress (accepted, a byte, a handshake step)
    deadline: float
    events: int = selectors.EVENT_READ


class ConnectionLoop:
    """See the module docstring. Start with :meth:`start`; :meth:`stop` ends it."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._inbox: collections.deque[tuple] = collections.deque()
        self._waiting: dict[ClientConnection, Waiting] = {}
        self._listeners: list[Listener] = []
        self._stopped = threading.Event()
        self.evicted = 0  # waiting connections closed to make room at the cap
        self.thread = threading.Thread(target=self._run, name="front-loop", daemon=True)

    # -- other threads ----------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def call(self, *message: object) -> None:
        """Hand the loop thread a message (thread-safe): ``("park", conn)``,
        ``("handshake", conn)``, ``("listen", Listener)``, ``("unlisten", owner, Event)``,
        ``("linger", sock, seconds)``."""
        self._inbox.append(message)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop(self, timeout: float) -> None:
        """Stop accepting and close every connection the loop holds (in the loop thread)."""
        self.call("stop")
        self.thread.join(timeout)

    def waiting(self) -> int:
        return len(self._waiting)

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        next_tick = time.monotonic() + TICK_S
        try:
            while not self._stopped.is_set():
                try:
                    ready = self.sel.select(max(0.0, next_tick - time.monotonic()))
                except OSError:  # a socket closed under us: drop it on the next step
                    ready = []
                    self._drop_closed()
                for key, events in ready:
                    try:
                        self._ready(key, events)
                    except Exception:  # never let one connection stop the loop
                        log.debug("front loop: event failed", exc_info=True)
                        if isinstance(key.data, Waiting):
                            self._close(key.data)
                self._drain_inbox()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    self._expire(now)
                    self._resume_listeners(now)
                    self.front.reap_turned_away()
        finally:
            self._shutdown()

    def _ready(self, key: selectors.SelectorKey, events: int) -> None:
        data = key.data
        if data is None:  # the wake-up socket
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        elif isinstance(data, Listener):
            self._accept(data)
        elif data.state == "handshake":
            self._handshake(data)
        else:
            self._head(data)

    def _drain_inbox(self) -> None:
        while self._inbox:
            kind, *args = self._inbox.popleft()
            if kind == "park":
                self._hold(args[0], "head")
            elif kind == "handshake":
                conn: ClientConnection = args[0]
                try:
                    conn.start_tls(self.front.tls_context)
                except (OSError, ValueError):
                    self.front.forget(conn)
                    continue
                self._hold(conn, "handshake")
            elif kind == "listen":
                lst: Listener = args[0]
                lst.sock.setblocking(False)
                self._listeners.append(lst)
                self.sel.register(lst.sock, selectors.EVENT_READ, lst)
            elif kind == "unlisten":
                self._unlisten(args[0])
                args[1].set()
            elif kind == "linger":
                self.front.keep_lingering(args[0], args[1])
            elif kind == "stop":
                self._stopped.set()

    # -- accepting --------------------------------------------------------------------------
    def _accept(self, lst: Listener) -> None:
        for _ in range(_ACCEPT_BURST):
            try:
                client, _addr = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and friends: wait for descriptors to come back
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(lst.sock)
                lst.paused_until = time.monotonic() + _EMFILE_PAUSE_S
                return
            try:
                self._admit(client, lst)
            except Exception as exc:  # never let one connection stop the loop
                self.front.turn_away(client, f"cannot serve this connection: {exc}")
                warn(f"front: connection failed to start: {exc}")

    def _admit(self, client: socket.socket, lst: Listener) -> None:
        with contextlib.suppress(OSError):  # a client that already reset: reading sees it
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setblocking(False)
        front = self.front
        if front.open_connections() >= front.max_connections and not self._evict():
            front.turn_away(client, f"too many connections (limit {front.max_connections})")
            return
        conn = ClientConnection(front, client, front.next_conn_id(), origin=lst.owner)
        if not front.adopt(conn):
            conn.close()
            return
        if lst.direct_tls:
            conn.direct_tls = True
            conn.start_tls(front.tls_context)
            self._hold(conn, "handshake")
        else:
            self._hold(conn, "head")

    def _evict(self) -> bool:
        """Close the waiting connection with the least progress; False if none waits."""
        if not self._waiting:
            return False
        victim = min(self._waiting.values(), key=lambda w: (bool(w.conn.pending), w.since))
        self.evicted += 1
        self._close(victim)
        return True

    def _resume_listeners(self, now: float) -> None:
        for lst in self._listeners:
            if lst.paused_until and now >= lst.paused_until:
                lst.paused_until = 0.0
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.sel.register(lst.sock, selectors.EVENT_READ, lst)

    def _unlisten(self, owner: object) -> None:
        for lst in [x for x in self._listeners if x.owner is owner]:
            self._listeners.remove(lst)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(lst.sock)
            with contextlib.suppress(OSError):
                lst.sock.close()
        for w in [w for w in self._waiting.values() if w.conn.origin is owner]:
            self._close(w)

    # -- waiting connections ----------------------------------------------------------------
    def _hold(self, conn: ClientConnection, state: str) -> None:
        now = time.monotonic()
        f = self.front
        if state == "handshake":
            deadline = now + min(f.idle_timeout, f.request_timeout)
        elif conn.first_byte is not None:
            deadline = conn.first_byte + f.request_timeout
        else:
            deadline = now + f.idle_timeout
        w = Waiting(conn, state, now, deadline)
        try:
            conn.sock.setblocking(False)
            self.sel.register(conn.sock, selectors.EVENT_READ, w)
        except (OSError, ValueError, KeyError):
            self.front.forget(conn)
            return
        self._waiting[conn] = w
        if state == "handshake":
            self._handshake(w)  # the client hello may be in already
        elif conn.pending or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
            self._head(w)

    def _release(self, w: Waiting) -> None:
        self._waiting.pop(w.conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(w.conn.sock)

    def _close(self, w: Waiting) -> None:
        self._release(w)
        self.front.forget(w.conn)

    def _handshake(self, w: Waiting) -> None:
        step = w.conn.tls_step()
        if step == "failed":
            self._close(w)
            return
        w.since = time.monotonic()
        if step in ("read", "write"):
            events = selectors.EVENT_READ if step == "read" else selectors.EVENT_WRITE
            if events != w.events:
                w.events = events
                self.sel.modify(w.conn.sock, events, w)
            return
        if not w.conn.direct_tls:
            self.front.count_connect()
        self._release(w)
        self._hold(w.conn, "head")

    def _head(self, w: Waiting) -> None:
        conn = w.conn
        state = conn.collect()
        if state == GONE:
            self._close(w)
            return
        w.since = time.monotonic()
        if (
            conn.first_byte is not None
            and w.deadline > conn.first_byte + self.front.request_timeout
        ):
            w.deadline = conn.first_byte + self.front.request_timeout
        if state == JUNK:
            self._dispatch(w, (400, f"bad request: {head_problem(conn.pending)}"))
        elif state == HEAD:
            self._dispatch(w, None)

    def _dispatch(self, w: Waiting, refuse: tuple[int, str] | None) -> None:
        """Hand a connection with a whole head (or a refusal) to a worker thread."""
        self._release(w)
        conn = w.conn
        try:
            conn.sock.settimeout(self.front.idle_timeout)
        except OSError:
            self.front.forget(conn)
            return
        problem = self.front.workers.submit(lambda: self.front.serve_connection(conn, refuse))
        if problem is not None:
            why = f"cannot serve this connection: {problem}"
            warn(f"front: connection failed to start: {problem}")
            self.front.forget(conn, turn_away=why)

    def _expire(self, now: float) -> None:
        for w in [w for w in self._waiting.values() if now >= w.deadline]:
            if w.state == "head" and w.conn.first_byte is not None:
                self._dispatch(w, (408, "request head not received in time"))
            else:
                self._close(w)

    def _drop_closed(self) -> None:
        for w in [w for w in self._waiting.values() if w.conn.sock.fileno() < 0]:
            self._close(w)

    def _shutdown(self) -> None:
        for w in list(self._waiting.values()):
            self._close(w)
        for lst in self._listeners:
            with contextlib.suppress(OSError):
                lst.sock.close()
        self._listeners.clear()
        with contextlib.suppress(Exception):
            self.sel.close()
        for s in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()
