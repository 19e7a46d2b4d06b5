"""``PassThrough``: the recording front in pass-through mode, with the program's CA bundle.

What ``gcs-hook record --upstream`` runs: a :class:`~emulator.fakegcs.front.Front` on 127.0.0.1
that terminates TLS for the Google storage hosts with its per-run CA and forwards every request
to the real hosts (:mod:`emulator.fakegcs.upstream`), tunnels every other host blind
(:mod:`emulator.fakegcs.tunnel`), and records each request in its ledger; plus the CA bundle
(:mod:`emulator.fakegcs.ca_bundle`) the recorded process trusts.

Invariants:
- Loopback only: the front binds 127.0.0.1. When the upstream itself is on loopback (tests), blind
  tunnels go only to the ``connect_to`` hosts (every connection the front makes stays on this
  machine); otherwise any host on port 443.
- :meth:`env` gives the program only proxy and CA settings: the program keeps its own
  credentials, and no test token is set or accepted.
- :meth:`close` stops the front and removes the per-run CA (key 0600 in a 0700 directory) and the
  bundle; idempotent.
"""

from __future__ import annotations

import os

from emulator.fakegcs.ca_bundle import CaBundle
from emulator.fakegcs.front import Front
from emulator.fakegcs.ledger import Ledger
from emulator.fakegcs.tunnel import ConnectPolicy
from emulator.fakegcs.upstream import Upstream, UpstreamConfig

__all__ = ["PassThrough"]

#: Seconds a request may take to arrive: long, since an upload streams on to the upstream as
#: it arrives (its pace is the upstream's).
REQUEST_TIMEOUT_S = 3600.0


class PassThrough:
    """A pass-through recording front and the CA bundle for the recorded process."""

    def __init__(
        self,
        config: UpstreamConfig | None = None,
        *,
        connect_to: dict[str, tuple[str, int]] | None = None,
        ledger_path: str | os.PathLike | None = None,
        port: int = 0,
        workdir: str | None = None,
    ) -> None:
        self.config = config or UpstreamConfig()
        self.ledger = Ledger(jsonl_path=ledger_path)
        self.upstream = Upstream(self.config)
        self.policy = ConnectPolicy(dict(connect_to or {}), allow_other=not self.config.is_loopback)
        self.front = Front(
            "",
            port=port,
            ledger=self.ledger,
            workdir=workdir,
            upstream=self.upstream,
            connect_policy=self.policy,
            request_timeout=REQUEST_TIMEOUT_S,
        )
        try:
            self.bundle = CaBundle(self.front.ca_pem, workdir=workdir)
        except BaseException:
            self.front.close()
            raise

    @property
    def url(self) -> str:
        return self.front.url

    def env(self, *, curl_per_run_ca: bool = True) -> dict[str, str]:
        """Proxy and CA settings for the recorded process (TF's libcurl, Python, requests).

        ``curl_per_run_ca`` (default): ``CURL_CA_BUNDLE`` (TF's libcurl, the curl command) gets
        only the per-run CA. TF reaches only the hosts the front terminates, and libcurl loads
        its bundle for every connection (about 7 ms per request with the system CAs), so this
        is what keeps a recording fast; curl commands in the job can then no longer verify
        other hosts (False: the whole bundle). Python's settings keep the whole bundle."""
        return {
            "https_proxy": self.front.url,
            "HTTPS_PROXY": self.front.url,
            "no_proxy": "",
            "NO_PROXY": "",
            "CURL_CA_BUNDLE": self.front.ca_pem if curl_per_run_ca else self.bundle.path,
            "SSL_CERT_FILE": self.bundle.path,
            "REQUESTS_CA_BUNDLE": self.bundle.path,
        }

    def close(self) -> None:
        try:
            self.front.close()
            self.upstream.close()
        finally:
            self.bundle.close()

    def __enter__(self) -> PassThrough:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PassThrough(front={self.front.url!r}, upstream={self.config.describe()!r})"
