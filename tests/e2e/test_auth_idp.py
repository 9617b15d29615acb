"""Tokens of an outside identity provider (Auth0, Keycloak, Supabase, Google): with JWT_PUBLIC_KEY_FILE,
JWT_ISSUER and JWT_AUDIENCE, RS256 and ES256 tokens signed by the provider's key (made here with
openssl) are taken (signature, iss, aud, exp, nbf), their sub an account made on first sight."""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from api import expect
from auth_util import PASSWORD, SECRET, b64, bearer, forge, login, new_email, register, unauthorized
from harness import Stack, test
from test_auth_modes import run_worker

ISSUER = "https://idp.example.com/"
AUDIENCE = "ai-chat-api"
INVALID = "Invalid authentication credentials"


def openssl(*args, stdin=None):
    done = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def key_pair(directory, kind):
    """(private key path, public key path) of a new RSA 2048 or EC P-256 key."""
    private, public = directory / f"{kind}.pem", directory / f"{kind}.pub"
    opts = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if kind == "rsa" else \
        ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl("genpkey", *opts, "-out", str(private))
    openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
    return private, public


def der_to_raw(der):
    """An ECDSA signature as DER (openssl's) to JWS's r || s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        value = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += value.rjust(32, b"\0")
        i += 2 + n
    return out


def sign(private, claims, alg="RS256", header=None):
    head = header or {"alg": alg, "typ": "JWT", "kid": "test"}
    signing = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
    sig = openssl("dgst", "-sha256", "-sign", str(private), stdin=signing.encode())
    if alg == "ES256":
        sig = der_to_raw(sig)
    return signing + "." + b64(sig)


def idp_claims(sub, **extra):
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, **extra}


def idp_env(public):
    return {"AUTH": "token", "JWT_SECRET": SECRET, "JWT_PUBLIC_KEY_FILE": str(public), "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE, "WORKER_PROCESSES": "1"}


@test
def rs256_tokens_of_the_provider_are_accounts():
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-idp-"))
    try:
        private, public = key_pair(tmp, "rsa")
        other, _ = key_pair(tmp, "ec")
        with Stack(env=idp_env(public)) as s:
            token = sign(private, idp_claims("auth0|123", email="Carol@Example.com"))
            _, me = expect(s, "GET", "/auth/me", 200, headers=bearer(token))
            assert me["email"] == "carol@example.com" and me["role"] == "user", me
            assert s.sql("SELECT subject, password_hash FROM users WHERE id = ?", (me["id"],)) == \
                [(f"{ISSUER} auth0|123", None)]
            # the same subject is the same account; an aud list holding ours is fine
            again = sign(private, idp_claims("auth0|123", aud=["other-api", AUDIENCE]))
            expect(s, "GET", "/auth/me", 200, me, headers=bearer(again))
            _, chat = expect(s, "POST", "/chats", 201, json={"title": "idp"}, headers=bearer(token))
            assert chat["user_id"] == me["id"], chat
            # refused: another issuer, another audience, expired, not yet valid, no sub, another key,
            # and the public key used as an HMAC secret (the algorithm confusion)
            now = int(time.time())
            pem = public.read_text()
            for bad in (sign(private, idp_claims("auth0|123", iss="https://evil.example.com/")),
                        sign(private, idp_claims("auth0|123", aud="another-api")),
                        sign(private, idp_claims("auth0|123", aud=["a", "b"])),
                        sign(private, idp_claims("auth0|123", exp=now - 5)),
                        sign(private, idp_claims("auth0|123", nbf=now + 300)),
                        sign(private, {k: v for k, v in idp_claims("x").items() if k != "sub"}),
                        sign(private, {k: v for k, v in idp_claims("x").items() if k != "exp"}),
                        sign(other, idp_claims("auth0|123"), alg="ES256"),
                        sign(private, idp_claims("auth0|123"), header={"alg": "RS512", "typ": "JWT"}),
                        forge(idp_claims("auth0|123"), secret=pem),
                        forge(idp_claims("auth0|123"), alg="none")):
                unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(bad))
            # another user of the provider with the email of a password account is not that account
            user, email = register(s, "dave@example.com")
            theirs = sign(private, idp_claims("google-oauth2|dave", email=email))
            _, idp_user = expect(s, "GET", "/auth/me", 200, headers=bearer(theirs))
            assert idp_user["id"] != user["id"], idp_user
            expect(s, "GET", f"/chats/{chat['id']}", 404, headers=bearer(theirs))
            # our own tokens still work
            expect(s, "GET", "/auth/me", 200, user, headers=bearer(login(s, email)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def es256_tokens_and_the_settings():
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-idp-"))
    try:
        private, public = key_pair(tmp, "ec")
        rsa, _ = key_pair(tmp, "rsa")
        with Stack(env=idp_env(public)) as s:
            token = sign(private, idp_claims("kc-user-1"), alg="ES256")
            _, me = expect(s, "GET", "/auth/me", 200, headers=bearer(token))
            assert me["email"] == f"{ISSUER} kc-user-1", me   # no email claim: the subject stands in
            unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(sign(rsa, idp_claims("kc-user-1"))))
        env = {"AUTH": "token", "JWT_SECRET": SECRET, "JWT_PUBLIC_KEY_FILE": str(public)}
        status, out = run_worker(env, "--check-config")
        assert status == 2 and "JWT_ISSUER" in out, out
        status, out = run_worker({**env, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE,
                                  "JWT_PUBLIC_KEY_FILE": str(tmp / "missing.pem")}, "--check-config")
        assert status == 2 and "JWT_PUBLIC_KEY_FILE" in out, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
