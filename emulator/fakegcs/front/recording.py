"""The one ledger record each request gets.

Invariants:
- A :class:`Recorder` appends exactly one :class:`RequestRecord` for its request, however the
  request ends: :meth:`Recorder.record` is called before the last byte of the answer goes out
  (so a client holding its whole response always finds the record), and :meth:`finish` records
  an aborted request from the progress seen so far (``status`` or 499, bytes out and in) with
  ``extra["aborted"]`` set; transfers cut by the backend or an injected fault say so there too.
- ``seq`` and ``t`` are taken when the request arrives; ``t_first`` when the answer's status line
  is about to go out (after any shaping delay: the client's first response byte), or when the
  record is made if no answer head was sent first; ``t_end`` when the record is made, or when a
  paced last piece (made right after the record) will have gone out. So
  ``t <= t_first <= t_end`` (all ``time.monotonic()``).
- In pass-through mode ``t_up_sent`` is when the whole request had gone upstream,
  ``t_up_first`` when the upstream's answer head arrived and ``t_up_end`` when its last body
  byte was read (the record is made right after), so the front's own time in a request is
  ``(t_up_sent - t) + (t_first - t_up_first)`` on top of the upstream's
  ``t_up_first - t_up_sent`` (:func:`emulator.fakegcs.ledger.front_time`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emulator.fakegcs.front.notices import warn
from emulator.fakegcs.ledger import RequestRecord

if TYPE_CHECKING:
    from emulator.fakegcs.front.connection import ClientConnection


class Recorder:
    """Collects one request's facts and appends its ledger record exactly once."""

    def __init__(
        self,
        conn: ClientConnection,
        *,
        seq: int,
        t0: float,
        host: str,
        method: str,
        path: str,
        query: dict[str, str],
        rng: tuple[int, int] | None,
        principal: str,
        kind: str,
        bucket: str | None,
        obj: str | None,
    ) -> None:
        self.conn = conn
        self.fields: dict[str, Any] = {
            "seq": seq, "t": t0, "conn_id": conn.conn_id, "host": host, "method": method,
            "path": path, "query": query, "range": rng, "principal": principal, "kind": kind,
            "bucket": bucket, "object": obj,
        }  # fmt: skip
        self.done = False
        self.t_first: float | None = None
        self.t_up_sent: float | None = None
        self.t_up_first: float | None = None
        # progress so far, for a request that ends before its record is made
        self.status = 0
        self.bytes_out = 0
        self.bytes_in = 0

    def mark_first_byte(self) -> None:
        """The answer's head is about to be sent (the first time only counts)."""
        if self.t_first is None:
            self.t_first = time.monotonic()

    def mark_upstream_sent(self) -> None:
        """The whole request went upstream (pass-through mode; the last call counts)."""
        self.t_up_sent = time.monotonic()

    def mark_upstream_first(self) -> None:
        """The upstream's answer head arrived (pass-through mode)."""
        if self.t_up_first is None:
            self.t_up_first = time.monotonic()

    def record(
        self,
        status: int,
        bytes_out: int,
        bytes_in: int,
        who: str | None = None,
        extra: dict[str, Any] | None = None,
        t_end: float | None = None,
    ) -> None:
        """Append the record (no-op after the first call). ``t_end``: when the answer's last
        byte goes out, if that is later than now (a paced last piece); default now."""
        if self.done:
            return
        self.done = True
        fields = dict(self.fields)
        if who is not None:
            fields["principal"] = who
        now = time.monotonic()
        if self.t_up_first is not None:
            fields["t_up_sent"] = self.t_up_sent
            fields["t_up_first"] = self.t_up_first
            fields["t_up_end"] = now
        rec = RequestRecord(
            **fields,
            status=status,
            bytes_out=bytes_out,
            bytes_in=bytes_in,
            t_end=max(now, t_end) if t_end is not None else now,
            t_first=self.t_first if self.t_first is not None else now,
            scheme=self.conn.scheme,
            extra=extra or {},
        )
        try:
            self.conn.front.ledger.append(rec)
        except Exception as exc:  # a ledger failure must never cut a client's answer
            warn(f"front: could not record a request: {exc!r}")

    def finish(self) -> None:
        """Record an aborted request from its progress (if nothing was recorded yet)."""
        if not self.done:
            self.record(
                self.status or 499, self.bytes_out, self.bytes_in, extra={"aborted": "client"}
            )


def record_connect(
    conn: ClientConnection, seq: int, t0: float, host: str, target: str, status: int, n_out: int
) -> None:
    """The record of a refused ``CONNECT``."""
    Recorder(
        conn, seq=seq, t0=t0, host=host, method="CONNECT", path=target, query={}, rng=None,
        principal="anonymous", kind="other", bucket=None, obj=None,
    ).record(status, n_out, 0)  # fmt: skip


def record_refused(
    conn: ClientConnection, seq: int, method: str, target: str, status: int, n_out: int, why: str
) -> None:
    """The record of a request refused before it could be parsed or routed (400, 408, 505)."""
    path = target.partition("?")[0][:2048]
    Recorder(
        conn, seq=seq, t0=time.monotonic(), host=conn.tunnel_host or "", method=method[:32],
        path=path, query={}, rng=None, principal="anonymous", kind="other", bucket=None, obj=None,
    ).record(status, n_out, 0, extra={"refused": why[:200]})  # fmt: skip
