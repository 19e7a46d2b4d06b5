"""One-line warnings of the front on stderr (a service failing must say so, not only in logs).

Invariant: :func:`warn` never raises, whatever stderr is (closed, full, replaced).
"""

from __future__ import annotations

import contextlib
import sys


def warn(message: str) -> None:
    """Print ``gcs-hook: warning: <message>`` on stderr, flushed; never raises."""
    with contextlib.suppress(Exception):
        print(f"gcs-hook: warning: {message}", file=sys.stderr, flush=True)
