"""Files users may share, written atomically and never through a symlink.

:func:`write_atomic` creates a fresh file with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random
name in the target's own directory (opened once, all later steps relative to it), writes and
fsyncs it, then renames it onto the target. Invariants: a reader sees the old file or the whole
new one, never a part; a symlink pre-placed at the target or at any temporary name is never
written through (the target's link itself is replaced; a temporary name is never reused); on
any error the temporary file is gone and the target untouched.

:func:`open_append_nofollow` is the append-as-you-go form (``serve --ledger``): it refuses a
symlink at the path instead of following it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_writer", "open_append_nofollow", "write_atomic"]


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, *, mode: int = 0o644, text: bool = True) -> Iterator[IO]:
    """A file object whose content replaces ``path`` when the block ends without an error."""
    target = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(target)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    tmp = f".{base}.tmp-{secrets.token_hex(8)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            opts = {"encoding": "utf-8", "newline": ""} if text else {}
            with os.fdopen(fd, "w" if text else "wb", **opts) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)


def write_atomic(path: str | os.PathLike, data: str | bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` by ``data`` atomically (see the module docstring)."""
    with atomic_writer(path, mode=mode, text=isinstance(data, str)) as fh:
        fh.write(data)


def open_append_nofollow(path: str | os.PathLike, *, mode: int = 0o600) -> IO[str]:
    """``path`` opened for appending text (created ``mode`` if new); OSError (ELOOP) if it is a
    symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, mode)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)
