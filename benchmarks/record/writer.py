"""The files ``gcs-hook record`` writes: the trace (``--out``) and the ledger (``--ledger``).

Both are meant to be shared, so both go through :func:`emulator.atomic_files.write_atomic`
(exclusive create of a random name in the target's directory, then rename: a reader sees the
old file or the whole new one, and no symlink at the target or a temporary name is ever
written through). The trace is JSON (indent 1, the form ``gcs-hook tune`` and ``replay``
read); the ledger is one JSON object per line, in ``seq`` order, names hashed with the run's
key under ``--redact-names`` (:func:`benchmarks.record.sharing.redact_records`). What they
may say is :mod:`benchmarks.record.sharing`'s rule: no environment assignment, no absolute
path, no credential.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from benchmarks.record.sharing import redact_records
from emulator.atomic_files import write_atomic

__all__ = ["write_ledger", "write_trace"]


def write_trace(out: str | os.PathLike, trace: dict[str, Any]) -> None:
    """Replace ``out`` by the trace as JSON, atomically (0644: a file to share)."""
    write_atomic(out, json.dumps(trace, indent=1), mode=0o644)


def write_ledger(
    path: str | os.PathLike, records: Iterable[Any], *, redact_key: bytes | None = None
) -> None:
    """Replace ``path`` by the records as JSONL, atomically (0600, like ``serve --ledger``);
    with ``redact_key`` the names are hashed with it (the trace's hashes)."""
    records = list(records)
    if redact_key is not None:
        records = redact_records(records, redact_key)
    lines = "".join(json.dumps(rec.to_json(), sort_keys=True) + "\n" for rec in records)
    write_atomic(path, lines, mode=0o600)
