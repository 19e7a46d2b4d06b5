"""Credential parsing and validation, and a holder that never shows the secret.

Accepted input (r1.12 ``ConfigureGcsHook``): a JSON string or a ``dict`` describing
``authorized_user`` credentials (has ``refresh_token``) or ``service_account`` credentials
(has ``private_key``); ``refresh_token`` wins when both are present, as in TensorFlow.

Invariants:

- Every rejection is a ``ValueError`` whose message names the problem (and field NAMES), never a
  field value, the JSON text, or a JSON decoder message that could quote it. Exceptions are raised
  ``from None`` so no chained exception carries the text either.
- r1.12's messages are kept for r1.12's cases; stricter checks are added: the JSON must be an
  object, and the fields TensorFlow's OAuth client reads must be non-empty strings
  (authorized_user: client_id, client_secret, refresh_token; service_account: private_key,
  private_key_id, client_id, client_email; private_key must be PEM).
- :class:`Credentials` keeps the JSON text private; its ``repr``/``str`` show only the kind and
  the non-secret identity (client_email or client_id). The text leaves it only through
  :meth:`Credentials.secret_json`, which the hook feeds to the credentials op.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["Credentials", "parse_credentials", "load_credentials_file", "default_adc_paths"]

AUTHORIZED_USER = "authorized_user"
SERVICE_ACCOUNT = "service_account"
REQUIRED_FIELDS = {
    AUTHORIZED_USER: ("client_id", "client_secret", "refresh_token"),
    SERVICE_ACCOUNT: ("private_key", "private_key_id", "client_id", "client_email"),
}
NEITHER_FIELD = 'credentials has neither a "refresh_token" nor a "private_key" field.'


class Credentials:
    """Validated credentials. ``repr`` shows no secret; the JSON text is available only via
    :meth:`secret_json`."""

    __slots__ = ("_kind", "_identity", "_json")

    def __init__(self, kind: str, identity: str, json_text: str) -> None:
        self._kind = kind
        self._identity = identity
        self._json = json_text

    @property
    def kind(self) -> str:
        """``"authorized_user"`` or ``"service_account"``."""
        return self._kind

    @property
    def identity(self) -> str:
        """The non-secret principal: client_email (service account) or client_id (user)."""
        return self._identity

    def secret_json(self) -> str:
        """The credentials JSON text. Feed it to an op; never log or persist it."""
        return self._json

    def __repr__(self) -> str:
        return f"Credentials(kind={self._kind!r}, identity={self._identity!r}, secret=<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # pickling would copy the secret somewhere unknown
        raise TypeError("Credentials cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and self._json == other._json

    def __hash__(self) -> int:
        return hash((self._kind, self._identity))


def _check_fields(data: Mapping[str, Any]) -> tuple[str, str]:
    if "refresh_token" in data:
        kind = AUTHORIZED_USER
    elif "private_key" in data:
        kind = SERVICE_ACCOUNT
    else:
        raise ValueError(NEITHER_FIELD)
    missing = [f for f in REQUIRED_FIELDS[kind] if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        raise ValueError(
            f"{kind} credentials need non-empty string fields {', '.join(REQUIRED_FIELDS[kind])}; "
            f"missing or not a non-empty string: {', '.join(missing)}"
        )
    if kind == SERVICE_ACCOUNT and "-----BEGIN" not in data["private_key"]:
        raise ValueError("service_account credentials: private_key is not a PEM-encoded key")
    identity = data["client_email"] if kind == SERVICE_ACCOUNT else data["client_id"]
    return kind, identity


def parse_credentials(credentials: Any) -> Credentials | None:
    """Validate ``credentials`` (``None``, a JSON string, a dict, or :class:`Credentials`).

    Returns ``None`` for ``None``; raises ``ValueError`` (no secret in the message) otherwise.
    """
    if credentials is None or isinstance(credentials, Credentials):
        return credentials
    if isinstance(credentials, str):
        try:
            data = json.loads(credentials)
        except ValueError as exc:
            # JSONDecodeError carries the whole document in .doc: report only the position.
            where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
            raise ValueError(f"credentials was not a well formed JSON string{where}.") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"credentials must be a JSON object, not a JSON {type(data).__name__}."
            )
        kind, identity = _check_fields(data)
        return Credentials(kind, identity, credentials)
    if isinstance(credentials, Mapping):
        if not all(isinstance(k, str) for k in credentials):
            raise ValueError("credentials dict keys must be strings.")
        kind, identity = _check_fields(credentials)
        try:
            text = json.dumps(dict(credentials))
        except (TypeError, ValueError):
            raise ValueError("credentials dict is not JSON-serialisable.") from None
        return Credentials(kind, identity, text)
    raise ValueError(
        f"credentials is of an unknown type ({type(credentials).__name__}); "
        "pass a JSON string or a dict."
    )


def default_adc_paths() -> list[str]:
    """Where application-default credentials are looked for, in order: $GOOGLE_APPLICATION_CREDENTIALS,
    Colab's /content/adc.json (r1.12), gcloud's well-known file."""
    paths = []
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if env:
        paths.append(env)
    paths.append("/content/adc.json")
    config = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "gcloud"
    )
    paths.append(os.path.join(config, "application_default_credentials.json"))
    return paths


def load_credentials_file(path: str | os.PathLike | None = None) -> Credentials:
    """Read and validate a credentials JSON file (``None`` = first existing of
    :func:`default_adc_paths`). ``FileNotFoundError`` if there is none; ``ValueError`` if bad."""
    if path is None:
        candidates = default_adc_paths()
        existing = [p for p in candidates if os.path.isfile(p)]
        if not existing:
            raise FileNotFoundError(
                "No application-default credentials file found; looked at: " + ", ".join(candidates)
            )
        path = existing[0]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    creds = parse_credentials(text)
    assert creds is not None
    return creds
