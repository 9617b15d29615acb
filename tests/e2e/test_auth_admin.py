"""Admins and the host's CLI: `ai-chat-fcgi user add|role|adopt`, the /admin routes (403 for users,
404 for unknown accounts), and a database from before accounts migrating with its chats."""

import contextlib
import uuid

from api import chat_not_found, db_chat, expect, expect_422, missing
from auth_util import (PASSWORD, TOKEN_ENV, account, bearer, cli, login, new_email, register, token_stack,
                       unauthorized)
from harness import ENGINE, ROOT, Stack, test
from provider import model_env, shared_provider, tag


def make_admin(s):
    email = new_email("admin")
    status, out = cli(s, "user", "add", email, "--admin", stdin=PASSWORD + "\n")
    assert status == 0 and f"added {email}" in out and "role admin" in out, out
    return email, login(s, email)


@test
def cli_adds_users_and_changes_roles():
    _, s = token_stack()
    email = new_email("cli")
    status, out = cli(s, "user", "add", email.upper(), stdin=PASSWORD + "\n")
    assert status == 0 and f"added {email}" in out and "role user" in out, out
    token = login(s, email)
    _, me = expect(s, "GET", "/auth/me", 200, headers=bearer(token))
    assert me["role"] == "user" and me["email"] == email, me
    status, out = cli(s, "user", "add", email, stdin=PASSWORD + "\n")
    assert status == 1 and "already registered" in out, out
    status, out = cli(s, "user", "role", email, "admin")
    assert status == 0 and "admin" in out, out
    assert expect(s, "GET", "/auth/me", 200, headers=bearer(token))[1]["role"] == "admin"
    status, out = cli(s, "user", "role", email, "user")
    assert status == 0, out
    for args, stdin, want in ((("user", "add", "not-an-email"), PASSWORD, "not a valid email"),
                              (("user", "add", new_email()), "short\n", "8 to 1024 characters"),
                              (("user", "add", new_email()), "", "no password"),
                              (("user", "role", new_email(), "admin"), "", "no account"),
                              (("user", "role", email, "root"), "", "usage"),
                              (("user",), "", "usage")):
        status, out = cli(s, *args, stdin=stdin)
        assert status != 0 and want in out, (args, status, out)
    # the password goes nowhere but into its hash
    assert PASSWORD not in out and PASSWORD not in str(s.sql("SELECT * FROM users"))


@test
def admin_routes_for_admins_only():
    p, s = token_stack()
    _, admin_token = make_admin(s)
    user, email, user_token = account(s, "plain")
    status, _, sent = s.json("POST", "/chat", json={"message": f"hello {tag()}"}, headers=bearer(user_token))
    assert status == 200, sent
    u = user["id"]
    routes = [("GET", "/admin/users", None), ("POST", "/admin/users", {"email": new_email(), "password": PASSWORD}),
              ("PATCH", f"/admin/users/{u}/role", {"role": "admin"}), ("DELETE", f"/admin/users/{u}", None),
              ("GET", f"/admin/users/{u}/chats", None), ("GET", f"/admin/chats/{sent['chat_id']}/messages", None)]
    for method, path, body in routes:
        expect(s, method, path, 403, {"detail": "Admin access required"}, headers=bearer(user_token),
               **({} if body is None else {"json": body}))
    admin = bearer(admin_token)
    _, users = expect(s, "GET", "/admin/users?limit=500", 200, headers=admin)
    assert user in users, users
    _, first = expect(s, "GET", "/admin/users?limit=1", 200, headers=admin)
    assert len(first) == 1
    expect_422(s, "GET", "/admin/users?limit=501", [{"loc": ["query", "limit"], "msg": "ensure this value is less than or equal to 500", "type": "value_error.number.not_le", "ctx": {"limit_value": 500}}], headers=admin)
    # an account made by an admin, with a role
    made_email = new_email("made")
    _, made = expect(s, "POST", "/admin/users", 201, json={"email": made_email, "password": PASSWORD, "role": "admin"},
                     headers=admin)
    assert made["role"] == "admin" and made["email"] == made_email, made
    expect(s, "POST", "/admin/users", 409, {"detail": "Email already registered"},
           json={"email": made_email, "password": PASSWORD}, headers=admin)
    expect_422(s, "POST", "/admin/users", [{"loc": ["body", "role"], "msg": "value is not a valid enumeration member; permitted: 'user', 'admin'", "type": "type_error.enum"}],
               json={"email": new_email(), "password": PASSWORD, "role": "root"}, headers=admin)
    # everyone's chats and messages
    _, chats = expect(s, "GET", f"/admin/users/{u}/chats", 200, headers=admin)
    assert chats["total"] == 1 and chats["chats"][0]["id"] == sent["chat_id"], chats
    _, messages = expect(s, "GET", f"/admin/chats/{sent['chat_id']}/messages", 200, headers=admin)
    assert [m["role"] for m in messages] == ["user", "assistant"], messages
    missing_chat = str(uuid.uuid4())
    expect(s, "GET", f"/admin/chats/{missing_chat}/messages", 404, chat_not_found(missing_chat), headers=admin)
    # the role, and unknown accounts
    _, changed = expect(s, "PATCH", f"/admin/users/{u}/role", 200, json={"role": "admin"}, headers=admin)
    assert changed == dict(user, role="admin"), changed
    expect(s, "GET", "/admin/users", 200, headers=bearer(user_token))
    expect(s, "PATCH", f"/admin/users/{u}/role", 200, json={"role": "user"}, headers=admin)
    expect_422(s, "PATCH", f"/admin/users/{u}/role", [missing("body", "role")], json={}, headers=admin)
    nobody = str(uuid.uuid4())
    gone = {"detail": f"User with id '{nobody}' not found"}
    for method, path, body in (("PATCH", f"/admin/users/{nobody}/role", {"role": "user"}),
                               ("GET", f"/admin/users/{nobody}/chats", None),
                               ("DELETE", f"/admin/users/{nobody}", None)):
        expect(s, method, path, 404, gone, headers=admin, **({} if body is None else {"json": body}))
    # deleting an account takes its chats and ends its tokens
    resp = s.request("DELETE", f"/admin/users/{u}", headers=admin)
    assert resp.status == 204 and resp.body == b"", resp.describe()
    assert db_chat(s, sent["chat_id"]) is None
    unauthorized(s, "GET", "/chats", "User not found", headers=bearer(user_token))
    expect(s, "POST", "/auth/login", 401, json={"email": email, "password": PASSWORD})


