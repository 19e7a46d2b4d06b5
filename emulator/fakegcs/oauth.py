"""A fake Google OAuth token endpoint (what TF's ``tsl::OAuthClient`` talks to) and test credentials.

Flows served (by the front, on ``https://www.googleapis.com``):

- ``POST /oauth2/v3/token`` — refresh-token flow. TF sends the body NOT url-encoded:
  ``client_id=<id>&client_secret=<secret>&refresh_token=<rt>&grant_type=refresh_token``; it is
  parsed leniently (raw and percent-decoded values are both accepted).
- ``POST /oauth2/v4/token`` — JWT-bearer flow:
  ``grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<jwt>``. The JWT
  (pretty-printed JSON, base64url without padding, as TF makes it) must be RS256-signed by the
  registered service account's key, with ``iss`` = its ``client_email``, ``aud`` = the token URL,
  a cloud-platform/devstorage ``scope``, and an unexpired ``exp``.

Answers are ``{"access_token", "token_type": "Bearer", "expires_in"}``; errors are
``{"error", "error_description"}`` with 400/401.

Invariants:
- Secrets (client secrets, refresh tokens, issued access tokens) are kept only as SHA-256
  digests; nothing secret is ever logged, put in a repr, or returned in an error message.
- ``expires_in`` may be changed at run time; each new token uses the current value.
- ``counts[principal]`` = tokens issued to that principal (``user:<client_id>`` /
  ``sa:<client_email>``); all methods are thread-safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

V3_PATH = "/oauth2/v3/token"
V4_PATH = "/oauth2/v4/token"
TOKEN_HOSTS = ("https://www.googleapis.com", "https://oauth2.googleapis.com")
_ACCEPTED_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/cloud-platform",
        "https://www.googleapis.com/auth/devstorage.read_only",
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/devstorage.full_control",
    }
)
_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_FIELD_RE = re.compile(r"(?:^|&)(client_id|client_secret|refresh_token|grant_type)=")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _matches_raw_or_unquoted(value: str, digest: str) -> bool:
    """``value`` as sent, or URL-decoded (TF does not url-encode its refresh body), has the
    SHA-256 ``digest`` (constant-time compare)."""
    return any(_same(_digest(v), digest) for v in (value, urllib.parse.unquote_plus(value)))


def parse_refresh_body(body: str) -> dict[str, str]:
    """Split a (possibly not url-encoded) refresh-token body into its four known fields."""
    out: dict[str, str] = {}
    marks = list(_FIELD_RE.finditer(body))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        out.setdefault(m.group(1), body[m.end() : end].strip())
    return out


@dataclass(frozen=True)
class TokenReply:
    status: int
    payload: dict[str, Any]
    principal: str  # who asked ("user:<id>", "sa:<email>") or "invalid"


@dataclass
class _User:
    client_id: str
    secret_digest: str
    refresh_digest: str


@dataclass
class _ServiceAccount:
    client_email: str
    public_key: Any


class TokenIssuer:
    """Issues fake access tokens to registered principals; looks tokens up for the front."""

    def __init__(self, expires_in: int = 3600, *, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._users: dict[str, _User] = {}
        self._accounts: dict[str, _ServiceAccount] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # sha256(token) -> (principal, expiry)
        self.counts: dict[str, int] = {}
        self.rejected = 0
        self.expires_in = expires_in

    # -- configuration ----------------------------------------------------------------------
    @property
    def expires_in(self) -> int:
        return self._expires_in

    @expires_in.setter
    def expires_in(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expires_in must be a positive integer (seconds), got {value!r}")
        self._expires_in = value

    def register(self, credentials: dict[str, Any] | str) -> str:
        """Accept these credentials from now on; returns the principal name.

        ``authorized_user`` needs client_id, client_secret, refresh_token;
        ``service_account`` needs client_email and private_key (PEM RSA). ``ValueError`` for
        anything else (the message names missing fields, never values).
        """
        creds = json.loads(credentials) if isinstance(credentials, str) else dict(credentials)
        if "refresh_token" in creds:
            missing = [
                k for k in ("client_id", "client_secret", "refresh_token") if not creds.get(k)
            ]
            if missing:
                raise ValueError(f"authorized_user credentials lack {', '.join(missing)}")
            user = _User(
                str(creds["client_id"]),
                _digest(str(creds["client_secret"])),
                _digest(str(creds["refresh_token"])),
            )
            with self._lock:
                self._users[user.client_id] = user
            return f"user:{user.client_id}"
        if "private_key" in creds:
            if not creds.get("client_email"):
                raise ValueError("service_account credentials lack client_email")
            try:
                key = serialization.load_pem_private_key(
                    str(creds["private_key"]).encode(), password=None
                )
            except (ValueError, TypeError) as exc:
                raise ValueError("service_account private_key is not a PEM private key") from exc
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("service_account private_key must be an RSA key")
            sa = _ServiceAccount(str(creds["client_email"]), key.public_key())
            with self._lock:
                self._accounts[sa.client_email] = sa
            return f"sa:{sa.client_email}"
        raise ValueError("credentials need refresh_token (authorized_user) or private_key")

    def count(self, principal: str) -> int:
        with self._lock:
            return self.counts.get(principal, 0)

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"TokenIssuer(users={len(self._users)}, service_accounts={len(self._accounts)}, "
                f"tokens={len(self._tokens)}, expires_in={self._expires_in})"
            )

    # -- lookups for the front --------------------------------------------------------------
    def principal_for_token(self, token: str) -> tuple[str, bool] | None:
        """(principal, still valid) for an access token this issuer made, else None.

        An expired token maps to ``("invalid", False)``.
        """
        with self._lock:
            found = self._tokens.get(_digest(token))
        if found is None:
            return None
        principal, expiry = found
        if self._clock() >= expiry:
            return "invalid", False
        return principal, True

    # -- the endpoint -----------------------------------------------------------------------
    def handle(self, path: str, body: bytes, method: str = "POST") -> TokenReply:
        """Answer one token request (``path`` without query)."""
        if method.upper() != "POST":
            return self._error(405, "invalid_request", "token endpoint needs POST")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(400, "invalid_request", "body is not UTF-8")
        if path.rstrip("/") == V3_PATH:
            return self._refresh_flow(text)
        if path.rstrip("/") == V4_PATH:
            return self._jwt_flow(text, path)
        return self._error(404, "invalid_request", "unknown token endpoint")

    def _error(self, status: int, error: str, description: str) -> TokenReply:
        with self._lock:
            self.rejected += 1
        return TokenReply(status, {"error": error, "error_description": description}, "invalid")

    def _issue(self, principal: str) -> TokenReply:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            expires_in = self._expires_in
            self._tokens[_digest(token)] = (principal, self._clock() + expires_in)
            self.counts[principal] = self.counts.get(principal, 0) + 1
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        return TokenReply(200, payload, principal)

    def _refresh_flow(self, text: str) -> TokenReply:
        fields = parse_refresh_body(text)
        if fields.get("grant_type", "") not in ("refresh_token",):
            return self._error(400, "unsupported_grant_type", "grant_type must be refresh_token")
        cid = fields.get("client_id", "")
        with self._lock:
            user = self._users.get(cid) or self._users.get(urllib.parse.unquote_plus(cid))
        if user is None:
            return self._error(401, "invalid_client", "unknown client_id")
        secret = fields.get("client_secret", "")
        refresh = fields.get("refresh_token", "")
        if not _matches_raw_or_unquoted(secret, user.secret_digest):
            return self._error(401, "invalid_client", "client secret does not match")
        if not _matches_raw_or_unquoted(refresh, user.refresh_digest):
            return self._error(400, "invalid_grant", "refresh token does not match")
        return self._issue(f"user:{user.client_id}")

    def _jwt_flow(self, text: str, path: str) -> TokenReply:
        form = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        if form.get("grant_type") != _JWT_GRANT:
            return self._error(400, "unsupported_grant_type", "grant_type must be jwt-bearer")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._error(400, "invalid_grant", "assertion is not a JWT")
        if header.get("alg") != "RS256":
            return self._error(400, "invalid_grant", "JWT alg must be RS256")
        iss = claims.get("iss")
        with self._lock:
            sa = self._accounts.get(iss) if isinstance(iss, str) else None
        if sa is None:
            return self._error(401, "invalid_client", "unknown service account (iss)")
        audiences = [host + path for host in TOKEN_HOSTS] + ["https://oauth2.googleapis.com/token"]
        try:
            verified = jwt.decode(
                assertion,
                key=sa.public_key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=sa.client_email,
                options={"require": ["exp", "iat", "aud", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            return self._error(400, "invalid_grant", "JWT has expired")
        except jwt.InvalidAudienceError:
            return self._error(400, "invalid_grant", "JWT aud is not the token URL")
        except jwt.PyJWTError as exc:
            return self._error(400, "invalid_grant", f"JWT rejected: {type(exc).__name__}")
        scopes = set(str(verified.get("scope", "")).split())
        if not scopes & _ACCEPTED_SCOPES:
            return self._error(400, "invalid_scope", "JWT scope does not allow storage access")
        if int(verified["exp"]) - int(verified["iat"]) > 3600 + 5:
            return self._error(400, "invalid_grant", "JWT lifetime exceeds one hour")
        return self._issue(f"sa:{sa.client_email}")


def make_test_credentials(kind: str) -> dict[str, str]:
    """Fresh, random credentials of ``kind`` ("authorized_user" or "service_account").

    Service accounts get a freshly generated 2048-bit RSA key. Nothing is written to disk.
    """
    tag = secrets.token_hex(6)
    if kind == "authorized_user":
        return {
            "type": "authorized_user",
            "client_id": f"{tag}.apps.googleusercontent.com",
            "client_secret": secrets.token_urlsafe(18),
            "refresh_token": "1//" + secrets.token_urlsafe(40),
        }
    if kind == "service_account":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "gcs-hook-test",
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"sa-{tag}@gcs-hook-test.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    raise ValueError(f"unknown credential kind {kind!r}: use authorized_user or service_account")
