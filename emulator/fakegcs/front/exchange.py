"""One request: target parsing, classification, checks and routing.

Order, each step answering (and recording) instead of going on when it applies:

1. framing: with both ``Transfer-Encoding: chunked`` and ``Content-Length`` the chunked
   framing wins and the connection closes after the answer (RFC 9112 §6.1, §6.3; TensorFlow
   sends both on its token POST); any other ``Transfer-Encoding`` with a ``Content-Length``:
   400 at once, close. Differing duplicate ``Content-Length`` values: h11's 400;
2. the token endpoint (:mod:`emulator.fakegcs.front.tokens`);
3. 401 when ``require_auth`` is on and the request has no valid token (body not read);
4. the whole body is received (:class:`emulator.fakegcs.front.body.SpooledBody`) within the
   request deadline: 408 past it, 413 over the size limit;
5. GCS's naming rules (:mod:`emulator.fakegcs.names`): 400 with GCS's error JSON;
6. an injected fault (:class:`emulator.fakegcs.faults.FaultPlan`): an error status, or a
   network failure applied while forwarding;
7. forwarding to the backend (:mod:`emulator.fakegcs.front.forward`).

Invariants: every request gets exactly one ledger record (:class:`Recorder`), also when the
client or the backend goes away mid-way (then marked ``extra["aborted"]``); ``Authorization``
is read only to name a principal; the spooled body is released when the request ends.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import h11

from emulator.fakegcs import names
from emulator.fakegcs.front.body import BodyTooLarge, SpooledBody
from emulator.fakegcs.front.errors import RequestTimeout
from emulator.fakegcs.front.recording import Recorder
from emulator.fakegcs.front.tokens import answer_token_request
from emulator.fakegcs.ledger import classify, clean_query, parse_range
from emulator.fakegcs.persist_guard import persist_problem

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
        self.body: SpooledBody | None = None
        # both framings: TE wins, the client's Content-Length is never forwarded, and the
        # connection closes after the answer
        self.close_after = "transfer-encoding" in self.hmap and "content-length" in self.hmap
        self.has_body = "transfer-encoding" in self.hmap or self.hmap.get(
            "content-length", "0"
        ).strip() not in ("", "0")

    def handle(self) -> None:
        """Answer the request and record it in the ledger."""
        ledger = self.conn.front.ledger
        seq = ledger.next_seq()
        ledger.begin()
        try:
            self._route(seq)
        finally:
            ledger.end()
            if self.body is not None:
                self.body.close()

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
            if self.close_after and self.hmap["transfer-encoding"].strip().lower() != "chunked":
                self._refuse(400, "Conflicting Content-Length and Transfer-Encoding headers.")
                return
            if conn.upstream_forwarder is not None:
                conn.upstream_forwarder.forward(self)  # emulator.fakegcs.upstream
                return
            if kind == "token":
                answer_token_request(self)
                return
            if front.require_auth and not authorized:
                self._error_answer(401, "Anonymous or invalid credentials")
                return
            if self.has_body:
                self.body = SpooledBody(front.body_memory_limit, front.max_body_bytes)
                try:
                    conn.spool_body(self.h, self.body)
                except RequestTimeout:
                    self._refuse(408, f"request not received in {front.request_timeout:g} s")
                    return
                except BodyTooLarge as exc:
                    self._refuse(413, f"Payload too large: {exc}")
                    return
                except h11.RemoteProtocolError as exc:  # e.g. a malformed chunk
                    self._refuse(400, f"bad request body: {exc}")
                    return
                self.rec.bytes_in = self.body.size
            conn.arrived()
            problem = names.check_request(
                self.method, self.path, self.raw_query, self.hmap.get("content-type", ""),
                self.body.head if self.body is not None else b"",
                persist=front.persist_names,
            )  # fmt: skip
            if not problem and front.persist_dir:
                problem = persist_problem(
                    front.persist_dir, self.method, self.path, self.raw_query,
                    self.hmap.get("content-type", ""),
                    self.body.head if self.body is not None else b"", (bucket, obj),
                )  # fmt: skip
            if problem:
                self._error_answer(400, problem, {"refused": "name"})
                return
            fault = front.faults.take(kind, bucket, obj, self.method)
            if fault is not None and fault.action == "status":
                self._error_answer(
                    fault.status, fault.message, {"injected": True, "fault": "status"}
                )
                return
            conn.forwarder.forward(self, fault)
        finally:
            self.rec.finish()  # aborted mid-way (client or backend went away)

    @property
    def bytes_in(self) -> int:
        return self.body.size if self.body is not None else 0

    def _error_answer(self, status: int, message: str, extra: dict[str, Any] | None = None) -> None:
        """Drain any unread body, record, and answer ``status`` with GCS's JSON error body."""
        conn, h = self.conn, self.h
        n_in = self.bytes_in if self.body is not None else conn.drain_body(h)
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        close = h.their_state is not h11.DONE or self.close_after
        self.rec.record(status, len(body), n_in, extra=extra)
        conn.simple_response(h, status, body, close=close)

    def _refuse(self, status: int, message: str) -> None:
        """Record and answer ``status`` without reading further; the connection then closes."""
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        self.rec.record(status, len(body), self.bytes_in, extra={"refused": message[:200]})
        self.conn.arrived()
        self.conn.send_error_and_close(self.h, status, message)