def old_database(stack):
    """Writes the schema from before accounts (migrations 001..003) into the stack's database, with a
    legacy user's chat and its messages in it."""
    chat_id = "22222222-2222-4222-8222-222222222222"
    with contextlib.closing(stack.db()) as conn:
        for f in sorted((ROOT / "sql" / ENGINE).glob("00[123]_*.sql")):
            conn.executescript(f.read_text())
        if ENGINE == "sqlite":
            conn.execute("PRAGMA user_version = 3")
        else:
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("INSERT INTO schema_migrations (version) VALUES (1), (2), (3)")
        conn.execute("INSERT INTO chats (id, user_id, title, created_at, updated_at, message_count) VALUES "
                     "(?, 'legacy-user', 'from before', 1, 2, 2)", (chat_id,))
        first = conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, 'user', 'old question', 10)",
                             (chat_id,)).lastrowid
        conn.execute("INSERT INTO messages (chat_id, parent_id, role, content, created_at) VALUES (?, ?, 'assistant', 'old answer', 11)",
                     (chat_id, first))
    return chat_id


@test
def a_database_from_before_migrates_and_adopt_gives_its_chats():
    # made by the schema before accounts: in AUTH=none it reads as before...
    stack = Stack(env={"WORKER_PROCESSES": "1"})
    chat_id = old_database(stack)
    with stack:
        _, listing = expect(stack, "GET", "/chats?user_id=legacy-user", 200)
        assert [c["id"] for c in listing["chats"]] == [chat_id] and listing["chats"][0]["title"] == "from before"
        _, page = expect(stack, "GET", f"/chats/{chat_id}/messages?user_id=legacy-user", 200)
        assert [m["content"] for m in page] == ["old question", "old answer"], page
        assert stack.sql("SELECT count(*) FROM users")[0][0] == 0
        # ...and in AUTH=token (another stack on the same database), `user adopt` gives them to an account
        with Stack(env={**model_env(shared_provider()), **TOKEN_ENV, "WORKER_PROCESSES": "1"},
                   database_url=stack.database_url, db_file=stack.db_path) as s:
            user, email = register(s)
            token = login(s, email)
            expect(s, "GET", "/chats", 200, {"chats": [], "total": 0}, headers=bearer(token))
            status, out = cli(s, "user", "adopt", "legacy-user", email)
            assert status == 0 and "gave 1 chat of user_id legacy-user" in out, out
            _, listing = expect(s, "GET", "/chats", 200, headers=bearer(token))
            assert [(c["id"], c["user_id"]) for c in listing["chats"]] == [(chat_id, user["id"])], listing
            _, page = expect(s, "GET", f"/chats/{chat_id}/messages", 200, headers=bearer(token))
            assert [m["content"] for m in page] == ["old question", "old answer"], page
            status, out = cli(s, "user", "adopt", "legacy-user", new_email("nobody"))
            assert status == 1 and "no account" in out, out
