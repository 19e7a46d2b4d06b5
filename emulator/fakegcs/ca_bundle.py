"""The CA bundle a recorded program trusts: the front's per-run CA plus the system CAs.

In pass-through recording the front terminates TLS only for the Google storage hosts and
tunnels every other host blind (:mod:`emulator.fakegcs.tunnel`), so the program must trust both
the per-run CA and whatever it trusted before. :class:`CaBundle` writes one PEM file with both.

Invariants:
- The file lives in a fresh private directory (0700, with ``owner.pid`` so that a killed run's
  leftover is removed by :func:`emulator.fakegcs.tempdirs.remove_dead_leftovers`) and is itself
  0600; :meth:`CaBundle.close` removes the directory (idempotent; also done at garbage
  collection or interpreter exit). Only public certificates are in it, never a key.
- "System CAs" are what OpenSSL loads by default here, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
  included (:func:`system_ca_pem`): the recorded process keeps the trust it had.
"""

from __future__ import annotations

import glob
import os
import shutil
import ssl
import weakref
from pathlib import Path

from emulator.fakegcs.tempdirs import make_owned_tempdir

__all__ = ["CaBundle", "system_ca_pem"]


def system_ca_pem() -> str:
    """The PEM text of the system trust store (empty if none is found)."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return Path(paths.cafile).read_text(encoding="ascii", errors="replace")
    parts: list[str] = []
    if paths.capath and os.path.isdir(paths.capath):
        for f in sorted(glob.glob(os.path.join(paths.capath, "*"))):
            if os.path.isfile(f) and f.endswith((".pem", ".crt", ".0")):
                text = Path(f).read_text(encoding="ascii", errors="replace")
                if "BEGIN CERTIFICATE" in text:
                    parts.append(text)
    return "\n".join(parts)


class CaBundle:
    """``path``: PEM file = ``ca_pem``'s certificates followed by the system CAs."""

    def __init__(self, ca_pem: str, workdir: str | None = None) -> None:
        self._dir = Path(make_owned_tempdir("gcs-hook-bundle-", workdir))  # 0700, owner.pid
        # removed at garbage collection or interpreter exit even if close() is never called
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        try:
            own = Path(ca_pem).read_text(encoding="ascii")
            self.path = str(self._dir / "ca-bundle.pem")
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(own.rstrip("\n") + "\n")
                system = system_ca_pem()
                if system:
                    f.write(system.rstrip("\n") + "\n")
            ssl.create_default_context(cafile=self.path)  # it loads: every block is a cert
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the bundle and its directory. Idempotent."""
        self._finalizer()

    def __enter__(self) -> CaBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CaBundle(path={getattr(self, 'path', None)!r})"
