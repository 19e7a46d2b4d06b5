"""Credential parsing: r1.12's accepted forms and messages, stricter checks, no secret leaks."""

from __future__ import annotations

import json
import pickle

import pytest

from emulator.fakegcs.oauth import make_test_credentials
from gcs_hook.credentials import (
    NEITHER_FIELD,
    Credentials,
    default_adc_paths,
    load_credentials_file,
    parse_credentials,
)

KINDS = ("authorized_user", "service_account")


def secrets_of(creds: dict) -> list[str]:
    out = [creds[k] for k in ("client_secret", "refresh_token") if k in creds]
    if "private_key" in creds:
        body = creds["private_key"].splitlines()
        out += [line for line in body if line and "-----" not in line][:5]
        out.append(creds["private_key_id"])
    return out


def assert_no_secret(text: str, creds: dict) -> None:
    for s in secrets_of(creds):
        assert s not in text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["str", "dict"])
def test_accepts_json_string_and_dict(kind, form):
    creds = make_test_credentials(kind)
    parsed = parse_credentials(json.dumps(creds) if form == "str" else creds)
    assert isinstance(parsed, Credentials)
    assert parsed.kind == kind
    assert json.loads(parsed.secret_json()) == creds
    expected_identity = creds["client_email"] if kind == "service_account" else creds["client_id"]
    assert parsed.identity == expected_identity
    assert parse_credentials(parsed) is parsed
    assert parse_credentials(None) is None


@pytest.mark.parametrize("kind", KINDS)
def test_repr_str_and_pickle_hide_the_secret(kind):
    creds = make_test_credentials(kind)
    parsed = parse_credentials(creds)
    assert "<redacted>" in repr(parsed)
    assert_no_secret(repr(parsed), creds)
    assert_no_secret(str(parsed), creds)
    assert_no_secret(f"{parsed!r} {parsed}", creds)
    with pytest.raises(TypeError):
        pickle.dumps(parsed)


def test_refresh_token_wins_when_both_present():
    user = make_test_credentials("authorized_user")
    sa = make_test_credentials("service_account")
    both = {**sa, **user}
    assert parse_credentials(both).kind == "authorized_user"


def _bad_inputs():
    user = make_test_credentials("authorized_user")
    sa = make_test_credentials("service_account")
    text = json.dumps(user)
    return [
        ("malformed JSON", text[:-5], "credentials was not a well formed JSON string", user),
        ("trailing garbage", text + "x", "credentials was not a well formed JSON string", user),
        (
            "JSON list",
            json.dumps([user]),
            "credentials must be a JSON object, not a JSON list",
            user,
        ),
        (
            "JSON string",
            json.dumps(text),
            "credentials must be a JSON object, not a JSON str",
            user,
        ),
        ("bytes", text.encode(), "credentials is of an unknown type (bytes)", user),
        ("list", [user], "credentials is of an unknown type (list)", user),
        ("int", 7, "credentials is of an unknown type (int)", user),
        ("neither field (dict)", {"client_id": "x"}, NEITHER_FIELD, user),
        ("neither field (str)", json.dumps({"type": "authorized_user"}), NEITHER_FIELD, user),
        (
            "user without client_secret",
            {k: v for k, v in user.items() if k != "client_secret"},
            "missing or not a non-empty string: client_secret",
            user,
        ),
        (
            "user with empty refresh_token",
            {**user, "refresh_token": ""},
            "missing or not a non-empty string: refresh_token",
            user,
        ),
        (
            "sa without client_email",
            {k: v for k, v in sa.items() if k != "client_email"},
            "missing or not a non-empty string: client_email",
            sa,
        ),
        (
            "sa with non-string private_key_id",
            {**sa, "private_key_id": 5},
            "missing or not a non-empty string: private_key_id",
            sa,
        ),
        (
            "sa with a non-PEM key",
            {**sa, "private_key": sa["private_key"].split("\n", 1)[1]},
            "private_key is not a PEM-encoded key",
            sa,
        ),
        ("dict with non-string key", {**user, 3: "x"}, "keys must be strings", user),
        ("dict not serialisable", {**user, "x": object()}, "not JSON-serialisable", user),
    ]


@pytest.mark.parametrize(
    ("value", "message", "creds"),
    [pytest.param(v, m, c, id=name) for name, v, m, c in _bad_inputs()],
)
def test_bad_credentials_raise_value_error_without_secret(value, message, creds):
    with pytest.raises(ValueError) as info:
        parse_credentials(value)
    assert message in str(info.value)
    # Neither the message, the args, nor a chained exception may carry the secret.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    assert_no_secret(repr(info.value.args), creds)


def test_load_credentials_file_explicit_and_env(tmp_path, monkeypatch):
    creds = make_test_credentials("service_account")
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    assert load_credentials_file(path).identity == creds["client_email"]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    assert default_adc_paths()[0] == str(path)
    assert load_credentials_file().identity == creds["client_email"]


def test_load_credentials_file_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    if any(p == "/content/adc.json" for p in default_adc_paths()):
        import os

        if os.path.exists("/content/adc.json"):
            pytest.skip("/content/adc.json exists on this machine")
    with pytest.raises(FileNotFoundError) as info:
        load_credentials_file()
    assert "nope.json" in str(info.value)


def test_load_credentials_file_malformed(tmp_path):
    creds = make_test_credentials("authorized_user")
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(creds)[:-3])
    with pytest.raises(ValueError) as info:
        load_credentials_file(path)
    assert_no_secret(str(info.value), creds)
