"""ai-chat-fcgi db copy FROM_URL TO_URL: SQLite to PostgreSQL and back, everything kept (ids,
timestamps, NUL bytes, idempotency keys), a non-empty target refused unless --force."""

import os
import subprocess
import tempfile
from pathlib import Path

from api import chat_path, create_chat, expect, insert_messages, new_user, qs
from harness import SETTINGS, WORKER, Stack, pg_cluster, postgres_only, test
from provider import FakeProvider, model_env, send, tag

TABLES = {"chats": "id", "messages": "id", "idempotency_keys": "user_id, key", "users": "id",
          "login_attempts": "kind, key, at", "user_limits": "user_id", "generation_slots": "id", "ops_leases": "name",
          "api_keys": "id"}


def db_copy(*args):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    done = subprocess.run([str(WORKER), "db", "copy", *args], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def everything(s):
    """Every row of every table, as the API's own database access reads them."""
    out = {}
    for table, order in TABLES.items():
        columns = {"chats": "id, CAST(user_id AS BLOB), CAST(title AS BLOB), created_at, updated_at, message_count, "
                            "CAST(system_prompt AS BLOB), model, pinned, archived",
                   "messages": "id, chat_id, parent_id, role, CAST(content AS BLOB), created_at, model, "
                               "prompt_tokens, completion_tokens, incomplete, active, state, locked_until",
                   "idempotency_keys": "CAST(user_id AS BLOB), CAST(key AS BLOB), chat_id, user_message_id, "
                                       "reply_message_id, locked_until, created_at",
                   "users": "id, email, password_hash, role, token_version, subject, created_at",
                   "login_attempts": "kind, key, at",
                   "user_limits": "CAST(user_id AS BLOB), rate_tat, token_day, tokens",
                   "generation_slots": "id, CAST(user_id AS BLOB), until",
                   "ops_leases": "name, holder, until",
                   "api_keys": "id, user_id, CAST(name AS BLOB), prefix, key_hash, created_at, last_used_at"}[table]
        out[table] = s.sql(f"SELECT {columns} FROM {table} ORDER BY {order}")
    return out


def answers(s, users):
    """What the API says about every chat of the users (lists and message pages)."""
    seen = []
    for user in users:
        _, listing = expect(s, "GET", "/chats" + qs(user_id=user, limit=100), 200)
        seen.append(listing)
        for chat in listing["chats"]:
            _, page = expect(s, "GET", chat_path(chat["id"], "/messages", user_id=user, limit=500), 200)
            seen.append(page)
    return seen


def check_search(s, user):
    """The copy is searchable: the target's index (triggers, generated columns) was written as it went in."""
    _, found = expect(s, "GET", "/search" + qs(user_id=user, q="title"), 200)
    assert found["total"] == 3 and {r["message_id"] for r in found["results"]} == {None}, found
    _, found = expect(s, "GET", "/search" + qs(user_id=user, q="keyed"), 200)
    assert found["total"] == 6 and {r["role"] for r in found["results"]} == {"user", "assistant"}, found


@test
def copy_sqlite_to_postgres_and_back_keeps_everything():
    postgres_only("needs a PostgreSQL server for the other end")
    cluster = pg_cluster()
    name = f"copy_{tag()}"
    target = cluster.create_database(name)
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-copy-"))
    try:
        source = f"sqlite:///{keep / 'source.db'}"
        users = [new_user("copy"), "nul\u0000user \u00e9\U0001F600"]
        with FakeProvider() as p, Stack(env=model_env(p, CHAT_RATE_PER_MINUTE="100", TOKENS_PER_DAY="1000000"),
                                        database_url=source, db_file=keep / "source.db") as s:
            for user in users:
                for i in range(3):
                    chat = create_chat(s, user, f"title {i} \u0000 \u00fc")
                    insert_messages(s, chat["id"], [f"m{j} \u0000 {i}" for j in range(5)])
                    status, _, data = send(s, chat["id"], user, f"keyed {i} {tag()}",
                                           headers={"Idempotency-Key": f"key-{i}-{tag()}"})
                    assert status == 200, data
            # an account (its hash as libsodium writes one) and a failed login go along too
            s.sql("INSERT INTO users (id, email, password_hash, role, token_version, created_at) VALUES "
                  "('7d1f7c36-3f0e-4c1a-9d55-000000000001', 'copy@example.com', "
                  "'$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA', 'admin', 3, 1700000000000000)")
            s.sql("INSERT INTO login_attempts (kind, key, at) VALUES ('email', 'copy@example.com', 1700000000000001)")
            # and its API key (a hash, never the key)
            s.sql("INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, last_used_at) VALUES "
                  "('0b5e6c2a-1d3f-4e7a-8b9c-000000000002', '7d1f7c36-3f0e-4c1a-9d55-000000000001', "
                  "'laptop \u00e9', 'sk-AbCdEfGh', '" + "ab" * 32 + "', 1700000000000002, NULL)")
            before, api_before = everything(s), {u: answers(s, [u]) for u in users}
        assert [len(before[t]) for t in TABLES] == [6, 42, 6, 1, 1, 2, 0, 0, 1], {t: len(r) for t, r in before.items()}

        status, out = db_copy(source, target)
        assert status == 0, out
        assert ("chats 6, messages 42, idempotency_keys 6, users 1, login_attempts 1, user_limits 2, "
                "generation_slots 0, ops_leases 0, api_keys 1") in out, out
        with Stack(database_url=target) as s:
            # every table of the schema is one the copy knows (a migration's new table goes into
            # fcgi/cli_db.c's list)
            tables = {r[0] for r in s.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert tables - {"schema_migrations"} == set(TABLES), tables
            got = everything(s)
            for t in TABLES:
                diff = [(a, b) for a, b in zip(before[t], got[t]) if a != b]
                assert len(got[t]) == len(before[t]) and not diff, f"{t}: {diff[:3]}"
            assert {u: answers(s, [u]) for u in users} == api_before
            check_search(s, users[0])
            # new ids continue after the copied ones
            chat = create_chat(s, users[0], "after the copy")
            new_id, = insert_messages(s, chat["id"], ["after"])
            assert new_id > max(r[0] for r in before["messages"]), new_id

        # into a target that holds rows: refused, the target unchanged
        status, out = db_copy(source, target)
        assert status == 3 and "is not empty" in out and "refused" in out, (status, out)
        assert cluster.psql(name, "SELECT count(*) FROM chats").strip() == "7"
        assert "s3cret" not in out

        # and back, into a new SQLite file
        back = f"sqlite:///{keep / 'back.db'}"
        status, out = db_copy(target, back)
        assert status == 0, out
        with Stack(database_url=back, db_file=keep / "back.db") as s:
            after = everything(s)
            assert {t: [r for r in rows if r not in after[t]] for t, rows in before.items()} == \
                {t: [] for t in before}, "rows lost on the way back"
            assert answers(s, [users[1]]) == api_before[users[1]]
            check_search(s, users[1])
            _, listing = expect(s, "GET", "/chats" + qs(user_id=users[0], limit=100), 200)
            assert listing["total"] == 4

        # --force empties the target first
        status, out = db_copy(source, target, "--force")
        assert status == 0, out
        with Stack(database_url=target) as s:
            assert everything(s) == before
    finally:
        cluster.drop_database(name)
        subprocess.run(["rm", "-rf", str(keep)])


@test
def copy_refuses_bad_arguments():
    for args, want in ((("sqlite:///a.db",), "usage"), (("sqlite:///a.db", "sqlite:///a.db"), "both the source"),
                       (("mysql://x", "sqlite:///b.db"), "not supported"),
                       (("sqlite:///a.db", "sqlite:///b.db", "--yes"), "usage")):
        status, out = db_copy(*args)
        assert status == 2 and want in out, (args, status, out)
