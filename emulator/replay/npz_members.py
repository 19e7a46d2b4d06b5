"""The zip members of an ``.npz`` file, each checked before a byte of it is inflated or mapped.

:func:`read_members` is what :func:`emulator.replay.columnar.load_columnar` reads with. Before
any member is read: only the expected member names, no duplicates; the compressed members'
declared uncompressed sizes together within
:data:`~emulator.replay.limits.MAX_INFLATED_BYTES` (zipfile never inflates past a member's
declared size, so a deflate bomb is refused here, unread); each member's ``.npy`` header (read
alone) declares a 1-D array of the expected dtype whose bytes fit in the member's declared
size. Stored members are then memory-mapped (checked to lie inside the file), compressed ones
loaded with ``allow_pickle=False``.

Invariant: whatever the file holds, the only exception is
:class:`~emulator.replay.limits.TraceError` with one line naming the file's base name.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from emulator.replay.limits import MAX_INFLATED_BYTES, TraceError

__all__ = ["read_members"]


def _npy_header(fh: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, order and dtype an ``.npy`` stream declares (read from its header only)."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        return np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise TraceError(f"{where}: not an .npy array ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _checked_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, dtypes: Mapping[str, Any]
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The declared header of one member, refused unless it is a known 1-D column of its
    dtype whose declared bytes fit in the member's declared uncompressed size."""
    name = info.filename.removesuffix(".npy")
    if name not in dtypes:
        raise TraceError(f"{where}: not a columnar trace (unknown member {info.filename[:80]!r})")
    with zf.open(info) as fh:
        shape, fortran, dtype = _npy_header(fh, f"{where}: member {name}")
        header_len = fh.tell()
    if dtype != np.dtype(dtypes[name]):
        raise TraceError(f"{where}: column {name} is {dtype}, expected {np.dtype(dtypes[name])}")
    if len(shape) != 1:
        raise TraceError(f"{where}: column {name} is not one-dimensional")
    if shape[0] * dtype.itemsize > info.file_size - header_len:
        raise TraceError(f"{where}: column {name} declares more rows than the file holds")
    return shape, fortran, dtype


def read_members(
    path: str | os.PathLike, dtypes: Mapping[str, Any], *, mmap: bool = True
) -> dict[str, np.ndarray]:
    """Every member of the ``.npz`` at ``path``, checked before it is read: names and dtypes
    from ``dtypes`` (member name without ``.npy`` → dtype),
    declared shapes within the members' declared sizes, and the compressed members' declared
    sizes within :data:`~emulator.replay.limits.MAX_INFLATED_BYTES` (zipfile never inflates
    past a member's declared size), so a deflate bomb is refused before anything inflates."""
    where = os.path.basename(path)
    out: dict[str, np.ndarray] = {}
    try:
        zf_cm = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TraceError(f"{where}: not a columnar trace ({_first_line(exc)})") from None
    with zf_cm as zf, open(path, "rb") as f:
        infos = zf.infolist()
        if len(infos) > len(dtypes) or len({i.filename for i in infos}) != len(infos):
            raise TraceError(f"{where}: unexpected zip members")
        inflated = sum(i.file_size for i in infos if i.compress_type != zipfile.ZIP_STORED)
        if inflated > MAX_INFLATED_BYTES:
            raise TraceError(
                f"{where}: compressed members would inflate to {inflated} bytes, more than "
                f"the {MAX_INFLATED_BYTES} a load may hold (save it uncompressed)"
            )
        for info in infos:
            name = info.filename.removesuffix(".npy")
            shape, fortran, dtype = _checked_member(zf, info, where, dtypes)
            if not mmap or info.compress_type != zipfile.ZIP_STORED:
                try:
                    out[name] = np.load(zf.open(info), allow_pickle=False)
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                    raise TraceError(f"{where}: member {name}: {_first_line(exc)}") from None
                continue
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                raise TraceError(f"{where}: bad zip member header for {name}")
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            _npy_header(f, f"{where}: member {name}")
            start = f.tell()
            if shape[0] == 0:
                out[name] = np.zeros(shape, dtype)
            elif start + shape[0] * dtype.itemsize > os.fstat(f.fileno()).st_size:
                raise TraceError(f"{where}: column {name} runs past the end of the file")
            else:
                out[name] = np.memmap(path, dtype, "r", start, shape, "F" if fortran else "C")
    return out
