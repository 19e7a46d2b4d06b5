"""Names a package exports but imports on first use (PEP 562 module ``__getattr__``).

``gcs_hook`` keeps TensorFlow out of ``import gcs_hook``; ``benchmarks.sweep`` keeps numba out of
every command that only parses its options. Both hand :func:`lazy_getattr` the names and the
module each lives in.

Invariant: a name is imported once; after the first access it is a plain module attribute (the
hook is not consulted again); an unknown name is the usual ``AttributeError``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` for ``package``: ``names`` maps each lazy name to its module."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's own name
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
