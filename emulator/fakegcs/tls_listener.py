"""A direct-TLS listener: HTTPS on 127.0.0.1 for the front's hosts, without ``CONNECT``.

The front's own port speaks plain HTTP (and ``CONNECT`` for proxied TLS). Clients that can set an
endpoint but want TLS, and a test upstream impersonating GCS for pass-through recording
(:mod:`emulator.fakegcs.upstream`), connect here instead: the listener presents the front's
per-run CA leaf certificate (``storage.googleapis.com``, ``www.googleapis.com``, ``localhost``,
``127.0.0.1``; CA file :attr:`TlsListener.ca_pem`) and serves each connection exactly like a
terminated ``CONNECT`` tunnel (:class:`emulator.fakegcs.front.connection.ClientConnection`):
same routing, auth check, faults, forwarding and ledger.

Invariants:
- Binds 127.0.0.1 only. The host a connection is for is its TLS server name (SNI) when that is
  one of :data:`emulator.fakegcs.certs.GOOGLE_HOSTS`, else ``storage.googleapis.com``.
- ``CONNECT`` inside such a connection is refused (it counts as a tunnel already).
- :meth:`close` stops accepting and closes every connection it accepted (idempotent); closing
  the front does not close the listener, close it first.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from emulator.fakegcs.certs import GOOGLE_HOSTS
from emulator.fakegcs.front.server import listen_loopback

if TYPE_CHECKING:
    from emulator.fakegcs.front.server import Front

log = logging.getLogger(__name__)

_SNI_ATTR = "_gcs_hook_sni"


def _remember_sni(sock: ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
    with contextlib.suppress(AttributeError):
        setattr(sock, _SNI_ATTR, name)


class TlsListener:
    """HTTPS for ``front``'s hosts on ``https://127.0.0.1:<port>`` (see the module docstring)."""

    def __init__(self, front: Front, port: int = 0) -> None:
        self.front = front
        self._ctx = front._tls  # the front's server context: same leaf certificate and CA
        if self._ctx.sni_callback is None:
            self._ctx.sni_callback = _remember_sni
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._sock = listen_loopback(port, "the TLS listener")
        self.port: int = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_pem: str = front.ca_pem
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"tls-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._socks.add(client)
                self._threads.add(t)
            t.start()

    def _serve(self, raw: socket.socket) -> None:
        from emulator.fakegcs.front.connection import ClientConnection

        conn = ClientConnection(self.front, raw, next(self.front._conn_ids))
        try:
            raw.settimeout(self.front.idle_timeout)
            tls = self._ctx.wrap_socket(raw, server_side=True)
            sni = getattr(tls, _SNI_ATTR, None)
            conn.sock = tls
            conn.scheme = "https"
            conn.tunnel_host = sni if sni in GOOGLE_HOSTS else GOOGLE_HOSTS[0]
            conn.run()
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS listener connection failed: %s", type(exc).__name__)
        except Exception:  # never let one connection's failure escape its thread
            log.debug("TLS listener connection failed", exc_info=True)
        finally:
            conn.close()
            with self._lock:
                self._socks.discard(raw)
                self._threads.discard(threading.current_thread())

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the front's CA (check the server name yourself)."""
        return self.front.client_ssl_context()

    def close(self) -> None:
        """Stop accepting and close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            socks, threads = list(self._socks), list(self._threads)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(timeout=5)
        for t in threads:
            t.join(timeout=5)

    def __enter__(self) -> TlsListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TlsListener(url={self.url!r}, front={self.front.url!r})"
