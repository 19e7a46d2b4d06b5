"""GCS naming rules, checked at the front before anything reaches the backend.

Object names (https://cloud.google.com/storage/docs/objects#naming): valid UTF-8, 1..1024
bytes, no carriage return or line feed, not ``.`` or ``..``, not under
``.well-known/acme-challenge/``. Bucket names (https://cloud.google.com/storage/docs/buckets#naming):
3..63 characters (up to 222 with dots, each dot-separated part at most 63) of ``a-z 0-9 - _ .``,
starting and ending with a letter or digit.

:func:`request_names` finds every bucket and object name a request carries: in its path
(percent-decoded), its ``name`` query parameter, the destination of copy/rewrite/compose, and
the JSON metadata of a bucket insert, a resumable upload start or a multipart upload.

Invariants: checks are pure functions of the names (no I/O); a name that cannot be decoded as
UTF-8 is refused, never guessed; :func:`persist_error` refuses exactly the names a
filesystem backend would join onto a path outside its root (a ``.`` or ``..`` segment, an
empty first segment is harmless there).
"""

from __future__ import annotations

import json
import re
import urllib.parse

MAX_OBJECT_NAME_BYTES = 1024
#: Bodies larger than this are not searched for JSON metadata (uploads' data parts).
METADATA_SCAN_BYTES = 64 * 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")


class BadName(ValueError):
    """A name GCS would refuse; the message is GCS-like and safe to show (no secrets)."""


