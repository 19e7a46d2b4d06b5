"""``Front``: the listening socket, the acceptor thread, limits, lifetime and principals.

See :mod:`emulator.fakegcs.front` for the invariants. Each accepted connection is served by a
:class:`emulator.fakegcs.front.connection.ClientConnection` in a thread of its own.

Invariants here:
- At most ``max_connections`` client connections are served at once; one more is answered
  ``503`` (GCS's error JSON, ``Connection: close``, recorded) and closed.
- The acceptor survives any per-connection failure (a thread that cannot start, a socket
  error): the client gets a 503 where possible, one line goes to stderr, accepting goes on.
- Memory is per request, not per connection: forwarding buffers are borrowed from a small pool
  (:class:`BufferPool`, at most ``POOL_KEEP`` kept when idle).
- ``close()`` is bounded: it stops accepting, closes every client socket and waits at most
  ``CLOSE_GRACE_S`` seconds in all for the connection threads (daemon threads), then removes
  the key material.
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
from collections.abc import Iterator
from typing import TYPE_CHECKING

from emulator.fakegcs.certs import LocalCA
from emulator.fakegcs.faults import FaultPlan
from emulator.fakegcs.front.body import DEFAULT_MAX_BYTES, DEFAULT_MEMORY_LIMIT
from emulator.fakegcs.front.connection import ClientConnection
from emulator.fakegcs.front.forward import CHUNK
from emulator.fakegcs.front.notices import warn
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
        max_connections: int = 256,
        body_memory_limit: int = DEFAULT_MEMORY_LIMIT,
        max_body_bytes: int = DEFAULT_MAX_BYTES,
        persist_dir: str | None = None,
        upstream: Upstream | None = None,
        connect_policy: ConnectPolicy | None = None,
    ) -> None:
        """``idle_timeout``: s a connection may wait for a request (and a client for each
        piece of an answer); ``request_timeout``: s for a whole request (head + body) to
        arrive; ``backend_timeout``: s the backend has to answer (and between pieces of its
        answer); ``max_connections``: clients served at once; request bodies are held in memory
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
        self.max_connections = max_connections
        self.body_memory_limit = body_memory_limit
        self.max_body_bytes = max_body_bytes
        self.persist_dir = persist_dir
        self.persist_names = persist_dir is not None
        self.buffers = BufferPool(CHUNK)
        self.stopping = threading.Event()  # set by close(); wakes injected stalls
        self.refused_connections = 0  # answered 503 at the connection cap or on failure
        self._turned_away: list[tuple[socket.socket, float]] = []  # acceptor thread only
        self._test_tokens: set[str] = set()
        self._conn_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self.connects = 0  # accepted CONNECT tunnels (not in the ledger)
        self._ca = LocalCA(workdir)
        try:
            self._tls = self._ca.server_context()
            self._sock = listen_loopback(port, "the front")
            self.port = self._sock.getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"
            self.ca_pem = self._ca.ca_pem
            self._acceptor = threading.Thread(
                target=self._accept_loop, name=f"front-accept-{self.port}", daemon=True
            )
            self._acceptor.start()
        except BaseException:
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
            clients = list(self._clients)
            threads = list(self._threads)
        self.stopping.set()
        deadline = time.monotonic() + CLOSE_GRACE_S
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._sock.close()
        for s in clients:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        try:
            self._acceptor.join(timeout=max(0.0, deadline - time.monotonic()))
            if not self._acceptor.is_alive():
                self._reap_turned_away(force=True)
            for t in threads:
                t.join(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            self._ca.close()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Front(url={getattr(self, 'url', None)!r}, backend={self.backend_endpoint!r})"

    # -- accepting --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        try:
            self._sock.settimeout(_TURNED_AWAY_LINGER_S / 2)  # wake up to reap turned-away
        except OSError:
            return  # closed before this thread ran
        while True:
            self._reap_turned_away()
            try:
                client, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)  # EMFILE and friends: wait for descriptors to come back
                continue
            with contextlib.suppress(OSError):
                client.settimeout(None)
            try:
                self._admit(client)
            except Exception as exc:  # never let one connection stop the acceptor
                self._turn_away(client, f"cannot serve this connection: {exc}")
                warn(f"front: connection failed to start: {exc}")
            if self._closed:
                return

    def _reap_turned_away(self, force: bool = False) -> None:
        """Close turned-away sockets whose linger time is over (dropping what they sent)."""
        now = time.monotonic()
        keep = []
        for sock, until in self._turned_away:
            with contextlib.suppress(OSError):
                while sock.recv(65536):  # non-blocking: drop the request it sent
                    pass
            if force or now >= until:
                with contextlib.suppress(OSError):
                    sock.close()
            else:
                keep.append((sock, until))
        self._turned_away = keep

    def _admit(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):  # a client that already reset: its thread sees it
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn_id = next(self._conn_ids)
        with self._lock:
            if self._closed:
                client.close()
                return
            if len(self._clients) >= self.max_connections:
                full = True
            else:
                full = False
                self._clients.add(client)
        if full:
            self._turn_away(client, f"too many connections (limit {self.max_connections})")
            return
        t = threading.Thread(
            target=self._serve_client, args=(client, conn_id), name=f"front-conn-{conn_id}"
        )
        t.daemon = True
        try:
            self._start_thread(t)
        except BaseException:
            with self._lock:
                self._clients.discard(client)
            raise
        with self._lock:
            if t.is_alive() or t.ident is not None:
                self._threads.add(t)

    def _start_thread(self, t: threading.Thread) -> None:
        """Start a connection thread (a seam: tests make it fail like a full process table)."""
        t.start()

    def _turn_away(self, client: socket.socket, why: str) -> None:
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

    def _serve_client(self, client: socket.socket, conn_id: int) -> None:
        session = ClientConnection(self, client, conn_id)
        try:
            session.run()
        except Exception:  # never let one connection's failure escape its thread
            log.debug("connection %d failed", conn_id, exc_info=True)
        finally:
            session.close()
            with self._lock:
                self._clients.discard(client)
                self._threads.discard(threading.current_thread())

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
