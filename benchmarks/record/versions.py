"""Appends told from rewrites, by the fake GCS itself.

While a program is recorded, its buckets keep every object version (:func:`keep_versions`
turns on the bucket's object versioning, which fake-gcs-server implements; TF never asks for
versions, so the program sees nothing different). After the run, :func:`append_flags` walks
each object's versions in generation order and says, for each completed upload the ledger
saw, whether the new version keeps the previous version's bytes as its prefix (an *append*:
an event log re-uploaded with more events) or not (a rewrite). The bytes are compared a chunk
at a time, straight from the backend, so memory stays bounded.

Invariant: a flag is True only when the fake holds both versions and the new one starts with
every byte of the old one; anything that cannot be checked (a bucket without versions, a
version missing) is a rewrite.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

__all__ = ["append_flags", "keep_versions"]

_CHUNK = 8 << 20
_TIMEOUT = 60


def _call(backend: Any, method: str, path: str, body: bytes | None = None, headers=None) -> bytes:
    req = urllib.request.Request(
        backend.endpoint + path, data=body, method=method, headers=dict(headers or {})
    )
    with urllib.request.urlopen(req, timeout=_TIMEOUT) as resp:
        return resp.read()


def keep_versions(backend: Any, buckets: Iterable[str]) -> None:
    """Turn on object versioning for ``buckets`` (in the fake, before the recorded run)."""
    from emulator.fakegcs.backend import quote_object

    body = json.dumps({"versioning": {"enabled": True}}).encode()
    for bucket in sorted(set(buckets)):
        _call(
            backend,
            "PATCH",
            f"/storage/v1/b/{quote_object(bucket)}",
            body,
            {"Content-Type": "application/json"},
        )


def _versions(backend: Any, bucket: str) -> dict[str, list[tuple[int, int]]]:
    """object -> [(generation, size)] in generation order, every version the bucket holds."""
    from emulator.fakegcs.backend import quote_object

    out: dict[str, list[tuple[int, int]]] = {}
    token = ""
    while True:
        q = {"versions": "true"}
        if token:
            q["pageToken"] = token
        path = f"/storage/v1/b/{quote_object(bucket)}/o?{urllib.parse.urlencode(q)}"
        doc = json.loads(_call(backend, "GET", path) or b"{}")
        for item in doc.get("items", []):
            out.setdefault(item["name"], []).append((int(item["generation"]), int(item["size"])))
        token = doc.get("nextPageToken") or ""
        if not token:
            break
    return {name: sorted(v) for name, v in out.items()}


def _chunk(backend: Any, bucket: str, name: str, gen: int, start: int, n: int) -> bytes:
    from emulator.fakegcs.backend import quote_object

    path = (
        f"/download/storage/v1/b/{quote_object(bucket)}/o/{quote_object(name)}"
        f"?alt=media&generation={gen}"
    )
    return _call(backend, "GET", path, headers={"Range": f"bytes={start}-{start + n - 1}"})


def _is_prefix(backend: Any, bucket: str, name: str, old: tuple[int, int], new: tuple[int, int]):
    (old_gen, old_size), (new_gen, new_size) = old, new
    if new_size < old_size:
        return False
    for start in range(0, old_size, _CHUNK):
        n = min(_CHUNK, old_size - start)
        a = _chunk(backend, bucket, name, old_gen, start, n)
        b = _chunk(backend, bucket, name, new_gen, start, n)
        if a != b or len(a) != n:
            return False
    return True


def append_flags(backend: Any, uploads: Iterable[tuple[str, str]]) -> dict[str, list[bool]]:
    """For each ``(bucket, object)`` upload the ledger saw complete, in the order they took
    effect: ``{"bucket/object": [is_append, ...]}`` (see the module docstring). The uploads of
    an object are the newest versions the bucket holds, in order."""
    counts: dict[tuple[str, str], int] = {}
    for key in uploads:
        counts[key] = counts.get(key, 0) + 1
    out: dict[str, list[bool]] = {}
    cache: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for (bucket, name), n in counts.items():
        flags = [False] * n
        try:
            if bucket not in cache:
                cache[bucket] = _versions(backend, bucket)
            versions = cache[bucket].get(name, [])
            base = len(versions) - n
            for j in range(n):
                i = base + j
                if i >= 1:
                    flags[j] = _is_prefix(backend, bucket, name, versions[i - 1], versions[i])
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass  # not checkable: rewrites
        out[f"{bucket}/{name}"] = flags
    return out
