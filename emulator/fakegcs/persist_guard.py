"""``--persist DIR`` confinement: no request reaches a file outside DIR through a symlink.

fake-gcs-server's filesystem backend keeps object ``NAME`` of bucket ``B`` at
``DIR/B/NAME`` (each ``/`` a directory) and the bucket's metadata at ``DIR/B.bucketMetadata``,
and follows any symlink on the way. :func:`persist_problem` is asked, at the front, before a
request is forwarded: every bucket and object name the request carries
(:func:`emulator.fakegcs.names.request_names`, compose sources included, reads too, and the
XML API's ``/B/O`` as the front classified it, and each inner request of a batch) is walked
component by component from DIR with ``lstat`` (never following a link); a symlink anywhere on
the way, or inside a bucket being listed, refuses the request with a 400 whose message names no
path. Names themselves go through :func:`emulator.fakegcs.names.name_error` and
:func:`emulator.fakegcs.names.persist_error` first (``..``, NUL, over-long segments): the same
check as every other name, here for the XML API's names too.

Invariants: pure reads of DIR (``lstat``, ``scandir``); a message never holds DIR or any
absolute path. The check and the backend's write are not atomic: a link created inside DIR
between the two by another local user is not caught (DIR is created 0700 for that reason).
"""

from __future__ import annotations

import os
import re
import stat

from emulator.fakegcs.names import (
    METADATA_SCAN_BYTES,
    BadName,
    name_error,
    persist_error,
    request_names,
)

__all__ = ["persist_problem"]

LINK_REFUSED = (
    "The name passes through a symbolic link in the persistent (filesystem) backend's "
    "directory; links there are never followed."
)
#: Entries a listing's symlink scan looks at before giving up (refusing the listing).
MAX_SCAN_ENTRIES = 100_000


def _walk_has_link(root: str, parts: list[str]) -> bool:
    """True if a component of ``root/parts...`` that exists is a symlink (``root`` itself is
    the user's choice and may be one)."""
    cur = root
    for part in parts:
        if not part:
            continue
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return False
        except OSError:
            return False  # unstorable names are refused by persist_error before this
        if stat.S_ISLNK(st.st_mode):
            return True
        if not stat.S_ISDIR(st.st_mode):
            return False
    return False


def _tree_has_link(top: str) -> bool:
    """True if the directory tree at ``top`` (not following links) holds a symlink, or is too
    large to scan."""
    seen = 0
    stack = [top]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return True
        for entry in entries:
            seen += 1
            if seen > MAX_SCAN_ENTRIES or entry.is_symlink():
                return True
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return False


_INNER_REQUEST = re.compile(r"^(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r?$", re.M)


def _batch_problem(persist_dir: str, body_head: bytes) -> str | None:
    """A batch request's inner requests, each through :func:`persist_problem` (a body larger
    than the scanned head could hide one: refused)."""
    if len(body_head) >= METADATA_SCAN_BYTES:
        return "The batch request is too large to check for the persistent backend."
    for method, target in _INNER_REQUEST.findall(body_head.decode("latin-1")):
        path, _, query = target.partition("?")
        problem = persist_problem(persist_dir, method, path, query, "", b"")
        if problem:
            return problem
    return None


def persist_problem(
    persist_dir: str,
    method: str,
    path: str,
    raw_query: str,
    content_type: str,
    body_head: bytes,
    target: tuple[str | None, str | None] = (None, None),
) -> str | None:
    """Why the request must not reach a filesystem backend rooted at ``persist_dir``, or
    ``None``. ``target``: the (bucket, object) the front classified the request as — the only
    names an XML-API request (``GET /B/O``) carries; they pass the same name checks."""
    if path.startswith("/batch/"):
        return _batch_problem(persist_dir, body_head)
    try:
        buckets, objects = request_names(
            method, path, raw_query, content_type, body_head, all_buckets=True
        )
    except BadName as exc:
        return str(exc)
    bucket, obj = target
    buckets += [bucket] if bucket is not None else []
    objects += [obj] if obj is not None else []
    for name in objects:
        problem = name_error(name) or persist_error(name)
        if problem:
            return problem
    buckets = list(dict.fromkeys(buckets))
    for bucket in buckets:
        if "/" in bucket or bucket in ("", ".", ".."):
            return LINK_REFUSED
        meta = os.path.join(persist_dir, f"{bucket}.bucketMetadata")
        if os.path.islink(meta) or _walk_has_link(persist_dir, [bucket]):
            return LINK_REFUSED
        for obj in objects:
            if _walk_has_link(persist_dir, [bucket, *obj.split("/")]):
                return LINK_REFUSED
    listing = method.upper() == "GET" and path.rstrip("/").endswith("/o") and not objects
    if listing and any(_tree_has_link(os.path.join(persist_dir, b)) for b in buckets):
        return LINK_REFUSED
    return None
