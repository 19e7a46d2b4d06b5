"""One request: target parsing, classification and routing.

Routes, in order: the token endpoint (:mod:`emulator.fakegcs.front.tokens`); a 401 when
``require_auth`` is on and the request has no valid token; an injected fault
(:class:`emulator.fakegcs.faults.FaultPlan`); otherwise forwarding to the backend
(:mod:`emulator.fakegcs.front.forward`).

Invariants: every request gets exactly one ledger record (:class:`Recorder`), also when the
client or the backend goes away mid-way; ``Authorization`` is read only to name a principal.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import TYPE_CHECKING

import h11

from emulator.fakegcs.front.recording import Recorder
from emulator.fakegcs.front.tokens import answer_token_request
from emulator.fakegcs.ledger import classify, clean_query, parse_range

if TYPE_CHECKING:
    from emulator.fakegcs.front.connection import ClientConnection


class Exchange:
    """One request on a :class:`ClientConnection` and its answer."""

    def __init__(self, conn: ClientConnection, h: h11.Connection, req: h11.Request) -> None:
        self.conn = conn
        self.h = h
        self.t0 = time.monotonic()
        self.method = req.method.decode("latin-1")
        target = req.target.decode("latin-1")
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers]
        self.hmap: dict[str, str] = {}
        for k, v in self.headers:
            self.hmap.setdefault(k.lower(), v)
        self.client_host = self.hmap.get("host", "")
        if target.startswith(("http://", "https://")):  # absolute form (a client using a proxy)
            u = urllib.parse.urlsplit(target)
            self.client_host = u.netloc
            target = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
        self.target = target
        self.host = conn.tunnel_host or self.client_host.rsplit(":", 1)[0] or "127.0.0.1"
        self.path, _, self.raw_query = target.partition("?")

    def handle(self) -> None:
        """Answer the request and record it in the ledger."""
        ledger = self.conn.front.ledger
        seq = ledger.next_seq()
        ledger.begin()
        try:
            self._route(seq)
        finally:
            ledger.end()

    def _route(self, seq: int) -> None:
        front, conn = self.conn.front, self.conn
        query = clean_query(self.raw_query)
        kind, bucket, obj = classify(self.method, self.path, query, self.host)
        self.kind, self.bucket, self.obj = kind, bucket, obj
        upstream = front.upstream  # pass-through recording: the user's token is not ours to judge
        if upstream is not None:
            principal, authorized = upstream.PRINCIPAL, True
        else:
            principal, authorized = front.principal_for(self.hmap.get("authorization"))
        self.rec = Recorder(
            conn, seq=seq, t0=self.t0, host=self.host, method=self.method, path=self.path,
            query=query, rng=parse_range(self.hmap.get("range")), principal=principal,
            kind=kind, bucket=bucket, obj=obj,
        )  # fmt: skip
        try:
            if conn.upstream_forwarder is not None:
                conn.upstream_forwarder.forward(self)  # emulator.fakegcs.upstream
                return
            if kind == "token":
                answer_token_request(self)
                return
            if front.require_auth and not authorized:
                self._error_answer(401, "Anonymous or invalid credentials")
                return
            fault = front.faults.take(kind, bucket, obj, self.method)
            if fault is not None:
                self._error_answer(fault.status, fault.message, {"injected": True})
                return
            conn.forwarder.forward(self)
        finally:
            self.rec.finish()  # aborted mid-way (client or backend went away)

    def _error_answer(self, status: int, message: str, extra: dict | None = None) -> None:
        """Drain the request body, record, and answer ``status`` with GCS's JSON error body."""
        conn, h = self.conn, self.h
        n_in = conn.drain_body(h)
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        close = h.their_state is not h11.DONE
        self.rec.record(status, len(body), n_in, extra=extra)
        conn.simple_response(h, status, body, close=close)
