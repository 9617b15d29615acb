"""Accounts (AUTH=token): register, login, the OAuth2 token form, me, logout; every protected route's
401s (no token, malformed, bad signature, another algorithm, alg none, expired, no sub, issued before
logout, a deleted user); the ownership battery; POST /chat without a chat; deleting an account."""

import time
import uuid
from urllib.parse import urlencode

from api import (UUID4_RE, chat_not_found, chat_path, db_chat, db_messages, expect, expect_422, missing,
                 too_short)
from auth_util import (PASSWORD, SECRET, account, bearer, claims_for, forge, login, new_email, register,
                       token_stack, unauthorized)
from harness import test
from provider import all_rows, tag

INVALID = "Invalid authentication credentials"


def send(s, token, message, chat_id=None, **fields):
    body = {"message": message, **fields}
    if chat_id is not None:
        body["chat_id"] = chat_id
    return s.json("POST", "/chat", json=body, headers=bearer(token))


# --------------------------------------------------------------------------------------------------
# register, login, token, me, logout


@test
def register_login_me_logout():
    _, s = token_stack()
    email = new_email("Alice")
    user, _ = register(s, f"  {email.upper()}  ")
    assert set(user) == {"id", "email", "role", "created_at"} and UUID4_RE.match(user["id"]), user
    assert user["email"] == email.lower() and user["role"] == "user", user
    # the same email, in another case and with spaces, is taken
    expect(s, "POST", "/auth/register", 409, {"detail": "Email already registered"},
           json={"email": email.upper(), "password": PASSWORD})
    token = login(s, email.upper())
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(token))
    # the OAuth2 password form, as Swagger UI's Authorize sends it
    form = urlencode({"grant_type": "password", "username": email, "password": PASSWORD, "scope": ""})
    _, data = expect(s, "POST", "/auth/token", 200, body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert data["token_type"] == "bearer"
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(data["access_token"]))
    # the scheme's case does not matter
    expect(s, "GET", "/auth/me", 200, user, headers={"Authorization": f"bearer {token}"})
    expect(s, "POST", "/auth/logout", 200, {"detail": "Logged out"}, headers=bearer(token))
    for old in (token, data["access_token"]):
        unauthorized(s, "GET", "/auth/me", "Session expired", headers=bearer(old))
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(login(s, email)))


@test
def register_validates_email_and_password():
    _, s = token_stack()
    bad_email = {"loc": ["body", "email"], "msg": "value is not a valid email address", "type": "value_error.email"}
    for email in ("no-at-sign", "a@b", "two@@example.com", "sp ace@example.com", "@example.com", "a@.com", "a\u0000b@example.com",
                  "x" * 250 + "@example.com"):
        expect_422(s, "POST", "/auth/register", [bad_email], json={"email": email, "password": PASSWORD})
    expect_422(s, "POST", "/auth/register", [too_short(8, "body", "password")],
               json={"email": new_email(), "password": "seven77"})
    expect_422(s, "POST", "/auth/register", [missing("body", "email"), missing("body", "password")], json={})
    # 8..1024 characters, counted as characters
    register(s, password="\u00e9" * 8)
    register(s, password="p" * 1024)
    _, data = expect(s, "POST", "/auth/register", 422, json={"email": new_email(), "password": "p" * 1025})
    assert data["detail"][0]["loc"] == ["body", "password"], data


