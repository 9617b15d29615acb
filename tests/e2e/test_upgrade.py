"""Upgrades (issue 16): for each earlier schema version N of this run's engine, a database made by
migrations 001..N straight from sql/<engine>/ (recorded as the engine records its version), filled
with what that version could hold (chats and messages; from 002 token counts, cut-short replies and
idempotency keys; from 003 branches: alternative replies off the active path), then today's worker
started on it (it migrates) and every row read back through the API, and `db check` passing.

From the accounts' migration (004) on, an account too (an admin, its password hash as the CLI
writes one, a chat of its own), which logs in after the upgrade (AUTH=token) and finds its chat.

One test per version: upgrade.from_<N>.  A migration that adds what a version can hold (keys of an
account, ...) adds its rows in fill() below, from its version on.
"""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from api import chat_path, expect, now_micros, qs
from harness import ENGINE, ROOT, SETTINGS, WORKER, PgConnection, Stack, add_test, pg_database
from provider import FakeProvider, model_env

MIGRATIONS = sorted((ROOT / "sql" / ENGINE).glob("*.sql"))
NEWEST = int(MIGRATIONS[-1].name[:3])
HOUR_US = 3600 * 1000000
ACCOUNTS = next((i + 1 for i, f in enumerate(MIGRATIONS) if "accounts" in f.name), None)   # scripts up to it
ACCOUNT_ID = "7d1f7c36-3f0e-4c1a-9d55-0000000000aa"
ACCOUNT_EMAIL = "old-admin@example.com"
PASSWORD = "correct horse battery"
_hash = []


def password_hash():
    """A password hash as `ai-chat-fcgi user add` writes it (made once, in a scratch database)."""
    if not _hash:
        scratch = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-hash-"))
        try:
            env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
            env.update(DATABASE_URL=f"sqlite:///{scratch / 'h.db'}", AUTH="token")
            done = subprocess.run([str(WORKER), "user", "add", "h@example.com"], env=env, input=PASSWORD + "\n",
                                  capture_output=True, text=True, timeout=60, cwd=scratch)
            assert done.returncode == 0, done.stdout + done.stderr
            with contextlib.closing(sqlite3.connect(scratch / "h.db")) as conn:
                _hash.append(conn.execute("SELECT password_hash FROM users").fetchone()[0])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _hash[0]

# What the chats hold, whatever the version: (id, user, title, [(role, content)]).
CHATS = [
    ("11111111-1111-4111-8111-000000000001", "alice", "Trip to Kyoto \u00fc",
     [("user", "Plan a trip"), ("assistant", "Day one: temples"), ("user", "And day two?"),
      ("assistant", "Day two: Nara \U0001F98C")]),
    ("11111111-1111-4111-8111-000000000002", "alice", None,
     [("user", "hello"), ("assistant", "hi there")]),
    ("11111111-1111-4111-8111-000000000003", "b\u00f6b", "empty one", []),
    ("11111111-1111-4111-8111-000000000004", "b\u00f6b", "quotes ' and \" and \\",
     [("user", "line\nbreaks\tand tabs"), ("assistant", "cut sho")]),
]


@contextlib.contextmanager
def database_at(version):
    """(connection, database_url, db_file) of a new database brought to version by the scripts."""
    if ENGINE == "postgres":
        with pg_database(f"upgrade{version}") as (_, _, url):
            conn = PgConnection(url)
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            for f in MIGRATIONS[:version]:
                conn.executescript(f.read_text())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (int(f.name[:3]),))
            try:
                yield conn, url, None
            finally:
                conn.close()
        return
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-upgrade-"))
    path = keep / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for f in MIGRATIONS[:version]:
            conn.executescript(f.read_text())
        conn.execute(f"PRAGMA user_version = {int(MIGRATIONS[version - 1].name[:3])}")
        yield conn, f"sqlite:///{path}", path
    finally:
        conn.close()
        shutil.rmtree(keep, ignore_errors=True)


def insert(conn, table, row):
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cur = conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
    return cur.lastrowid


