"""A per-run local certificate authority and the leaf certificate the front presents.

Invariants:
- Everything lives in one private directory created with mode 0700; the private key file is
  0600. :meth:`LocalCA.close` removes the whole directory (idempotent); so does garbage
  collection of the object or the interpreter's exit when ``close`` was never called.
- Only ``ca.pem`` (public) is meant to leave the process: TensorFlow gets it as
  ``CURL_CA_BUNDLE``; Python clients can use it as ``verify=``.
- The leaf certificate is valid for exactly the hosts the front accepts in ``CONNECT``
  (``storage.googleapis.com`` and ``www.googleapis.com``) plus ``localhost``/``127.0.0.1``.
"""

from __future__ import annotations

import os
import shutil
import ssl
import weakref
from pathlib import Path

import trustme

#: The hosts the front terminates TLS for (and accepts in CONNECT, on port 443).
GOOGLE_HOSTS: tuple[str, ...] = ("storage.googleapis.com", "www.googleapis.com")


class LocalCA:
    """A throwaway CA plus one leaf certificate for the Google storage hosts.

    ``ca_pem`` is the path of the public CA certificate. ``server_context()`` returns an
    ``ssl.SSLContext`` for the server side (HTTP/1.1 only).
    """

    def __init__(self, workdir: str | os.PathLike | None = None) -> None:
        from emulator.fakegcs.tempdirs import make_owned_tempdir

        self._dir = Path(make_owned_tempdir("gcs-hook-ca-", workdir))
        # removes the key material at garbage collection or interpreter exit if close() is
        # never called (library users, uncaught exceptions)
        self._remove = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self._closed = False
        try:
            ca = trustme.CA(organization_name="gcs-hook local test CA")
            leaf = ca.issue_cert(*GOOGLE_HOSTS, "localhost", "127.0.0.1")
            self.ca_pem = str(self._dir / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_pem)
            os.chmod(self.ca_pem, 0o644)
            self._chain_pem = str(self._dir / "leaf-chain.pem")
            with open(self._chain_pem, "wb") as f:
                for blob in leaf.cert_chain_pems:
                    f.write(blob.bytes())
            self._key_pem = str(self._dir / "leaf-key.pem")
            fd = os.open(self._key_pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(leaf.private_key_pem.bytes())
            self._context = self._build_context()
        except BaseException:
            self.close()
            raise

    @property
    def directory(self) -> str:
        """The private (0700) directory holding the CA and key material."""
        return str(self._dir)

    def _build_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self._chain_pem, self._key_pem)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """The server-side TLS context presenting the leaf certificate."""
        if self._closed:
            raise RuntimeError("LocalCA is closed")
        return self._context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only this CA (for tests and benchmarks)."""
        return ssl.create_default_context(cafile=self.ca_pem)

    def close(self) -> None:
        """Remove the directory with all key material. Idempotent."""
        self._closed = True
        self._remove()

    def __enter__(self) -> LocalCA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalCA(ca_pem={getattr(self, 'ca_pem', None)!r}, closed={self._closed})"
