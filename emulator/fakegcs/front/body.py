"""A request body read completely before anything is forwarded: memory, then a 0600 temp file.

Why: fake-gcs-server serializes requests behind an upload in progress, so a client that sends
a body slowly (or never finishes it) would stall every other client. The front therefore
receives the whole body first — within the request's own deadline — and forwards it with a
``Content-Length`` at loopback speed.

Invariants:
- At most ``memory_limit`` bytes are held in memory; beyond that the body lives in an
  anonymous temporary file created 0600 (``tempfile`` uses ``mkstemp``) and removed on
  :meth:`SpooledBody.close` (and by the OS when the process dies, being unlinked).
- A body longer than ``max_bytes`` is refused (:class:`BodyTooLarge`) as soon as it exceeds it.
- :attr:`head` holds the first ``HEAD_BYTES`` bytes (for metadata checks) whatever the size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

HEAD_BYTES = 64 * 1024
DEFAULT_MEMORY_LIMIT = 8 << 20
DEFAULT_MAX_BYTES = 5 << 30


class BodyTooLarge(Exception):
    """The request body is larger than the front accepts."""


class SpooledBody:
    """An append-only body store; read back with :meth:`chunks` after :meth:`finish`."""

    def __init__(
        self, memory_limit: int = DEFAULT_MEMORY_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.memory_limit = memory_limit
        self.max_bytes = max_bytes
        self.size = 0
        self._mem = bytearray()
        self._tmp: Any = None  # an unlinked 0600 temporary file once over memory_limit

    @property
    def head(self) -> bytes:
        if self._tmp is None:
            return bytes(self._mem[:HEAD_BYTES])
        self._tmp.seek(0)
        return self._tmp.read(HEAD_BYTES)

    def write(self, data: bytes | memoryview) -> None:
        n = len(data)
        if self.size + n > self.max_bytes:
            raise BodyTooLarge(f"request body over {self.max_bytes} bytes")
        self.size += n
        if self._tmp is None and self.size <= self.memory_limit:
            self._mem += data
            return
        if self._tmp is None:
            self._tmp = tempfile.TemporaryFile(prefix="gcs-hook-body-")  # noqa: SIM115 - 0600, unlinked; closed in close()
            self._tmp.write(self._mem)
            self._mem = bytearray()
        self._tmp.write(data)

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        """The body from the start, in pieces of at most ``size`` bytes."""
        if self._tmp is None:
            mv = memoryview(self._mem)
            for off in range(0, len(mv), size):
                yield mv[off : off + size]
            return
        self._tmp.flush()
        self._tmp.seek(0)
        while True:
            piece = self._tmp.read(size)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._mem = bytearray()
        if self._tmp is not None:
            self._tmp.close()
            self._tmp = None