def name_error(name: str) -> str | None:
    """Why GCS refuses object name ``name``, or ``None`` if it is valid."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "The object name is not valid UTF-8."
    if size == 0:
        return "The object name is empty."
    if size > MAX_OBJECT_NAME_BYTES:
        return f"The object name is {size} bytes long; the limit is 1024 bytes of UTF-8."
    if "\r" in name or "\n" in name:
        return "The object name contains a carriage return or line feed."
    if name in (".", ".."):
        return f"The object name {name!r} is not allowed."
    if name.startswith(".well-known/acme-challenge/"):
        return "Object names under .well-known/acme-challenge/ are not allowed."
    return None


#: GCS's bucket naming rule, as said to a user whose bucket name breaks it
BUCKET_RULE = (
    "a bucket name is 3-63 characters (up to 222 with dots, each dot-separated part at most "
    "63) of lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or "
    "digit (https://cloud.google.com/storage/docs/buckets#naming)"
)


def bucket_error(name: str) -> str | None:
    """Why GCS refuses bucket name ``name``, or ``None`` if it is valid."""
    shown = name if len(name) <= 80 and name.isprintable() else repr(name[:80])
    bad = f"Invalid bucket name: '{shown}'"
    if not 3 <= len(name) <= 222 or not _BUCKET_RE.match(name):
        return bad
    if len(name) > 63 and ("." not in name or any(len(p) > 63 for p in name.split("."))):
        return bad
    if ".." in name:
        return bad
    return None


#: Longest ``/``-separated part of a name the filesystem backend stores: fake-gcs-server
#: writes ``.<part><random suffix>`` first, and the whole must fit Linux's NAME_MAX (255 bytes);
#: measured: 230 bytes store, 240 do not.
MAX_SEGMENT_BYTES = 200


def persist_error(name: str) -> str | None:
    """Why a filesystem (``--persist``) backend must not store ``name``, or ``None``: a ``.``
    or ``..`` segment, a NUL, or a segment longer than a file name may be."""
    if any(seg in (".", "..") for seg in name.split("/")):
        return (
            "Object names with '.' or '..' path segments cannot be stored by the persistent "
            "(filesystem) backend; the default memory backend holds them."
        )
    if "\x00" in name:
        return (
            "Object names with a NUL character cannot be stored by the persistent (filesystem) "
            "backend; the default memory backend holds them."
        )
    if any(
        len(seg.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for seg in name.split("/")
    ):
        return (
            f"Object names with a '/'-separated part longer than {MAX_SEGMENT_BYTES} bytes "
            "cannot be stored by the persistent (filesystem) backend."
        )
    return None


def _unquote(s: str) -> str:
    """Percent-decode ``s`` as UTF-8; :class:`BadName` if the bytes are not UTF-8."""
    try:
        return urllib.parse.unquote_to_bytes(s).decode("utf-8")
    except UnicodeDecodeError:
        raise BadName("The object name is not valid UTF-8.") from None


def _path_names(path: str) -> tuple[list[str], list[str]]:
    parts = path.split("/")[1:]
    buckets: list[str] = []
    objects: list[str] = []
    if parts[:1] == ["upload"] and parts[1:4] == ["storage", "v1", "b"] and len(parts) > 4:
        buckets.append(_unquote(parts[4]))
        return buckets, objects
    if parts[:4] == ["download", "storage", "v1", "b"]:
        parts = parts[1:]
    if parts[:3] == ["storage", "v1", "b"]:
        rest = parts[3:]
        if rest and rest[0]:
            buckets.append(_unquote(rest[0]))
        if len(rest) > 2 and rest[1] == "o" and rest[2]:
            objects.append(_unquote(rest[2]))
            tail = rest[3:]  # copyTo/b/B/o/O, rewriteTo/b/B/o/O, compose
            if len(tail) >= 5 and tail[0] in ("copyTo", "rewriteTo") and tail[1] == "b":
                buckets.append(_unquote(tail[2]))
                if tail[3] == "o":
                    objects.append(_unquote("/".join(tail[4:])))
        return buckets, objects
    return buckets, objects


def _body_names(content_type: str, body: bytes) -> list[str]:
    """``name`` fields of the JSON metadata in a (small) request body."""
    if not body or len(body) > METADATA_SCAN_BYTES:
        return []
    ctype = content_type.lower()
    doc = None
    if ctype.startswith("application/json"):
        doc = body
    elif ctype.startswith("multipart/related"):
        m = re.search(rb"\r?\n\r?\n(\{.*?\})\r?\n--", body, re.S)
        doc = m.group(1) if m else None
    if doc is None:
        return []
    try:
        meta = json.loads(doc)
    except (ValueError, UnicodeDecodeError):
        return []
    name = meta.get("name") if isinstance(meta, dict) else None
    return [name] if isinstance(name, str) else []


def _compose_sources(body: bytes) -> list[str]:
    """The ``sourceObjects[].name`` of a compose request's JSON body (each must pass the same
    checks as any other name). :class:`BadName` for a body this cannot read whole (too large,
    not JSON): its sources could not be checked. A source that is not a string is returned as
    ``""`` (refused as empty)."""
    if len(body) > METADATA_SCAN_BYTES:
        raise BadName("The compose request's body is too large to check.")
    try:
        doc = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadName("The compose request's body is not valid JSON.") from None
    sources = doc.get("sourceObjects") if isinstance(doc, dict) else None
    if not isinstance(sources, list):
        return []
    out = []
    for src in sources:
        name = src.get("name") if isinstance(src, dict) else None
        out.append(name if isinstance(name, str) else "")
    return out


def _query_name(raw_query: str) -> str | None:
    for part in raw_query.split("&"):
        key, sep, value = part.partition("=")
        if sep and key == "name":
            return _unquote(value.replace("+", " "))
    return None


def request_names(
    method: str,
    path: str,
    raw_query: str,
    content_type: str,
    body_head: bytes,
    *,
    all_buckets: bool = False,
) -> tuple[list[str], list[str]]:
    """``(bucket names, object names)`` a JSON-API request carries (:class:`BadName` if one
    cannot even be decoded), compose sources included. XML-API paths (``/bucket/object``) are
    reads only and not listed. Bucket names are listed for requests that change something
    (reads of a badly named bucket just find nothing), or for every request (``all_buckets``).
    """
    buckets, objects = _path_names(path)
    mutating = method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    if not mutating and not all_buckets:
        buckets = []
    if method.upper() == "POST" and path.startswith("/storage/v1/b/") and path.endswith("/compose"):
        objects.extend(_compose_sources(body_head))
    if path.startswith("/upload/"):
        name = _query_name(raw_query)
        if name is not None:
            objects.append(name)
    if method.upper() in ("POST", "PUT", "PATCH"):
        found = _body_names(content_type, body_head)
        if path.rstrip("/") == "/storage/v1/b":
            buckets.extend(found)
        elif path.startswith("/upload/"):
            objects.extend(found)
    return buckets, objects


def check_request(
    method: str,
    path: str,
    raw_query: str,
    content_type: str,
    body_head: bytes,
    *,
    persist: bool = False,
) -> str | None:
    """The first problem with the names of a request, as GCS would word it, or ``None``."""
    try:
        buckets, objects = request_names(method, path, raw_query, content_type, body_head)
    except BadName as exc:
        return str(exc)
    for b in buckets:
        problem = bucket_error(b)
        if problem:
            return problem
    for o in objects:
        problem = name_error(o) or (persist_error(o) if persist else None)
        if problem:
            return problem
    return None
