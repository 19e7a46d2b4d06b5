"""The fake OAuth token endpoint, alone, through the front, and with real TensorFlow."""

from __future__ import annotations

import base64
import http.client
import json
import os
import tempfile
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from emulator.fakegcs.oauth import TokenIssuer, make_test_credentials, parse_refresh_body

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
V4_AUD = "https://www.googleapis.com/oauth2/v4/token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def tf_style_jwt(creds: dict, *, aud=V4_AUD, scope=SCOPE, iat=None, exp=None, alg="RS256"):
    """A JWT the way TF builds it: styled (pretty) JSON, base64url without padding, RS256."""
    now = int(time.time()) if iat is None else iat
    header = {"alg": alg, "kid": creds["private_key_id"], "typ": "JWT"}
    claims = {
        "aud": aud,
        "exp": now + 3600 if exp is None else exp,
        "iat": now,
        "iss": creds["client_email"],
        "scope": scope,
    }
    signing_input = (
        b64url(json.dumps(header, indent=3).encode())
        + "."
        + b64url(json.dumps(claims, indent=3).encode())
    )
    key = serialization.load_pem_private_key(creds["private_key"].encode(), password=None)
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def jwt_body(assertion: str) -> bytes:
    return (
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + assertion
    ).encode()


def refresh_body(creds: dict, **override: str) -> bytes:
    f = {k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}
    f.update(override)
    return (
        f"client_id={f['client_id']}&client_secret={f['client_secret']}"
        f"&refresh_token={f['refresh_token']}&grant_type=refresh_token"
    ).encode()


@pytest.fixture(scope="module")
def sa_creds():
    return make_test_credentials("service_account")


# -- TokenIssuer alone -------------------------------------------------------------------------
def test_refresh_flow_unencoded_body_like_tf():
    issuer = TokenIssuer(expires_in=100)
    creds = make_test_credentials("authorized_user")
    creds["client_secret"] = "se/cr+et=x"  # characters TF would not encode
    principal = issuer.register(creds)
    reply = issuer.handle("/oauth2/v3/token", refresh_body(creds))
    assert reply.status == 200 and reply.principal == principal
    assert reply.payload["token_type"] == "Bearer" and reply.payload["expires_in"] == 100
    assert issuer.principal_for_token(reply.payload["access_token"]) == (principal, True)
    assert issuer.count(principal) == 1


def test_refresh_flow_url_encoded_body_also_accepted():
    issuer = TokenIssuer()
    creds = make_test_credentials("authorized_user")
    issuer.register(creds)
    import urllib.parse

    body = urllib.parse.urlencode(
        {**{k: creds[k] for k in ("client_id", "client_secret", "refresh_token")},
         "grant_type": "refresh_token"}
    ).encode()  # fmt: skip
    assert issuer.handle("/oauth2/v3/token", body).status == 200


@pytest.mark.parametrize(
    "override,status,error",
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"refresh_token": "wrong"}, 400, "invalid_grant"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
    ],
)
def test_refresh_flow_rejections(override, status, error):
    issuer = TokenIssuer()
    creds = make_test_credentials("authorized_user")
    issuer.register(creds)
    reply = issuer.handle("/oauth2/v3/token", refresh_body(creds, **override))
    assert (reply.status, reply.payload["error"], reply.principal) == (status, error, "invalid")
    assert "access_token" not in reply.payload
    assert creds["client_secret"] not in json.dumps(reply.payload)
    assert issuer.rejected == 1


def test_parse_refresh_body_keeps_ampersand_free_values():
    body = "client_id=a.b&client_secret=x/y+z&refresh_token=1//r&grant_type=refresh_token"
    assert parse_refresh_body(body) == {
        "client_id": "a.b",
        "client_secret": "x/y+z",
        "refresh_token": "1//r",
        "grant_type": "refresh_token",
    }


def test_jwt_flow_accepts_tf_style_assertion(sa_creds):
    issuer = TokenIssuer()
    principal = issuer.register(sa_creds)
    assert principal == f"sa:{sa_creds['client_email']}"
    reply = issuer.handle("/oauth2/v4/token", jwt_body(tf_style_jwt(sa_creds)))
    assert reply.status == 200 and reply.principal == principal
    assert issuer.principal_for_token(reply.payload["access_token"]) == (principal, True)


@pytest.mark.parametrize(
    "kw,error",
    [
        ({"aud": "https://evil.example.com/token"}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/bigquery"}, "invalid_scope"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant"),
    ],
)
def test_jwt_flow_rejections(sa_creds, kw, error):
    issuer = TokenIssuer()
    issuer.register(sa_creds)
    reply = issuer.handle("/oauth2/v4/token", jwt_body(tf_style_jwt(sa_creds, **kw)))
    assert reply.status == 400 and reply.payload["error"] == error


def test_jwt_signed_with_another_key_is_rejected(sa_creds):
    issuer = TokenIssuer()
    issuer.register(sa_creds)
    impostor = make_test_credentials("service_account")
    impostor["client_email"] = sa_creds["client_email"]
    reply = issuer.handle("/oauth2/v4/token", jwt_body(tf_style_jwt(impostor)))
    assert reply.status == 400 and reply.principal == "invalid"
    garbage = issuer.handle("/oauth2/v4/token", jwt_body("not.a.jwt"))
    assert garbage.status == 400


def test_unregistered_service_account_rejected(sa_creds):
    reply = TokenIssuer().handle("/oauth2/v4/token", jwt_body(tf_style_jwt(sa_creds)))
    assert reply.status == 401 and reply.payload["error"] == "invalid_client"


