"""A test upstream that impersonates GCS, for pass-through recording tests.

- ``emu``: a second fake GCS (embedded backend) with ``require_auth``: only tokens its own
  token issuer made are accepted. Its front answers ``www.googleapis.com/oauth2/v4/token``
  (TF's service-account flow) and is reached over HTTPS through ``tls``
  (:class:`emulator.fakegcs.tls_listener.TlsListener`) with ITS OWN per-run CA — a different
  CA from the recording front's.
- ``token_server``: ``oauth2.googleapis.com`` (what google-auth uses) on 127.0.0.1, with a
  certificate from a third CA (``token_ca``) that the recorded process trusts as a "system" CA
  (``SSL_CERT_FILE`` = :attr:`system_bundle`, the real system CAs plus ``token_ca``). The
  recording front must tunnel it blind.
- ``sa_path``: service-account credentials (0600) registered with the issuer; the principal
  the upstream sees for them is :attr:`principal`. The fake mode's test tokens are accepted
  too, as principal ``test-token``, so a front that sent its own token would be seen doing it.

Everything listens on 127.0.0.1; :meth:`close` stops it all and removes the files.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import ssl
import threading
from pathlib import Path

import trustme

from emulator.fakegcs.ca_bundle import system_ca_pem
from emulator.fakegcs.oauth import V4_PATH, make_test_credentials
from emulator.fakegcs.session import GcsEmulator
from emulator.fakegcs.tls_listener import TlsListener
from gcs_hook.cli.demo_cmd import DEFAULT_TEST_TOKEN

TOKEN_HOST = "oauth2.googleapis.com"
#: The recording front's own test tokens (gcs-hook's default, Front.tf_env's default).
FRONT_TEST_TOKENS = (DEFAULT_TEST_TOKEN, "fake-token")
#: Every access token the fake issuers make starts with this (for secrets scans).
TOKEN_PREFIX = "ya29.fake-"


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    server: _TokenServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n)
        self.server.requests += 1
        reply = self.server.issuer.handle(V4_PATH if self.path == "/token" else self.path, body)
        payload = json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # quiet
        pass


class _TokenServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: object, ctx: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.issuer = issuer
        self.requests = 0
        self.socket = ctx.wrap_socket(self.socket, server_side=True)


class Impersonator:
    """See the module docstring."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.emu = GcsEmulator(require_auth=True)
        try:
            self.tls = TlsListener(self.emu.front)
            self.creds = make_test_credentials("service_account")
            self.principal = self.emu.token_issuer.register(self.creds)
            # the tokens a fake-mode front hands out are known here as principal "test-token":
            # were the recording front to send one, the upstream would accept it visibly
            for front_token in FRONT_TEST_TOKENS:
                self.emu.front.accept_test_token(front_token)
            self.sa_path = str(tmp / "sa.json")
            fd = os.open(self.sa_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(self.creds, f)
            self.token_ca = trustme.CA(organization_name="gcs-hook test token CA")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.token_ca.issue_cert(TOKEN_HOST).configure_cert(ctx)
            self.token_server = _TokenServer(self.emu.token_issuer, ctx)
            self._thread = threading.Thread(target=self.token_server.serve_forever, daemon=True)
            self._thread.start()
            self.system_bundle = str(tmp / "system-cas.pem")
            Path(self.system_bundle).write_text(
                system_ca_pem().rstrip("\n") + "\n" + self.token_ca.cert_pem.bytes().decode()
            )
        except BaseException:
            self.emu.close()
            raise

    @property
    def token_port(self) -> int:
        return self.token_server.server_address[1]

    def record_args(self) -> list[str]:
        """``gcs-hook record`` options pointing the pass-through front at this upstream."""
        return [
            "--upstream", self.tls.url, "--upstream-ca", self.emu.front.ca_pem,
            "--connect-to", f"{TOKEN_HOST}=127.0.0.1:{self.token_port}",
        ]  # fmt: skip

    def connect_to(self) -> dict[str, tuple[str, int]]:
        return {TOKEN_HOST: ("127.0.0.1", self.token_port)}

    def program_env(self) -> dict[str, str]:
        """The recorded program's own settings: its credentials and its "system" CAs."""
        return {
            "GOOGLE_APPLICATION_CREDENTIALS": self.sa_path,
            "SSL_CERT_FILE": self.system_bundle,
            "NO_GCE_CHECK": "true",  # never try the GCE metadata server
        }

    def secrets(self) -> list[str]:
        """Strings that must never appear in anything the recording writes."""
        key_lines = [
            ln for ln in self.creds["private_key"].splitlines() if ln and "PRIVATE KEY" not in ln
        ]
        return [TOKEN_PREFIX, "Bearer ", "eyJ", self.creds["private_key_id"], *key_lines[:3]]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.token_server.shutdown()
            self.token_server.server_close()
        self.tls.close()
        self.emu.close()
        with contextlib.suppress(OSError):
            os.unlink(self.sa_path)
