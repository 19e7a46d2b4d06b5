"""What a trace or ledger that ``gcs-hook record`` writes may say: made to be shared.

- :func:`trace_comment`: the trace's comment names the program by its base name only
  (``recorded by gcs-hook record: job.py`` for ``env TOKEN=… python /home/me/job.py``). With
  ``keep_command`` the arguments follow, but never an environment assignment (``NAME=VALUE``,
  ``env``'s options), a value of a secret-looking option (``--token X``, ``--password=X``) or
  a directory: every path is cut to its base name.
- :func:`redact_records`: the ledger under ``--redact-names``: bucket and object names become
  the same keyed hashes as the trace's (:func:`name_hasher`, one key per run, never written);
  path segments that are not GCS API words become those hashes or ``-``; query values of keys
  off :data:`QUERY_ALLOW` are dropped (``pageToken``, ``upload_id``, ``prefix``, ``name`` …);
  ``extra`` keeps numbers and booleans only.

Invariant: nothing here returns a string holding an environment assignment's value, an
absolute path, or (redacted) a bucket or object name of the input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "QUERY_ALLOW",
    "name_hasher",
    "program_name",
    "redact_records",
    "trace_comment",
]

#: Query keys whose values a redacted ledger keeps (none of them can carry a name or a token).
QUERY_ALLOW = frozenset(
    {
        "alt", "uploadType", "generation", "ifGenerationMatch", "ifGenerationNotMatch",
        "ifMetagenerationMatch", "ifMetagenerationNotMatch", "maxResults", "projection",
        "fields", "delimiter", "includeTrailingDelimiter", "versions", "prettyPrint",
    }
)  # fmt: skip
#: Path words of the GCS JSON/XML APIs a redacted ledger keeps as they are.
PATH_WORDS = frozenset(
    {
        "", "storage", "upload", "download", "batch", "v1", "b", "o", "compose", "copyTo",
        "rewriteTo", "token", "oauth2", "v4", "computeMetadata", "iam", "acl", "defaultObjectAcl",
    }
)  # fmt: skip
#: Ledger principals that name no one (others, e.g. a service account's e-mail, are hashed).
KNOWN_PRINCIPALS = frozenset({"test-token", "anonymous", "invalid", "program", "other"})
_INTERPRETERS = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|dash|zsh|node|ruby|perl)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SECRET_OPTION = re.compile(r"token|secret|passw|credential|key|auth", re.IGNORECASE)
_DIRECTORY_PART = re.compile(r"(?:~|\.{1,2})?(?:/[^/\s]*)*/")
_ENV_ARG_OPTIONS = {"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}


def _words_after_env(cmd: Sequence[str]) -> list[str]:
    """``cmd`` without a leading ``env`` (its options and assignments) and assignments."""
    words = list(cmd)
    if words and os.path.basename(words[0]) == "env":
        words = words[1:]
        while words and (words[0].startswith("-") or _ASSIGNMENT.match(words[0])):
            skip = 2 if words[0] in _ENV_ARG_OPTIONS else 1
            words = words[skip:]
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    return words


def _base(word: str) -> str:
    return _DIRECTORY_PART.sub("", word)


def program_name(cmd: Sequence[str]) -> str:
    """The program's base name: the script's for an interpreter (``python /a/job.py`` →
    ``job.py``, ``python -m pkg.mod`` → ``pkg.mod``), else the executable's."""
    words = _words_after_env(cmd)
    if not words:
        return "?"
    exe = os.path.basename(words[0])
    if _INTERPRETERS.match(exe):
        rest = words[1:]
        for i, word in enumerate(rest):
            if word == "-m" and i + 1 < len(rest):
                return _base(rest[i + 1])
            if word == "-c":
                return exe
            if not word.startswith("-"):
                return _base(word)
    return _base(exe)


def _shareable_args(words: list[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for word in words:
        if hide_next:
            out.append("<hidden>")
            hide_next = False
        elif _ASSIGNMENT.match(word):
            continue
        elif word.startswith("-") and _SECRET_OPTION.search(word.split("=", 1)[0]):
            flag, eq, _ = word.partition("=")
            out.append(f"{flag}=<hidden>" if eq else flag)
            hide_next = not eq
        else:
            out.append(_base(word))
    return out


def trace_comment(base: str, cmd: Sequence[str], *, keep_command: bool = False) -> str:
    """The comment of a recorded trace: ``base`` and the program's base name (see above)."""
    if not keep_command:
        return f"{base}: {program_name(cmd)}"
    words = _words_after_env(cmd)
    shown = [_base(words[0])] if words else []
    return f"{base}: {' '.join(shown + _shareable_args(words[1:]))[:200]}"


def name_hasher(key: bytes) -> Callable[[str, str], str]:
    """``hash(prefix, name)``: a keyed hash, ``o`` + 24 hex for objects, ``b`` (buckets) or any
    other prefix + 12 (the form :func:`benchmarks.record.upstream.redact_trace` uses)."""

    def hashed(prefix: str, name: str) -> str:
        n = 24 if prefix == "o" else 12
        return prefix + hmac.new(key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:n]

    return hashed


def _redact_path(path: str, bucket: str | None, obj: str | None, hashed: Callable) -> str:
    names = {}
    if bucket:
        names[bucket] = hashed("b", bucket)
    if obj:
        names[obj] = hashed("o", obj)
    out = []
    for seg in path.split("/"):
        plain = urllib.parse.unquote(seg)
        if seg in PATH_WORDS:
            out.append(seg)
        elif plain in names:
            out.append(names[plain])
        else:
            out.append("-")
    return "/".join(out)


def redact_records(records: Iterable[Any], key: bytes) -> list[Any]:
    """Copies of ledger records with names hashed, path segments, query values and string
    ``extra`` values dropped as the module docstring says."""
    hashed = name_hasher(key)
    out = []
    for rec in records:
        query = {k: (v if k in QUERY_ALLOW else "<dropped>") for k, v in rec.query.items()}
        extra = {
            k: v
            for k, v in (rec.extra or {}).items()
            if isinstance(v, bool | int | float) or v is None
        }
        out.append(
            dataclasses.replace(
                rec,
                path=_redact_path(rec.path, rec.bucket, rec.object, hashed),
                query=query,
                bucket=hashed("b", rec.bucket) if rec.bucket else rec.bucket,
                object=hashed("o", rec.object) if rec.object else rec.object,
                principal=(
                    rec.principal
                    if rec.principal in KNOWN_PRINCIPALS
                    else hashed("p", rec.principal)
                ),
                extra=extra,
            )
        )
    return out
