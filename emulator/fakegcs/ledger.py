"""The request ledger: one :class:`RequestRecord` per request that went through the front.

Invariants:
- ``seq`` is assigned when a request ARRIVES (strictly increasing, from 1); the record is
  appended when the answer is complete, but before the client can have received all of it, so
  a client that has its response always finds the record. ``records()`` returns seq order;
  ``since(mark())`` is exactly the requests that arrived after the mark.
- ``t`` is ``time.monotonic()`` when the request line arrived; on Linux that clock is system
  wide, so it can be compared with times logged by another process (e.g. a TF subprocess).
  ``t_first`` is when the answer's first byte went out and ``t_end`` when the answer was
  complete (``t <= t_first <= t_end``); ``conn_id`` is the client connection. Pass-through
  records also carry ``t_up_sent`` (the request went upstream), ``t_up_first``/``t_up_end`` (the
  upstream's first byte and end), so ``t <= t_up_sent <= t_up_first <= t_first``. Records
  written before these fields existed load with ``t_first = 0.0`` (unknown).
- Records never hold credentials: no headers, no bodies, no query values of secret-like keys
  (tokens, ``client_secret``, ``X-Goog-Signature``/``-Credential``, OAuth ``code`` ...).
- Memory is bounded: at most ``window`` records are held in memory; older ones spill to a
  private temporary file (0600, unlinked) and are read back by the query API, which stays
  exact over every record since the last :meth:`Ledger.clear` (only ``wait_for`` looks at the
  in-memory window alone).
- The ``jsonl_path`` file (never a symlink: refused) is created 0600 and appended one line per record as it is made. A
  write error (disk full, directory gone) never reaches a client: it is reported on stderr
  (the first time, then once per 1000 failures) and counted in ``write_errors``; records stay
  queryable.
- All methods are thread-safe.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.atomic_files import atomic_writer, open_append_nofollow

KINDS = ("metadata", "media", "list", "upload", "delete", "token", "bucket", "other")

#: Query keys whose values are never stored (they could carry credentials).
_SECRET_QUERY_KEYS = frozenset(
    {
        "access_token", "key", "token", "assertion", "refresh_token", "id_token",
        "client_secret", "code", "password", "secret", "private_key",
        "x-goog-signature", "x-goog-credential", "x-goog-security-token",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "sig",
    }
)  # fmt: skip
DEFAULT_WINDOW = 50_000

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None) -> tuple[int, int] | None:
    """``"bytes=a-b"`` → ``(a, b)`` (inclusive). ``"bytes=a-"`` → ``(a, -1)`` (open end).

    Suffix ranges (``bytes=-n``), multi-ranges and malformed headers → ``None``.
    """
    if not header:
        return None
    m = _RANGE_RE.match(header)
    if not m or not m.group(1):
        return None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else -1
    return (start, end)


def clean_query(query: str) -> dict[str, str]:
    """Parse a query string into a dict (last value wins), dropping credential-like values."""
    out: dict[str, str] = {}
    for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
        out[k] = "<redacted>" if k.lower() in _SECRET_QUERY_KEYS else v
    return out


def classify(
    method: str, path: str, query: dict[str, str], host: str = ""
) -> tuple[str, str | None, str | None]:
    """Kind, bucket and object of a request (path still percent-encoded, query parsed).

    - ``/oauth2/...`` → token
    - ``/upload/...`` (POST/PUT) → upload
    - ``/download/storage/v1/b/B/o/O`` → media
    - ``/storage/v1/b/B/o/O``: GET/HEAD → media with ``alt=media``, else metadata;
      DELETE → delete; anything else (copy/rewrite/compose/patch) → other
    - ``/storage/v1/b/B/o`` GET → list; ``/storage/v1/b/B`` GET → bucket; ``/storage/v1/b`` → list
    - any other ``GET/HEAD /B/O`` (XML API) → media; ``GET /B`` → list
    """
    m = method.upper()
    parts = path.split("?", 1)[0].split("/")[1:]  # leading "" dropped
    unq = urllib.parse.unquote
    if parts[:1] == ["oauth2"]:
        return "token", None, None
    if parts[:1] == ["upload"]:
        bucket = unq(parts[4]) if parts[1:4] == ["storage", "v1", "b"] and len(parts) > 4 else None
        name = query.get("name")
        return ("upload" if m in ("POST", "PUT") else "other"), bucket, name
    if parts[:4] == ["download", "storage", "v1", "b"] and len(parts) >= 7 and parts[5] == "o":
        return "media", unq(parts[4]), unq("/".join(parts[6:]))
    if parts[:3] == ["storage", "v1", "b"]:
        rest = parts[3:]
        if not rest or rest == [""]:
            return ("list" if m == "GET" else "other"), None, None
        bucket = unq(rest[0])
        if len(rest) == 1:
            if m in ("GET", "HEAD"):
                return "bucket", bucket, None
            return ("delete" if m == "DELETE" else "other"), bucket, None
        if rest[1] == "o":
            if len(rest) == 2 or rest[2:] == [""]:
                return ("list" if m == "GET" else "other"), bucket, None
            obj = unq(rest[2])
            if len(rest) > 3:  # .../o/O/copyTo/..., /rewriteTo/..., /compose
                return "other", bucket, obj
            if m in ("GET", "HEAD"):
                return ("media" if query.get("alt") == "media" else "metadata"), bucket, obj
            if m == "DELETE":
                return "delete", bucket, obj
            return "other", bucket, obj
        return "other", bucket, None
    if m in ("GET", "HEAD") and parts and parts[0]:
        bucket = unq(parts[0])
        if len(parts) == 1 or parts[1:] == [""]:
            return "list", bucket, None
        return "media", bucket, unq("/".join(parts[1:]))
    return "other", None, None


@dataclass(frozen=True)
class RequestRecord:
    """One request as the front saw it. No credentials, headers or bodies."""

    seq: int
    t: float
    conn_id: int
    host: str
    method: str
    path: str
    query: dict[str, str]
    range: tuple[int, int] | None
    status: int
    bytes_out: int
    bytes_in: int
    principal: str
    kind: str
    bucket: str | None = None
    object: str | None = None
    t_end: float = 0.0
    scheme: str = "http"
    extra: dict[str, Any] = field(default_factory=dict)
    #: first response byte sent to the client (0.0: not recorded, an old ledger)
    t_first: float = 0.0
    #: pass-through mode: the request was sent upstream / the upstream's answer head arrived /
    #: its last byte was read
    t_up_sent: float | None = None
    t_up_first: float | None = None
    t_up_end: float | None = None

    def as_trace_request(self) -> dict[str, Any]:
        """The request as a trace-format.md request dict (kind, object, range)."""
        obj = f"{self.bucket}/{self.object}" if self.bucket and self.object else self.bucket
        d: dict[str, Any] = {"kind": self.kind, "object": obj}
        if self.kind == "media":
            d["range"] = list(self.range) if self.range else None
        return d

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["range"] = list(self.range) if self.range else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RequestRecord:
        d = dict(d)
        d["range"] = tuple(d["range"]) if d.get("range") else None
        return cls(**d)


def front_time(rec: RequestRecord) -> float | None:
    """The pass-through front's own seconds in one forwarded request: from its arrival until it
    had gone upstream, plus from the upstream's answer head until the program's first byte.
    None for a record without those times (not forwarded, or an older ledger)."""
    if rec.t_up_sent is None or rec.t_up_first is None or not rec.t_first:
        return None
    return max(0.0, rec.t_up_sent - rec.t) + max(0.0, rec.t_first - rec.t_up_first)


class Ledger:
    """Thread-safe, append-only (until ``clear``) record store with a small query API."""

    def __init__(
        self, jsonl_path: str | os.PathLike | None = None, *, window: int = DEFAULT_WINDOW
    ) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"ledger window must be a positive integer, got {window!r}")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._records: collections.deque[RequestRecord] = collections.deque()
        self.window = window
        self._spill: Any = None  # unlinked 0600 temp file with records beyond the window
        self._spilled = 0
        self._spilled_max_seq = 0
        self._seq = 0
        self._last_change = time.monotonic()
        self._in_flight = 0
        self.jsonl_path = str(jsonl_path) if jsonl_path else None
        self._jsonl: Any = None
        self.write_errors = 0

    # -- writing ----------------------------------------------------------------------------
    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def begin(self) -> None:
        """Note that a request is in flight (for :meth:`wait_quiet`)."""
        with self._lock:
            self._in_flight += 1
            self._last_change = time.monotonic()

    def end(self) -> None:
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._last_change = time.monotonic()
            self._cond.notify_all()

    def append(self, rec: RequestRecord) -> RequestRecord:
        """Add a record; if it has ``seq == 0`` a fresh seq is assigned."""
        with self._cond:
            if rec.seq <= 0:
                self._seq += 1
                rec = dataclasses.replace(rec, seq=self._seq)
            else:
                self._seq = max(self._seq, rec.seq)
            self._records.append(rec)
            while len(self._records) > self.window:
                self._spill_one(self._records.popleft())
            self._last_change = time.monotonic()
            if self.jsonl_path:
                self._write_jsonl(rec)
            self._cond.notify_all()
        return rec

    def _spill_one(self, rec: RequestRecord) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="gcs-hook-ledger-")  # noqa: SIM115
        self._spill.seek(0, os.SEEK_END)
        self._spill.write(json.dumps(rec.to_json()) + "\n")
        self._spilled += 1
        self._spilled_max_seq = max(self._spilled_max_seq, rec.seq)

    def _write_jsonl(self, rec: RequestRecord) -> None:
        try:
            if self._jsonl is None:
                self._jsonl = open_append_nofollow(self.jsonl_path)  # never through a symlink
            self._jsonl.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")
        except (OSError, ValueError) as exc:
            if self._jsonl is not None:
                with contextlib.suppress(OSError):
                    self._jsonl.close()
                self._jsonl = None
            self.write_errors += 1
            if self.write_errors % 1000 == 1:
                with contextlib.suppress(Exception):
                    print(
                        f"gcs-hook: warning: cannot write the ledger to {self.jsonl_path}: "
                        f"{getattr(exc, 'strerror', None) or exc} "
                        f"({self.write_errors} records not written); "
                        "still serving",
                        file=sys.stderr,
                        flush=True,
                    )

    def close(self) -> None:
        """Close the JSONL file (records, spilled ones included, stay queryable; the unlinked
        spill file goes away with this object)."""
        with self._lock:
            if self._jsonl is not None:
                with contextlib.suppress(OSError):
                    self._jsonl.close()
            self._jsonl = None

    # -- reading ----------------------------------------------------------------------------
    @staticmethod
    def _match(rec: RequestRecord, filters: dict[str, Any]) -> bool:
        for key, want in filters.items():
            if key == "where":
                if not want(rec):
                    return False
                continue
            have = getattr(rec, key)
            if isinstance(want, (set, frozenset, list, tuple)) and key != "range":
                if have not in want:
                    return False
            elif have != want:
                return False
        return True

    def records(self, **filters: Any) -> list[RequestRecord]:
        """Records in seq order matching every filter.

        ``filters``: field=value (or field=set/list of accepted values), and ``where=callable``.
        Example: ``ledger.records(kind="media", bucket="b", object="o")``.
        """
        return self._query(0, filters)

    def _query(self, after: int, filters: dict[str, Any]) -> list[RequestRecord]:
        with self._lock:
            snap = list(self._records)
            if self._spill is not None and self._spilled and after < self._spilled_max_seq:
                self._spill.flush()
                self._spill.seek(0)
                snap += [RequestRecord.from_json(json.loads(line)) for line in self._spill]
        snap.sort(key=lambda r: r.seq)
        return [r for r in snap if r.seq > after and self._match(r, filters)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records) + self._spilled

    def mark(self) -> int:
        """The current last seq; pass it to :meth:`since`."""
        with self._lock:
            return self._seq

    def since(self, mark: int, **filters: Any) -> list[RequestRecord]:
        return self._query(mark, filters)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            if self._spill is not None:
                self._spill.seek(0)
                self._spill.truncate()
            self._spilled = 0
            self._spilled_max_seq = 0

    def to_jsonl(self, path: str | os.PathLike) -> None:
        with atomic_writer(path, mode=0o600) as f:
            for rec in self.records():
                f.write(json.dumps(rec.to_json(), sort_keys=True) + "\n")

    def wait_quiet(self, quiet_s: float = 0.2, timeout: float = 10.0) -> bool:
        """Wait until nothing is in flight and nothing changed for ``quiet_s``. True if so."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._in_flight == 0 and now - self._last_change >= quiet_s:
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(quiet_s, deadline - now))

    def wait_for(
        self, predicate: Callable[[list[RequestRecord]], bool], timeout: float = 10.0
    ) -> bool:
        """Wait until ``predicate(records)`` holds. True if it did before ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(list(self._records)):
                    return True
                now = time.monotonic()
                if now >= deadline:
                    return False
                self._cond.wait(deadline - now)
