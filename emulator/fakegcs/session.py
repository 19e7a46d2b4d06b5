"""``GcsEmulator``: a backend plus a front in front of it — what tests, ``serve`` and ``tune`` use.

Invariants: after ``__init__`` returns both are running; ``close()`` stops the front first,
then the backend (an external backend is never stopped), and is idempotent. For backends we
own, the server's external URL is pointed at the front's plain-HTTP endpoint, so
``selfLink``/``mediaLink`` in JSON answers lead back through the front.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from emulator.fakegcs.backend import Backend, start_backend
from emulator.fakegcs.front import Front
from emulator.fakegcs.ledger import Ledger
from emulator.fakegcs.shaping import Shaping


class GcsEmulator:
    """fake-gcs-server (embedded, container or external) behind a recording :class:`Front`."""

    def __init__(
        self,
        backend: str = "embedded",
        *,
        require_auth: bool = False,
        shaping: Shaping | None = None,
        ledger_path: str | os.PathLike | None = None,
        front_port: int = 0,
        backend_port: int = 0,
        workdir: str | None = None,
        persist: str | os.PathLike | None = None,
        front_options: dict[str, Any] | None = None,
    ) -> None:
        """``persist``: keep objects in files under this directory (embedded backend only;
        default: in memory). ``front_options``: extra :class:`Front` keyword arguments
        (timeouts, ``max_connections``, body limits)."""
        kw: dict[str, Any] = {}
        if persist is not None and backend != "embedded":
            raise ValueError("persist= needs the embedded backend")
        if backend in ("embedded",) and backend_port:
            kw["port"] = backend_port
        if backend in ("embedded",) and workdir:
            kw["workdir"] = workdir
        if persist is not None:
            kw["persist"] = persist
        self.backend: Backend = start_backend(backend, **kw)
        try:
            self.ledger = Ledger(jsonl_path=ledger_path)
            self.front = Front(
                self.backend.endpoint,
                port=front_port,
                ledger=self.ledger,
                require_auth=require_auth,
                shaping=shaping,
                workdir=workdir,
                persist_dir=self.backend.persist_dir,
                **(front_options or {}),
            )
        except BaseException:
            self.backend.close()
            raise
        self._closed = False
        if self.backend.kind == "external":
            return  # never reconfigure a server we do not own
        with contextlib.suppress(Exception):  # best effort: only links in JSON answers depend on it
            self.backend._request(
                "PUT",
                "/_internal/config",
                json.dumps({"externalUrl": self.front.url}).encode(),
                {"Content-Type": "application/json"},
            )

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def token_issuer(self):  # noqa: ANN201 - emulator.fakegcs.oauth.TokenIssuer
        return self.front.token_issuer

    def tf_env(self, **kw: Any) -> dict[str, str]:
        """See :meth:`emulator.fakegcs.front.Front.tf_env`."""
        return self.front.tf_env(**kw)

    def gcsfs(self, **kw: Any):  # noqa: ANN201 - gcsfs.GCSFileSystem
        """A gcsfs filesystem talking to the front's plain-HTTP endpoint (no cache reuse)."""
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        opts: dict[str, Any] = {"endpoint_url": self.front.url, "token": "anon"}
        opts.update(kw)
        opts.setdefault("skip_instance_cache", True)
        return gcsfs.GCSFileSystem(**opts)

    def storage_client(self):  # noqa: ANN201 - google.cloud.storage.Client
        """A google-cloud-storage client talking to the front's plain-HTTP endpoint."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="gcs-hook-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.front.url},
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.front.close()
        finally:
            try:
                self.backend.close()
            finally:
                self.ledger.close()

    def __enter__(self) -> GcsEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GcsEmulator(front={self.front.url!r}, backend={self.backend!r})"
