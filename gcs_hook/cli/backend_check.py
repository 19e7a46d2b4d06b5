"""``check_backend``: a ``--backend`` value checked before anything starts (``tune``, ``record``).

Invariant: returns only for a usable spec (``embedded``; ``container`` with a Docker engine; a
URL that answers); anything else is the one-line ``gcs-hook: error: …`` exit 2
(:func:`gcs_hook.cli.errors.fail`), nothing started or written.
"""

from __future__ import annotations

from gcs_hook.cli.errors import fail
from gcs_hook.cli.values import option, parse_backend_spec

__all__ = ["check_backend"]


def check_backend(spec: str) -> None:
    """Validate the spec (:func:`parse_backend_spec`) and, for a URL, that something answers."""
    spec = option("--backend", parse_backend_spec, spec)
    if spec in ("embedded", "container"):
        if spec == "container":
            from emulator.fakegcs.backend import docker_engine_error

            reason = docker_engine_error()
            if reason:
                fail(f"backend 'container' is unusable: {reason}")
        return
    from emulator.fakegcs.backend import BackendError, ExternalBackend

    try:
        ExternalBackend(spec).close()
    except BackendError as exc:
        fail(f"backend {spec} unreachable: {exc}")
    except OSError as exc:
        fail(f"backend {spec} unreachable: {exc}")
