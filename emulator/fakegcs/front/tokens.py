"""The token endpoint route: ``/oauth2/v3/token`` and ``/oauth2/v4/token`` answered in the front.

Invariants: the body (at most ``TOKEN_BODY_LIMIT`` bytes) goes to
:meth:`emulator.fakegcs.oauth.TokenIssuer.handle` and never to the backend or the ledger; the
record names the principal the issuer found (``invalid`` for an unreadable body).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from emulator.fakegcs.front.errors import ClientGone

if TYPE_CHECKING:
    from emulator.fakegcs.front.exchange import Exchange

TOKEN_BODY_LIMIT = 64 * 1024


def answer_token_request(ex: Exchange) -> None:
    """Read the token request body, let the issuer answer it, record and send the answer."""
    conn = ex.conn
    try:
        body = conn.read_body(ex.h, limit=TOKEN_BODY_LIMIT)
    except ClientGone:
        ex.rec.record(400, 0, 0, "invalid")
        raise
    reply = conn.front.token_issuer.handle(ex.path, body, ex.method)
    payload = json.dumps(reply.payload).encode()
    ex.rec.record(reply.status, len(payload), len(body), reply.principal)
    conn.simple_response(ex.h, reply.status, payload, close=ex.close_after)