def fill(conn, version):
    """What a database of that version could hold; returns what the API must show after the upgrade."""
    now = now_micros()
    want = {"chats": {}, "keys": []}
    for n, (chat_id, user, title, messages) in enumerate(CHATS):
        created = now - (10 - n) * HOUR_US
        chat = {"id": chat_id, "user_id": user, "title": title, "created_at": created,
                "updated_at": created + len(messages) + 1}
        insert(conn, "chats", dict(chat))
        shown, parent = [], None
        for i, (role, content) in enumerate(messages):
            row = {"chat_id": chat_id, "role": role, "content": content, "created_at": created + i + 1}
            cut = content == "cut sho"
            if version >= 2 and role == "assistant":
                row.update(model="openai/gpt-oss-20b", prompt_tokens=10 + i, completion_tokens=3 + i,
                           incomplete=int(cut))
            if version >= 3:
                row.update(parent_id=parent, active=1, state=1 if cut else 0)
            parent = insert(conn, "messages", row)
            shown.append({"id": parent, "role": role, "content": content, "incomplete": cut and version >= 2,
                          "parent_id": shown[-1]["id"] if shown else None, "siblings": [parent]})
        if version >= 3 and len(shown) >= 2:
            # a branch: an alternative reply to the last user message, off the active path
            last_user = shown[-2]
            alt = insert(conn, "messages", {"chat_id": chat_id, "role": "assistant", "content": "an alternative",
                                            "created_at": created + 50, "model": "openai/gpt-oss-20b",
                                            "prompt_tokens": 1, "completion_tokens": 2, "incomplete": 0,
                                            "parent_id": last_user["id"], "active": 0, "state": 0})
            shown[-1]["siblings"] = sorted([shown[-1]["id"], alt])
        if version >= 3:
            conn.execute("UPDATE chats SET message_count = ? WHERE id = ?", (len(shown), chat_id))
        chat["message_count"] = len(shown)
        chat["messages"] = shown
        want["chats"][chat_id] = chat
        if version >= 2 and len(shown) >= 2 and shown[-1]["role"] == "assistant" and not shown[-1]["incomplete"]:
            key = f"key-{n}"
            insert(conn, "idempotency_keys", {"user_id": user, "key": key, "chat_id": chat_id,
                                              "user_message_id": shown[-2]["id"],
                                              "reply_message_id": shown[-1]["id"], "locked_until": 0,
                                              "created_at": now - HOUR_US})
            want["keys"].append((chat_id, user, key, shown[-2]["content"], shown[-1]))
    if ACCOUNTS is not None and version >= ACCOUNTS:
        insert(conn, "users", {"id": ACCOUNT_ID, "email": ACCOUNT_EMAIL, "password_hash": password_hash(),
                               "role": "admin", "token_version": 0, "created_at": now - 5 * HOUR_US})
        chat_id = "11111111-1111-4111-8111-0000000000aa"
        insert(conn, "chats", {"id": chat_id, "user_id": ACCOUNT_ID, "title": "mine", "created_at": now - HOUR_US,
                               "updated_at": now - HOUR_US, "message_count": 1})
        first = insert(conn, "messages", {"chat_id": chat_id, "role": "user", "content": "an account's",
                                          "created_at": now - HOUR_US, "parent_id": None, "active": 1, "state": 0})
        want["account"] = {"chat_id": chat_id, "message_id": first}
    return want


def check_account(s, want):
    """After the upgrade, in AUTH=token: the account logs in, is still an admin, finds its chat."""
    _, data = expect(s, "POST", "/auth/login", 200, json={"email": ACCOUNT_EMAIL, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {data['access_token']}"}
    _, me = expect(s, "GET", "/auth/me", 200, headers=auth)
    assert (me["id"], me["email"], me["role"]) == (ACCOUNT_ID, ACCOUNT_EMAIL, "admin"), me
    _, listing = expect(s, "GET", "/chats", 200, headers=auth)
    assert [c["id"] for c in listing["chats"]] == [want["chat_id"]], listing
    _, page = expect(s, "GET", chat_path(want["chat_id"], "/messages"), 200, headers=auth)
    assert [(m["id"], m["content"]) for m in page] == [(want["message_id"], "an account's")], page


def check_read_back(s, want, p):
    users = sorted({c["user_id"] for c in want["chats"].values()})
    for user in users:
        mine = [c for c in want["chats"].values() if c["user_id"] == user]
        _, listing = expect(s, "GET", "/chats" + qs(user_id=user, limit=100), 200)
        assert listing["total"] == len(mine), listing
        assert sorted(c["id"] for c in listing["chats"]) == sorted(c["id"] for c in mine), listing
    for chat_id, c in want["chats"].items():
        _, chat = expect(s, "GET", chat_path(chat_id, user_id=c["user_id"]), 200)
        assert (chat["title"], chat["message_count"], chat["user_id"]) == \
            (c["title"], c["message_count"], c["user_id"]), (chat, c)
        _, page = expect(s, "GET", chat_path(chat_id, "/messages", user_id=c["user_id"], limit=500), 200)
        got = [{"id": m["id"], "role": m["role"], "content": m["content"], "incomplete": m.get("incomplete", False),
                "parent_id": m["parent_id"], "siblings": m["sibling_ids"]} for m in page]
        assert got == c["messages"], f"{chat_id}:\n  {got}\nwanted\n  {c['messages']}"
    for chat_id, user, key, message, reply in want["keys"]:
        status, headers, data = s.json("POST", "/chat", json={"chat_id": chat_id, "user_id": user, "message": message},
                                       headers={"Idempotency-Key": key})
        assert status == 200 and headers.get("idempotent-replayed") == "true", (status, headers, data)
        assert data["reply"] == reply["content"] and data["message_id"] == reply["id"], data
    assert p.requests() == [], "the provider was asked: a stored answer was not found"


def db_check(url):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    done = subprocess.run([str(WORKER), "db", "check", url], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def upgrade_from(version):
    def run():
        with database_at(version) as (conn, url, db_file):
            want = fill(conn, version)
            conn.close()
            with FakeProvider() as p, Stack(env=model_env(p), database_url=url, db_file=db_file) as s:
                check_read_back(s, want, p)
                status, out = db_check(url)
                assert status == 0 and f"schema version {NEWEST}," in out, out
                if ENGINE == "postgres":
                    versions = [r[0] for r in s.sql("SELECT version FROM schema_migrations ORDER BY version")]
                    assert versions == [int(f.name[:3]) for f in MIGRATIONS], versions
                else:
                    assert s.sql("PRAGMA user_version") == [(NEWEST,)]
            if "account" in want:
                env = {"AUTH": "token", "JWT_SECRET": "upgrade-secret-" + "0123456789abcdef" * 2}
                with Stack(env=env, database_url=url, db_file=db_file) as s:
                    check_account(s, want["account"])
    return run


for _n in range(1, len(MIGRATIONS)):
    add_test(f"upgrade.from_{int(MIGRATIONS[_n - 1].name[:3]):03d}", upgrade_from(_n))
