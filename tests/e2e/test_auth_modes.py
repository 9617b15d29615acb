"""AUTH's modes and settings: token refuses to start without JWT_SECRET (stack.sh, as make run, makes
one); none keeps the original API and says so in its start log; REGISTRATION=closed; bad values named."""

import os
import shutil
import subprocess
import tempfile

from api import create_chat, expect, new_user
from auth_util import PASSWORD, SECRET, TOKEN_ENV, new_email
from harness import SETTINGS, WORKER, Stack, test


def run_worker(env, *args):
    tmp = tempfile.mkdtemp(prefix="ai-chat-e2e-auth-")
    try:
        full = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        full.update({"DATABASE_URL": f"sqlite:///{tmp}/x.db", "FCGI_SOCKET": f"{tmp}/w.sock", **env})
        done = subprocess.run([str(WORKER), *args], env=full, cwd=tmp, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout + done.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def token_mode_needs_a_secret_of_32_bytes():
    for args in ((), ("--check-config",)):
        status, out = run_worker({}, *args)   # AUTH unset: token, the default
        assert status == 2 and "JWT_SECRET is not set" in out and "AUTH=none" in out, (args, status, out)
    status, out = run_worker({"AUTH": "token", "JWT_SECRET": "x" * 31}, "--check-config")
    assert status == 2 and "JWT_SECRET" in out and "32 bytes" in out and "x" * 31 not in out, out
    status, out = run_worker({"AUTH": "token", "JWT_SECRET": "x" * 32}, "--check-config")
    assert status == 0, out
    for name, value in (("AUTH", "basic"), ("REGISTRATION", "maybe"), ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
                        ("LOGIN_MAX_FAILURES_PER_EMAIL", "-1"), ("PASSWORD_HASH_MEMORY_KIB", "1024"),
                        ("PASSWORD_HASH_PASSES", "1"), ("PASSWORD_HASH_CONCURRENCY", "0")):
        status, out = run_worker({"AUTH": "none", name: value}, "--check-config")
        assert status == 2 and name in out, (name, value, status, out)


@test
def stack_makes_a_secret_when_none_is_set():
    # conf/stack.sh (make run) with the default AUTH and no JWT_SECRET: one is generated into RUN_DIR
    with Stack(env={"AUTH": None, "JWT_SECRET": None, "WORKER_PROCESSES": "1"}) as s:
        secret = (s.run_dir / "jwt_secret").read_text()
        assert len(secret) >= 32 and oct(os.stat(s.run_dir / "jwt_secret").st_mode & 0o777) == "0o600", secret
        expect(s, "GET", "/auth/config", 200, {"mode": "token", "registration": "open"})
        email = new_email()
        expect(s, "POST", "/auth/register", 201, json={"email": email, "password": PASSWORD})
        expect(s, "POST", "/auth/login", 200, json={"email": email, "password": PASSWORD})
        assert "AUTH=token" in s.log_tail(200) and secret not in s.log_tail(1000)


@test
def none_mode_is_the_original_api_and_says_so():
    with Stack(env={"AUTH": "none", "WORKER_PROCESSES": "1"}) as s:
        user = new_user()
        chat = create_chat(s, user, "as before")
        expect(s, "GET", f"/chats?user_id={user}", 200, {"chats": [chat], "total": 1})
        expect(s, "GET", "/auth/config", 200, {"mode": "none", "registration": "closed"})
        no_accounts = {"detail": "Not available: there are no accounts (AUTH=none)"}
        for method, path, body in (("POST", "/auth/register", {"email": new_email(), "password": PASSWORD}),
                                   ("POST", "/auth/login", {"email": new_email(), "password": PASSWORD}),
                                   ("GET", "/auth/me", None), ("POST", "/auth/logout", None),
                                   ("GET", "/admin/users", None)):
            expect(s, method, path, 404, no_accounts, **({} if body is None else {"json": body}))
        log = s.log_tail(200)
        assert "AUTH=none" in log and "trusted application server" in log, log


@test
def closed_registration_is_a_403():
    with Stack(env={**TOKEN_ENV, "REGISTRATION": "closed", "WORKER_PROCESSES": "1"}) as s:
        expect(s, "GET", "/auth/config", 200, {"mode": "token", "registration": "closed"})
        expect(s, "POST", "/auth/register", 403, {"detail": "Registration is closed"},
               json={"email": new_email(), "password": PASSWORD})
        assert s.sql("SELECT count(*) FROM users")[0][0] == 0
        assert SECRET not in s.log_tail(1000)
