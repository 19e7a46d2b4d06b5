"""``Front``: the listening socket, the acceptor thread, lifetime and principals.

See :mod:`emulator.fakegcs.front` for the invariants. Each accepted connection is served by a
:class:`emulator.fakegcs.front.connection.ClientConnection` in a thread of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import threading
import urllib.parse
from typing import TYPE_CHECKING

from emulator.fakegcs.certs import LocalCA
from emulator.fakegcs.faults import FaultPlan
from emulator.fakegcs.front.connection import ClientConnection
from emulator.fakegcs.ledger import Ledger
from emulator.fakegcs.oauth import TokenIssuer
from emulator.fakegcs.shaping import Shaping

if TYPE_CHECKING:
    from emulator.fakegcs.tunnel import ConnectPolicy
    from emulator.fakegcs.upstream import Upstream

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost")


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
        idle_timeout: float = 300.0,
        upstream: Upstream | None = None,
        connect_policy: ConnectPolicy | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the front binds to 127.0.0.1 only, refusing host {host!r}")
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
        self.idle_timeout = idle_timeout
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
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._sock.bind(("127.0.0.1", port))
            except OSError as exc:
                self._sock.close()
                raise OSError(
                    exc.errno, f"cannot bind the front to 127.0.0.1:{port}: {exc}"
                ) from exc
            self._sock.listen(128)
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
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._sock.close()
        for s in clients:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self._acceptor.join(timeout=5)
        for t in threads:
            t.join(timeout=5)
        self._ca.close()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Front(url={getattr(self, 'url', None)!r}, backend={self.backend_endpoint!r})"

    # -- accepting --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn_id = next(self._conn_ids)
            t = threading.Thread(
                target=self._serve_client, args=(client, conn_id), name=f"front-conn-{conn_id}"
            )
            t.daemon = True
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._clients.add(client)
                self._threads.add(t)
            t.start()

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