@test
def login_failures_are_one_answer():
    _, s = token_stack()
    user, email = register(s)
    want = {"detail": "Invalid email or password"}
    expect(s, "POST", "/auth/login", 401, want, json={"email": email, "password": "wrong password"})
    expect(s, "POST", "/auth/login", 401, want, json={"email": new_email("nobody"), "password": PASSWORD})
    # the form's 401 says how to authenticate
    form = urlencode({"username": email, "password": "wrong password"})
    resp = s.request("POST", "/auth/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 401 and resp.data() == want and resp.headers.get("www-authenticate") == "Bearer", \
        resp.describe()
    # an unknown email takes about as long as a wrong password (checked against a dummy hash)
    def took(mail):
        started = time.monotonic()
        s.request("POST", "/auth/login", json={"email": mail, "password": "wrong password"})
        return time.monotonic() - started
    _, timed = register(s)
    # the fastest of four each (a fifth failure would be the email's last before its limit): a busy
    # machine only ever adds time, so the least is the work itself
    known = min(took(timed) for _ in range(4))
    unknown = min(took(new_email("nobody")) for _ in range(4))
    assert unknown > known * 0.5, f"unknown email answered in {unknown:.3f} s, a wrong password in {known:.3f} s"
    # the form needs its fields, and a JSON login body is not a form
    expect_422(s, "POST", "/auth/token", [missing("body", "username"), missing("body", "password")], body="",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    expect(s, "POST", "/auth/token", 415, json={"username": email, "password": PASSWORD})
    login(s, email)


# --------------------------------------------------------------------------------------------------
# every protected route, and its 401s


def protected_routes(chat_id, message_id, user_id):
    c = f"/chats/{chat_id}"
    return [
        ("GET", "/chats", None), ("POST", "/chats", {"title": "x"}), ("GET", c, None), ("HEAD", c, None),
        ("PATCH", c, {"title": "stolen"}), ("DELETE", c, None), ("GET", c + "/messages", None),
        ("POST", c + "/regenerate", {}), ("PUT", c + "/active", {"message_id": message_id}),
        ("POST", f"{c}/messages/{message_id}/edit", {"content": "stolen"}),
        ("POST", "/chat", {"chat_id": chat_id, "message": "hello"}), ("POST", "/chat", {"message": "hello"}),
        ("GET", "/auth/me", None), ("DELETE", "/auth/me", {"password": PASSWORD}), ("POST", "/auth/logout", None),
        ("GET", "/admin/users", None), ("POST", "/admin/users", {"email": new_email(), "password": PASSWORD}),
        ("PATCH", f"/admin/users/{user_id}/role", {"role": "admin"}), ("DELETE", f"/admin/users/{user_id}", None),
        ("GET", f"/admin/users/{user_id}/chats", None), ("GET", f"/admin/chats/{chat_id}/messages", None),
        # personal API keys (test_api_keys.py)
        ("GET", "/auth/keys", None), ("POST", "/auth/keys", {"name": "x"}), ("DELETE", f"/auth/keys/{chat_id}", None),
        ("GET", f"/admin/users/{user_id}/keys", None), ("DELETE", f"/admin/users/{user_id}/keys/{chat_id}", None),
    ]


@test
def every_protected_route_needs_a_valid_token():
    p, s = token_stack()
    owner, _, owner_token = account(s, "owner")
    status, _, data = send(s, owner_token, f"mine {tag()}")
    assert status == 200, data
    chat_id = data["chat_id"]
    before_chat, before_rows = db_chat(s, chat_id), all_rows(s, chat_id)
    message_id = before_rows[0]["id"]

    gone, gone_email, gone_token = account(s, "gone")
    assert s.request("DELETE", "/auth/me", headers=bearer(gone_token), json={"password": PASSWORD}).status == 204
    left, left_email, left_token = account(s, "left")
    expect(s, "POST", "/auth/logout", 200, headers=bearer(left_token))
    now = int(time.time())
    bad = [
        (None, "Not authenticated"),
        ({"Authorization": ""}, "Not authenticated"),
        ({"Authorization": "Bearer"}, "Not authenticated"),
        ({"Authorization": f"Basic {owner_token}"}, "Not authenticated"),
        (bearer("not-a-token"), INVALID),
        (bearer("a.b.c"), INVALID),
        (bearer(owner_token + "x"), INVALID),
        (bearer(forge(claims_for(owner["id"]), secret="another secret of at least 32 bytes!!")), INVALID),
        (bearer(forge(claims_for(owner["id"]), alg="none")), INVALID),
        (bearer(forge(claims_for(owner["id"]), alg="HS512")), INVALID),
        (bearer(forge(claims_for(owner["id"]), header={"alg": "none", "typ": "JWT"})), INVALID),
        (bearer(forge(claims_for(owner["id"], exp=now - 5))), INVALID),
        (bearer(forge({"ver": 0, "iat": now, "exp": now + 600})), INVALID),
        (bearer(forge({"sub": owner["id"], "iat": now, "exp": now + 600})), INVALID),
        (bearer(left_token), "Session expired"),
        (bearer(gone_token), "User not found"),
        (bearer(forge(claims_for(str(uuid.uuid4())))), "User not found"),
    ]
    for method, path, body in protected_routes(chat_id, message_id, owner["id"]):
        for headers, detail in bad:
            unauthorized(s, method, path, detail, headers=headers, body=body)
    # nothing changed, and the model was never asked
    assert db_chat(s, chat_id) == before_chat and all_rows(s, chat_id) == before_rows
    assert not p.requests_for("hello") or all("stolen" not in str(r) for r in p.requests())
    # a forged token with the right secret is the user's (the signature is all that is trusted)
    expect(s, "GET", "/auth/me", 200, owner, headers=bearer(forge(claims_for(owner["id"]))))


@test
def open_routes_need_no_token():
    _, s = token_stack()
    for path in ("/", "/health", "/openapi.json", "/models", "/auth/config"):
        status, _, _ = s.json("GET", path)
        assert status == 200, path
    expect(s, "GET", "/auth/config", 200, {"mode": "token", "registration": "open"})
    # the original's unauthenticated bootstrap route does not exist
    expect(s, "POST", "/admin/bootstrap/users/a@example.com/make-admin", 404, {"detail": "Not Found"})


# --------------------------------------------------------------------------------------------------
# ownership: user B, with its own valid token, on every route that names A's chat


@test
def another_users_chat_is_404_on_every_route_and_unchanged():
    p, s = token_stack()
    a, _, a_token = account(s, "a")
    b, _, b_token = account(s, "b")
    status, _, first = send(s, a_token, f"secret {tag()}")
    assert status == 200, first
    chat_id = first["chat_id"]
    status, _, second = send(s, a_token, f"more {tag()}", chat_id=chat_id)
    assert status == 200, second
    stored, rows, messages = db_chat(s, chat_id), all_rows(s, chat_id), db_messages(s, chat_id)
    assert stored["user_id"] == a["id"], stored
    c = chat_path(chat_id)
    mark = tag()
    routes = [("GET", c, None), ("PATCH", c, {"title": "stolen"}), ("DELETE", c, None),
              ("GET", c + "/messages", None), ("GET", c + "/messages?newest=true", None),
              ("POST", c + "/regenerate", {}), ("PUT", c + "/active", {"message_id": first["message_id"]}),
              ("POST", f"{c}/messages/{first['user_message_id']}/edit", {"content": f"stolen {mark}"}),
              ("POST", "/chat", {"chat_id": chat_id, "message": f"stolen {mark}"})]
    for method, path, body in routes:
        kwargs = {} if body is None else {"json": body}
        expect(s, method, path, 404, chat_not_found(chat_id), headers=bearer(b_token), **kwargs)
        # naming A as the user changes nothing: user_id is ignored with accounts
        sep = "&" if "?" in path else "?"
        expect(s, method, f"{path}{sep}user_id={a['id']}", 404, chat_not_found(chat_id), headers=bearer(b_token),
               **({} if body is None else {"json": dict(body, user_id=a["id"])}))
    resp = s.request("HEAD", c, headers=bearer(b_token))
    assert resp.status == 404 and resp.body == b"", resp.describe()
    assert db_chat(s, chat_id) == stored, "B changed A's chat"
    assert all_rows(s, chat_id) == rows and db_messages(s, chat_id) == messages, "B changed A's messages"
    assert not p.requests_for(mark), "B's message reached the model"
    # B's lists hold none of A's chats, whatever user_id B names
    _, listing = expect(s, "GET", f"/chats?user_id={a['id']}", 200, headers=bearer(b_token))
    assert listing == {"chats": [], "total": 0}, listing
    # a chat B makes naming A is B's
    _, made = expect(s, "POST", "/chats", 201, json={"user_id": a["id"], "title": "mine"}, headers=bearer(b_token))
    assert made["user_id"] == b["id"] and db_chat(s, made["id"])["user_id"] == b["id"], made
    # A still has it all
    _, page = expect(s, "GET", chat_path(chat_id, "/messages"), 200, headers=bearer(a_token))
    assert [m["role"] for m in page] == ["user", "assistant", "user", "assistant"], page


@test
def post_chat_without_a_chat_makes_one():
    p, s = token_stack()
    user, _, token = account(s, "newchat")
    status, _, data = send(s, token, f"start {tag()}")
    assert status == 200 and UUID4_RE.match(data["chat_id"]), data
    chat = db_chat(s, data["chat_id"])
    assert chat["user_id"] == user["id"] and chat["title"] is None and chat["message_count"] == 2, chat
    _, listing = expect(s, "GET", "/chats", 200, headers=bearer(token))
    assert [c["id"] for c in listing["chats"]] == [data["chat_id"]], listing
    # a chat_id that is not the user's stays a 404 (no chat is made there)
    missing_id = str(uuid.uuid4())
    status, _, body = send(s, token, "typo", chat_id=missing_id)
    assert status == 404 and body == chat_not_found(missing_id), body
    _, listing = expect(s, "GET", "/chats", 200, headers=bearer(token))
    assert listing["total"] == 1, listing


# --------------------------------------------------------------------------------------------------
# deleting an account


@test
def delete_me_takes_the_account_and_its_chats():
    p, s = token_stack()
    user, email, token = account(s, "leaving")
    other, _, other_token = account(s, "staying")
    status, _, mine = send(s, token, f"bye {tag()}", )
    assert status == 200, mine
    status, _, theirs = send(s, other_token, f"stay {tag()}")
    assert status == 200, theirs
    expect(s, "DELETE", "/auth/me", 403, {"detail": "Invalid password"}, json={"password": "not it at all"},
           headers=bearer(token))
    expect_422(s, "DELETE", "/auth/me", [missing("body")], headers=bearer(token))
    assert db_chat(s, mine["chat_id"]) is not None
    # its counters, as the per-user limits keep them (whatever this stack's limits are)
    s.sql("INSERT INTO user_limits (user_id, rate_tat, token_day, tokens) VALUES (?, 1, 1, 1) "
          "ON CONFLICT (user_id) DO NOTHING", (user["id"],))
    s.sql("INSERT INTO generation_slots (user_id, until) VALUES (?, 1)", (user["id"],))
    s.sql("INSERT INTO user_limits (user_id, rate_tat, token_day, tokens) VALUES (?, 1, 1, 1) "
          "ON CONFLICT (user_id) DO NOTHING", (other["id"],))
    resp = s.request("DELETE", "/auth/me", json={"password": PASSWORD}, headers=bearer(token))
    assert resp.status == 204 and resp.body == b"", resp.describe()
    assert db_chat(s, mine["chat_id"]) is None and db_messages(s, mine["chat_id"]) == []
    assert s.sql("SELECT count(*) FROM users WHERE id = ?", (user["id"],))[0][0] == 0
    assert s.sql("SELECT count(*) FROM idempotency_keys WHERE user_id = ?", (user["id"],))[0][0] == 0
    # and its counters (the per-user limits', in the same transaction)
    for table in ("user_limits", "generation_slots"):
        assert s.sql(f"SELECT count(*) FROM {table} WHERE user_id = ?", (user["id"],))[0][0] == 0, table
    assert s.sql("SELECT count(*) FROM user_limits WHERE user_id = ?", (other["id"],))[0][0] == 1
    unauthorized(s, "GET", "/chats", "User not found", headers=bearer(token))
    expect(s, "POST", "/auth/login", 401, json={"email": email, "password": PASSWORD})
    # the other account is untouched
    assert db_chat(s, theirs["chat_id"])["user_id"] == other["id"]
    expect(s, "GET", "/auth/me", 200, other, headers=bearer(other_token))
    # the email can be registered again, as a new account
    again, _ = register(s, email)
    assert again["id"] != user["id"]


@test
def the_database_holds_no_password():
    _, s = token_stack()
    password = f"plain-{uuid.uuid4().hex}"
    user, email = register(s, password=password)
    login(s, email, password)
    hashes = s.sql("SELECT password_hash FROM users WHERE id = ?", (user["id"],))
    assert hashes[0][0].startswith("$argon2id$v=19$m=19456,t=2,p=1$"), hashes
    if s.database_url.startswith("sqlite"):
        raw = b""
        for suffix in ("", "-wal", "-shm"):
            path = f"{s.db_path}{suffix}"
            try:
                with open(path, "rb") as f:
                    raw += f.read()
            except FileNotFoundError:
                pass
        assert raw and password.encode() not in raw, "the password is in the database's files"
    else:
        dumped = str(s.sql("SELECT * FROM users")) + str(s.sql("SELECT * FROM login_attempts"))
        assert password not in dumped
    log = (s.run_dir / "access.log").read_text(errors="replace") + s.log_tail(1000)
    assert password not in log, "the password is in a log"
    assert SECRET not in log, "the secret is in a log"
