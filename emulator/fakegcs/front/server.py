"""``Front``: the listening socket, limits, lifetime and principals.

See :mod:`emulator.fakegcs.front` for the invariants. Accepted connections wait in the
connection loop (:mod:`emulator.fakegcs.front.loop`, one thread) and are served, one request
head at a time, by :class:`emulator.fakegcs.front.connection.ClientConnection` in a worker
thread (:mod:`emulator.fakegcs.front.workers`).

Invariants here:
- At most ``max_connections`` client connections are open; at the cap the waiting connection
  with the least progress is closed to make room, and only when every connection is busy is a
  new one answered ``503`` (GCS's error JSON, ``Connection: close``, recorded) and closed.
- At most ``max_workers`` threads serve requests; waiting connections (idle, half-open, in a
  TLS handshake) hold none.
- The loop survives any per-connection failure (a thread that cannot start, a socket error):
  the client gets a 503 where possible, one line goes to stderr, accepting goes on.
- Memory is per request, not per connection: forwarding buffers are borrowed from a small pool
  (:class:`BufferPool`, at most ``POOL_KEEP`` kept when idle).
- ``close()`` is bounded: it stops accepting, closes every client socket and waits at most
  ``CLOSE_GRACE_S`` seconds in all for the threads (daemon threads), then removes the key
  material.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from emulator.fakegcs.certs import LocalCA
from emulator.fakegcs.faults import FaultPlan
from emulator.fakegcs.front.body import DEFAULT_MAX_BYTES, DEFAULT_MEMORY_LIMIT
from emulator.fakegcs.front.connection import CLOSE, HANDSHAKE, ClientConnection
from emulator.fakegcs.front.forward import CHUNK
from emulator.fakegcs.front.loop import ConnectionLoop, Listener
from emulator.fakegcs.front.workers import Workers
from emulator.fakegcs.ledger import Ledger
from emulator.fakegcs.oauth import TokenIssuer
from emulator.fakegcs.shaping import Shaping

if TYPE_CHECKING:
    from emulator.fakegcs.tunnel import ConnectPolicy
    from emulator.fakegcs.upstream import Upstream

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost")
CLOSE_GRACE_S = 1.0
_TURNED_AWAY_LINGER_S = 1.0
_TURNED_AWAY_MAX = 1024
_DRAIN_READS = 16
POOL_KEEP = 8


class BufferPool:
    """Forwarding buffers lent per request; at most ``keep`` stay allocated when idle."""

    def __init__(self, size: int, keep: int = POOL_KEEP) -> None:
        self.size = size
        self.keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[bytearray]:
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is None:
            buf = bytearray(self.size)
        try:
            yield buf
        finally:
            with self._lock:
                if len(self._free) < self.keep:
                    self._free.append(buf)

    def idle(self) -> int:
        with self._lock:
            return len(self._free)


def listen_loopback(port: int, what: str, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (0 = any free port); never another address.

    A port that cannot be bound is an ``OSError`` naming ``what`` and the address.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot bind {what} to 127.0.0.1:{port}: {exc}") from exc
    sock.listen(backlog)
    return sock


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
        idle_timeout: float = 60.0,
        request_timeout: float = 120.0,
        backend_timeout: float = 30.0,
        max_connections: int = 1024,
        max_workers: int = 64,
        body_memory_limit: int = DEFAULT_MEMORY_LIMIT,
        max_body_bytes: int = DEFAULT_MAX_BYTES,
        persist_dir: str | None = None,
        upstream: Upstream | None = None,
        connect_policy: ConnectPolicy | None = None,
    ) -> None:
        """``idle_timeout``: s a connection may wait for a request (and a client for each
        piece of an answer); ``request_timeout``: s for a whole request (head + body) to
        arrive; ``backend_timeout``: s the backend has to answer (and between pieces of its
        answer); ``max_connections``: client connections open at once; ``max_workers``: threads
        serving requests (requests past it wait their turn); request bodies are held in memory
        up to ``body_memory_limit`` bytes, in a 0600 temp file beyond, and refused (413) over
        ``max_body_bytes``; ``persist_dir``: the backend keeps objects in files under this
        directory: also refuse names it cannot hold safely
        (:func:`emulator.fakegcs.names.persist_error`) and never show the directory in the
        backend's error answers."""
        if host not in _LOOPBACK:
            raise ValueError(f"the front binds to 127.0.0.1 only, refusing host {host!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"front port must be 0..65535, got {port!r}")
        # pass-through recording (emulator.fakegcs.upstream): forward to real GCS, no backend;
        # connect_policy: blind CONNECT tunnels to other hosts (emulator.fakegcs.tunnel)
        self.upstream = upstream
        self.connect_policy = connect_policy
        u = urllib.parse.urlsplit(backend_endpoint)
        if upstream is None and (u.scheme != "http" or not u.hostname):
            raise ValueError(f"backend endpoint must be http://host:port, got {backend_endpoint!r}")
        self.backend_endpoint = backend_endpoint
        self._backend_addr = (u.hostname or "", u.port or 80)
        self.ledger = ledger if ledger is not None else Ledger()
        self.require_auth = require_auth
        self.shaping = shaping
        self.token_issuer = token_issuer if token_issuer is not None else TokenIssuer()
        self.faults = (
            FaultPlan()
        )  # injected errors (emulator.fakegcs.faults); empty = forward everything
        for name, v in (
            ("idle_timeout", idle_timeout), ("request_timeout", request_timeout),
            ("backend_timeout", backend_timeout),
        ):  # fmt: skip
            if not isinstance(v, (int, float)) or not 0 < v <= 86400:
                raise ValueError(f"{name} must be > 0 and <= 86400 s, got {v!r}")
        if not isinstance(max_connections, int) or not 1 <= max_connections <= 100_000:
            raise ValueError(f"max_connections must be 1..100000, got {max_connections!r}")
        self.idle_timeout = float(idle_timeout)
        self.request_timeout = float(request_timeout)
        self.backend_timeout = float(backend_timeout)
        if not isinstance(max_workers, int) or not 1 <= max_workers <= 4096:
            raise ValueError(f"max_workers must be 1..4096, got {max_workers!r}")
        self.max_connections = max_connections
        self.max_workers = max_workers
        self.body_memory_limit = body_memory_limit
        self.max_body_bytes = max_body_bytes
        self.persist_dir = persist_dir
        self.persist_names = persist_dir is not None
        self.buffers = BufferPool(CHUNK)
        self.stopping = threading.Event()  # set by close(); wakes injected stalls
        self.refused_connections = 0  # answered 503 at the connection cap or on failure
        self._turned_away: list[tuple[socket.socket, float]] = []  # loop thread only
        self._test_tokens: set[str] = set()
        self._conn_ids = itertools.count(1)
        #: Callables ``f(conn_id, client_socket)`` run in each connection's thread before its
        #: first request is read (``gcs-hook record`` finds the process behind it; see
        #: :mod:`emulator.fakegcs.peers`). They must not raise or block.
        self.connection_observers: list[Callable[[int, socket.socket], None]] = []
        self._lock = threading.Lock()
        self._conns: set[ClientConnection] = set()  # open: waiting in the loop or served
        self._closed = False
        self.connects = 0  # accepted CONNECT tunnels (not in the ledger)
        self._ca = LocalCA(workdir)
        try:
            self.tls_context = self._ca.server_context()
            self._sock = listen_loopback(port, "the front")
            self.port = self._sock.getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"
            self.ca_pem = self._ca.ca_pem
            self.workers = Workers(self._start_thread, max_workers)
            self.loop = ConnectionLoop(self)
            self.loop.call("listen", Listener(self._sock))
            self.loop.start()
        except BaseException:
            with contextlib.suppress(Exception):
                self._sock.close()
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
        self.stopping.set()
        deadline = time.monotonic() + CLOSE_GRACE_S
        try:
            self.loop.stop(timeout=CLOSE_GRACE_S / 2)  # closes the waiting ones, in the loop
            with self._lock:
                busy = list(self._conns)
            for conn in busy:  # being served: wake its worker (which closes it)
                for s in {conn.raw, conn.sock}:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
            if not self.loop.thread.is_alive():
                self.reap_turned_away(force=True)
            self.workers.close(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            self._ca.close()

    # -- listeners and connections (the loop and the workers call these) ------------------
    def add_listener(self, sock: socket.socket, *, direct_tls: bool, owner: object) -> None:
        """Serve connections accepted on ``sock`` too (TLS from the first byte if
        ``direct_tls``); :meth:`remove_listener` with the same ``owner`` ends them."""
        self.loop.call("listen", Listener(sock, direct_tls=direct_tls, owner=owner))

    def remove_listener(self, owner: object, timeout: float = CLOSE_GRACE_S) -> None:
        """Close ``owner``'s listening sockets and every connection accepted on them."""
        done = threading.Event()
        if self.loop.thread.is_alive():
            self.loop.call("unlisten", owner, done)
            done.wait(timeout)
        with self._lock:
            busy = [c for c in self._conns if c.origin is owner]
        for conn in busy:
            for s in {conn.raw, conn.sock}:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def next_conn_id(self) -> int:
        return next(self._conn_ids)

    def adopt(self, conn: ClientConnection) -> bool:
        """Count ``conn`` as open (False once closing)."""
        with self._lock:
            if self._closed:
                return False
            self._conns.add(conn)
            return True

    def forget(self, conn: ClientConnection, turn_away: str | None = None) -> None:
        """Close ``conn`` (answering 503 ``turn_away`` first on a plain connection)."""
        with self._lock:
            self._conns.discard(conn)
        if turn_away is not None and conn.sock is conn.raw:
            conn.forwarder.close()
            self.turn_away(conn.raw, turn_away)
            return
        conn.close()

    def linger(self, sock: socket.socket, seconds: float) -> None:
        """Close ``sock`` (already shut for writing) in ``seconds``, dropping what it sends
        meanwhile; done by the loop thread, so no worker waits for it."""
        self.loop.call("linger", sock, seconds)

    def count_connect(self) -> None:
        with self._lock:
            self.connects += 1

    def serve_connection(self, conn: ClientConnection, refuse: tuple[int, str] | None) -> None:
        """A worker's job: serve ``conn`` from its whole head on, then hand it back."""
        verdict = CLOSE
        try:
            if not conn.observed:  # once per connection, in a worker (never the loop thread)
                conn.observed = True
                for observe in list(self.connection_observers):
                    observe(conn.conn_id, conn.raw)
            verdict = conn.serve(refuse)
        except Exception:  # never let one connection's failure escape its thread
            log.debug("connection %d failed", conn.conn_id, exc_info=True)
        if verdict == CLOSE or self._closed:
            self.forget(conn)
        else:
            self.loop.call("handshake" if verdict == HANDSHAKE else "park", conn)
            if self._closed and not self.loop.thread.is_alive():
                self.forget(conn)

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Front(url={getattr(self, 'url', None)!r}, backend={self.backend_endpoint!r})"

    # -- turning away ----------------------------------------------------------------------
    def reap_turned_away(self, force: bool = False) -> None:
        """Close turned-away and lingering sockets whose time is over, or whose client
        closed, dropping what they sent (at most ``_DRAIN_READS`` reads each per call)."""
        now = time.monotonic()
        keep = []
        for sock, until in self._turned_away:
            eof = False
            with contextlib.suppress(OSError):
                for _ in range(_DRAIN_READS):  # non-blocking: drop the request it sent
                    if not sock.recv(65536):
                        eof = True
                        break
            if force or eof or now >= until:
                with contextlib.suppress(OSError):
                    sock.close()
            else:
                keep.append((sock, until))
        self._turned_away = keep

    def keep_lingering(self, sock: socket.socket, seconds: float) -> None:
        """(Loop thread.) Close ``sock`` after ``seconds``, draining it meanwhile."""
        with contextlib.suppress(OSError):
            sock.setblocking(False)
        if len(self._turned_away) < _TURNED_AWAY_MAX:
            self._turned_away.append((sock, time.monotonic() + seconds))
        else:
            with contextlib.suppress(OSError):
                sock.close()

    def _start_thread(self, t: threading.Thread) -> None:
        """Start a worker thread (a seam: tests make it fail like a full process table)."""
        t.start()

    def turn_away(self, client: socket.socket, why: str) -> None:
        """Answer 503 + ``Connection: close`` without reading the request; record it."""
        from emulator.fakegcs.ledger import RequestRecord

        body = json.dumps({"error": {"code": 503, "message": why}}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        with self._lock:
            self.refused_connections += 1
        now = time.monotonic()
        with contextlib.suppress(Exception):
            self.ledger.append(
                RequestRecord(
                    seq=0, t=now, conn_id=0, host="", method="-", path="", query={}, range=None,
                    status=503, bytes_out=len(body), bytes_in=0, principal="anonymous",
                    kind="other", t_end=now, extra={"refused": why},
                )
            )  # fmt: skip
        with contextlib.suppress(OSError):
            client.setblocking(False)  # the acceptor never waits on a client
            client.send(head + body)  # small: fits the socket buffer of a fresh connection
            client.shutdown(socket.SHUT_WR)
        if len(self._turned_away) < _TURNED_AWAY_MAX:
            # closed a little later, so unread request bytes do not turn the close into a
            # TCP reset that destroys the 503 before the client reads it
            self._turned_away.append((client, time.monotonic() + _TURNED_AWAY_LINGER_S))
        else:
            with contextlib.suppress(OSError):
                client.close()

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
