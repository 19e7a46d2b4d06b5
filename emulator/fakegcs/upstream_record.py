"""What a pass-through ledger record keeps of a request and its answer (and what it does not).

Invariants: from an answer only the object's size (``Content-Range`` total, metadata ``size``)
and generation (``x-goog-generation``, metadata ``generation``) are taken; metadata bodies are
looked at only up to :data:`METADATA_LIMIT` bytes and never stored. Query values that grant
access by themselves (:data:`CAPABILITY_QUERY_KEYS`: real GCS's resumable ``upload_id``) are
replaced by ``<redacted>``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client

    from emulator.fakegcs.front.recording import Recorder

#: Query keys whose values grant access by themselves (kept out of pass-through records).
CAPABILITY_QUERY_KEYS = frozenset({"upload_id"})
METADATA_LIMIT = 64 * 1024  # metadata answers up to this size are read for size/generation
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*$")


def redact_capabilities(rec: Recorder) -> None:
    """Real GCS's resumable ``upload_id`` is a capability (whoever has it can write the
    session): its value is not kept in the record."""
    query = getattr(rec, "fields", {}).get("query")
    if isinstance(query, dict):
        for key in CAPABILITY_QUERY_KEYS & query.keys():
            query[key] = "<redacted>"


def response_facts(resp: http.client.HTTPResponse) -> dict[str, object]:
    """Object size and generation an answer reveals (nothing else of it is kept)."""
    out: dict[str, object] = {}
    m = _CONTENT_RANGE.match(resp.getheader("content-range") or "")
    if m:
        out["object_size"] = int(m.group(1))
    gen = resp.getheader("x-goog-generation")
    if gen and gen.isdigit():
        out["generation"] = int(gen)
    return out


def metadata_facts(body: bytes | bytearray) -> dict[str, object]:
    """``size`` and ``generation`` of an object metadata answer (JSON API), else nothing."""
    if not body:
        return {}
    try:
        meta = json.loads(bytes(body))
        out: dict[str, object] = {"object_size": int(meta["size"])}
        if str(meta.get("generation", "")).isdigit():
            out["generation"] = int(meta["generation"])
        return out
    except (ValueError, KeyError, TypeError):
        return {}
