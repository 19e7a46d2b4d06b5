"""The limits every trace reader holds, and its one error (:mod:`emulator.replay.reader`).

A trace is user input that may come from anyone: these bounds keep reading it, and replaying
it, within memory and time a laptop has, whatever the file says. Each is checked before the
work it bounds (a file's size before it is read, a zip member's declared size before it is
inflated, an array's declared shape before it is mapped).
"""

from __future__ import annotations

__all__ = [
    "TraceError",
    "MAX_BLOCK_BYTES",
    "MAX_INFLATED_BYTES",
    "MAX_OBJECT_BYTES",
    "MAX_READ_BYTES",
    "MAX_TRACE_FILE_BYTES",
]


class TraceError(ValueError):
    """A trace or result document is malformed; the message (one line) says where and why."""


#: Largest JSON trace file read: parsing and validating hold 6-7 times the file's size at the
#: peak (measured by ``python -m benchmarks.perf.harden``), so 256 MiB (~3.6 M ops) keeps a
#: load under ~2 GB. Larger traces go columnar (``.npz``: memory-mapped, checked in chunks).
MAX_TRACE_FILE_BYTES = 256 << 20
#: Largest ``n`` of a read op the replay engines accept (both move real bytes; TF allocates
#: ``n`` bytes for the read).
MAX_READ_BYTES = 1 << 30
#: Largest ``block_size`` accepted (a cached read fetches a whole block, and the buffered
#: reader's buffer is the initial block size).
MAX_BLOCK_BYTES = 1 << 30
#: Largest object size: GCS's own limit, 5 TiB.
MAX_OBJECT_BYTES = 5 << 40
#: Most bytes the compressed members of a columnar ``.npz`` may inflate to, all members
#: together (stored members are memory-mapped and do not count): the memory bound of a load.
MAX_INFLATED_BYTES = 1 << 30