def test_token_expiry_and_run_time_expires_in():
    now = [1000.0]
    issuer = TokenIssuer(expires_in=65, clock=lambda: now[0])
    creds = make_test_credentials("authorized_user")
    principal = issuer.register(creds)
    token = issuer.handle("/oauth2/v3/token", refresh_body(creds)).payload["access_token"]
    now[0] += 64
    assert issuer.principal_for_token(token) == (principal, True)
    now[0] += 1
    assert issuer.principal_for_token(token) == ("invalid", False)
    issuer.expires_in = 3600
    reply = issuer.handle("/oauth2/v3/token", refresh_body(creds))
    assert reply.payload["expires_in"] == 3600
    assert issuer.principal_for_token("never-issued") is None
    for bad in (0, -1, 1.5, True, "60"):
        with pytest.raises(ValueError):
            issuer.expires_in = bad


def test_register_rejects_bad_credentials_without_echoing_secrets():
    issuer = TokenIssuer()
    with pytest.raises(ValueError, match="lack client_secret"):
        issuer.register({"client_id": "x", "refresh_token": "rt-secret-value"})
    with pytest.raises(ValueError, match="not a PEM") as info:
        issuer.register({"client_email": "a@b", "private_key": "pk-secret-value"})
    assert "pk-secret-value" not in str(info.value)
    with pytest.raises(ValueError, match="refresh_token .* or private_key"):
        issuer.register({"type": "nothing"})
    with pytest.raises(ValueError, match="unknown credential kind"):
        make_test_credentials("api_key")


def test_repr_has_no_secrets(sa_creds):
    issuer = TokenIssuer()
    user = make_test_credentials("authorized_user")
    issuer.register(user)
    issuer.register(sa_creds)
    token = issuer.handle("/oauth2/v3/token", refresh_body(user)).payload["access_token"]
    text = repr(issuer) + str(vars(issuer))
    for secret in (user["client_secret"], user["refresh_token"], token, sa_creds["private_key"]):
        assert secret not in text


# -- through the front (Python client, TLS tunnel to www.googleapis.com) -----------------------
def test_front_token_endpoint_and_require_auth(gcs_emulator, gcs_bucket, gcs_ledger):
    gcs_emulator.backend.put_object(gcs_bucket, "o", b"secret data")
    front = gcs_emulator.front
    creds = make_test_credentials("authorized_user")
    principal = front.token_issuer.register(creds)
    mark = gcs_ledger.mark()
    conn = http.client.HTTPSConnection(
        "127.0.0.1", front.port, context=front.client_ssl_context(), timeout=30
    )
    conn.set_tunnel("www.googleapis.com", 443)
    conn.request("POST", "/oauth2/v3/token", body=refresh_body(creds))
    resp = conn.getresponse()
    token = json.loads(resp.read())["access_token"]
    front.require_auth = True
    path = f"/storage/v1/b/{gcs_bucket}/o/o?alt=media"
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r1 = conn.getresponse()
    body1 = r1.read()
    conn.request("GET", path)
    r2 = conn.getresponse()
    r2.read()
    conn.close()
    front.require_auth = False
    assert (r1.status, body1) == (200, b"secret data")
    assert r2.status == 401
    recs = gcs_ledger.since(mark)
    tok = [r for r in recs if r.kind == "token"]
    assert len(tok) == 1 and tok[0].principal == principal and tok[0].status == 200
    mine = [r for r in recs if r.bucket == gcs_bucket]
    assert [(r.principal, r.status) for r in mine] == [(principal, 200), ("anonymous", 401)]
    assert token not in repr(recs)


# -- real TensorFlow with real credential flows ------------------------------------------------
@pytest.mark.tf
@pytest.mark.parametrize("kind", ["authorized_user", "service_account"])
def test_tf_credentials_flow_and_refresh(gcs_emulator, gcs_bucket, gcs_ledger, kind):
    from emulator.replay.tf_worker import TfWorker

    gcs_emulator.backend.put_object(gcs_bucket, "a.bin", b"q" * 5000)
    creds = make_test_credentials(kind)
    issuer = gcs_emulator.token_issuer
    principal = issuer.register(creds)
    tmpdir = tempfile.mkdtemp(prefix="gcs-hook-creds-")
    path = os.path.join(tmpdir, "credentials.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    env = gcs_emulator.tf_env(test_token=None)
    env["GOOGLE_APPLICATION_CREDENTIALS"] = path
    gcs_emulator.front.require_auth = True
    issuer.expires_in = 62  # TF refreshes when within 60 s of expiry: 2+ s later
    try:
        with TfWorker(env) as worker:
            mark = gcs_ledger.mark()
            code = "result = tf.io.gfile.GFile(p, 'rb').read()"
            p = f"gs://{gcs_bucket}/a.bin"
            assert worker.run(code, p=p) == b"q" * 5000
            time.sleep(3)
            assert worker.run(code, p=p) == b"q" * 5000
    finally:
        issuer.expires_in = 3600
        gcs_emulator.front.require_auth = False
        os.unlink(path)
        os.rmdir(tmpdir)
    recs = gcs_ledger.since(mark)
    tokens = [r for r in recs if r.kind == "token"]
    expected_path = "/oauth2/v3/token" if kind == "authorized_user" else "/oauth2/v4/token"
    assert [(r.path, r.status, r.principal) for r in tokens] == [
        (expected_path, 200, principal)
    ] * 2
    storage = [r for r in recs if r.bucket == gcs_bucket]
    assert storage and all(r.principal == principal and r.status < 400 for r in storage)
    assert issuer.count(principal) == 2
