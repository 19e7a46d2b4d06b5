"""Lazy re-exports for package roots (PEP 562).

A package root names its public entry points without importing the modules that define them:
``import emulator.model`` must not start loading the fake GCS service, and ``import emulator``
must stay cheap for the pytest plugin and the CLI. Each name is imported on first attribute
access and then cached in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package``.

    ``exports`` maps a public name to the module (relative to ``package``, e.g. ``".ledger"``)
    that defines it. Invariant: every name in ``exports`` resolves to the same object as
    ``from <package><module> import <name>``.
    """
    namespace: dict[str, Any] | None = None

    def __getattr__(name: str) -> Any:
        nonlocal namespace
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        if namespace is None:
            namespace = vars(importlib.import_module(package))
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__
