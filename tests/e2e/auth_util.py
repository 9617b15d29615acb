"""Helpers of the account tests (test_auth*.py): a stack in AUTH=token, accounts, tokens (and forged ones)."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

from api import expect
from harness import SETTINGS, WORKER
from provider import shared

SECRET = "e2e-secret-" + "0123456789abcdef" * 3          # >= 32 bytes
PASSWORD = "correct horse battery"
# Every test's client is 127.0.0.1: the address limit is test_auth_limits.py's.
TOKEN_ENV = {"AUTH": "token", "JWT_SECRET": SECRET, "LOGIN_MAX_FAILURES_PER_ADDR": "0"}


def token_stack():
    """(the shared provider, the shared stack in AUTH=token with SECRET)."""
    return shared("auth", **TOKEN_ENV)


def new_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def register(s, email=None, password=PASSWORD):
    """Registers an account; returns (its User, its email)."""
    email = email or new_email()
    _, user = expect(s, "POST", "/auth/register", 201, json={"email": email, "password": password})
    return user, email


def login(s, email, password=PASSWORD):
    _, data = expect(s, "POST", "/auth/login", 200, json={"email": email, "password": password})
    assert set(data) == {"access_token", "token_type"} and data["token_type"] == "bearer", data
    return data["access_token"]


def account(s, prefix="user"):
    """A new account: (User, email, token)."""
    user, email = register(s, new_email(prefix))
    return user, email, login(s, email)


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(claims, secret=SECRET, alg="HS256", header=None):
    """A JWT of these claims, signed as alg says (none: no signature)."""
    head = header or {"alg": alg, "typ": "JWT"}
    signing = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
    if alg == "none":
        return signing + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(), digest).digest())


def claims_for(user_id, ver=0, **extra):
    now = int(time.time())
    return {"sub": user_id, "ver": ver, "iat": now, "exp": now + 600, **extra}


def cli(stack, *args, stdin=""):
    """ai-chat-fcgi ARGS with the stack's database; returns (exit status, output)."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["DATABASE_URL"] = stack.database_url
    done = subprocess.run([str(WORKER), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=stack.tmp)
    return done.returncode, done.stdout + done.stderr


def unauthorized(s, method, path, detail, headers=None, body=None):
    """Asserts a 401 {"detail": detail} with WWW-Authenticate: Bearer."""
    kwargs = {} if body is None else {"json": body}
    resp = s.request(method, path, headers=headers, **kwargs)
    what = f"{method} {path} with {headers}"
    assert resp.status == 401, f"{what}: {resp.describe()}"
    assert resp.headers.get("www-authenticate") == "Bearer", f"{what}: {resp.headers}"
    if method != "HEAD":
        assert resp.data() == {"detail": detail}, f"{what}: {resp.describe()}"
