"""``gs://`` path parsing and glob matching as TF's GCS filesystem does them.

From TF 2.21 ``xla/tsl/platform/cloud/gcs_file_system.cc`` (``ParseGcsPath``) and the
``fnmatch(3)`` call with ``FNM_PATHNAME`` that ``GetMatchingPaths`` applies; see
docs/tf-read-path.md, "Matching-paths cache".
"""

from __future__ import annotations

import re

from emulator.model.errors import InvalidArgumentError

__all__ = ["glob_regex", "parse_gcs_path"]


def parse_gcs_path(path: str) -> tuple[str, str, str]:
    """``(filename, bucket, object)`` for ``gs://bucket/object`` or ``bucket/object``.

    ``filename`` is the ``gs://`` form TF keys its caches with. INVALID_ARGUMENT (like TF's
    ParseGcsPath) for a wrong scheme, an empty/"." bucket or an empty object name.
    """
    if not isinstance(path, str):
        raise InvalidArgumentError(f"GCS path must be a string, got {type(path).__name__}")
    if "://" in path:
        scheme, rest = path.split("://", 1)
        if scheme != "gs":
            raise InvalidArgumentError(f"GCS path doesn't start with 'gs://': {path}")
    else:
        rest = path
    bucket, _, obj = rest.partition("/")
    if not bucket or bucket == ".":
        raise InvalidArgumentError(f"GCS path doesn't contain a bucket name: {path}")
    obj = obj[1:] if obj.startswith("/") else obj
    if not obj:
        raise InvalidArgumentError(f"GCS path doesn't contain an object name: {path}")
    return (f"gs://{bucket}/{obj}", bucket, obj)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch(3) with FNM_PATHNAME: ``*``/``?``/``[...]`` never match ``/``; ``\\`` escapes."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))
