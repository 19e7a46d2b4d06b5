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
  the front closes the listener too.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from emulator.fakegcs.front.server import listen_loopback

if TYPE_CHECKING:
    from emulator.fakegcs.front.server import Front

log = logging.getLogger(__name__)

#: attribute of a server-side TLS socket naming the server name (SNI) its client asked for
SNI_ATTR = "gcs_hook_sni"


def _remember_sni(sock: ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
    with contextlib.suppress(AttributeError):
        setattr(sock, SNI_ATTR, name)


class TlsListener:
    """HTTPS for ``front``'s hosts on ``https://127.0.0.1:<port>`` (see the module docstring).

    Its connections are the front's: they wait in the front's connection loop (the TLS
    handshake included, without a thread), count towards ``max_connections`` and are served
    by the front's workers.
    """

    def __init__(self, front: Front, port: int = 0) -> None:
        self.front = front
        ctx = front.tls_context  # the front's server context: same leaf certificate and CA
        if ctx.sni_callback is None:
            ctx.sni_callback = _remember_sni
        self._closed = False
        self._sock = listen_loopback(port, "the TLS listener")
        self.port: int = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_pem: str = front.ca_pem
        front.add_listener(self._sock, direct_tls=True, owner=self)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the front's CA (check the server name yourself)."""
        return self.front.client_ssl_context()

    def close(self) -> None:
        """Stop accepting and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.front.remove_listener(self)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> TlsListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TlsListener(url={self.url!r}, front={self.front.url!r})"
