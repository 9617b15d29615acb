"""PostgreSQL's schema: the versions recorded in schema_migrations, migrated exactly once when many
processes start at once (pg_advisory_xact_lock), data kept across stacks. PostgreSQL runs only."""

import os
import subprocess
import time

from api import chat_path, check_chat_stored, create_chat, expect, insert_messages, new_user
from harness import ROOT, SETTINGS, WORKER, Stack, default_stack, pg_database, postgres_only, test

MIGRATIONS = sorted((ROOT / "sql" / "postgres").glob("[0-9][0-9][0-9]_*.sql"))
SQLITE_MIGRATIONS = sorted((ROOT / "sql" / "sqlite").glob("[0-9][0-9][0-9]_*.sql"))


@test
def migrations_are_numbered_alike_for_both_engines():
    assert [m.name[:3] for m in MIGRATIONS] == [m.name[:3] for m in SQLITE_MIGRATIONS], \
        f"sql/postgres {[m.name for m in MIGRATIONS]} and sql/sqlite {[m.name for m in SQLITE_MIGRATIONS]}"


@test
def schema_versions_are_recorded():
    postgres_only("schema_migrations")
    s = default_stack()
    versions = [r[0] for r in s.sql("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [int(m.name[:3]) for m in MIGRATIONS], versions
    tables = {r[0] for r in s.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"chats", "messages", "idempotency_keys", "schema_migrations"} <= tables, tables
    kinds = dict(s.sql("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'messages'"))
    assert kinds["content"] == "bytea" and kinds["id"] == "bigint", kinds


def check_config(url, n):
    """Starts n `ai-chat-fcgi --check-config` at once on url; returns their (status, output)."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["DATABASE_URL"] = url
    env["AUTH"] = "none"
    procs = [subprocess.Popen([str(WORKER), "--check-config"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(n)]
    return [(p.wait(30), p.stdout.read()) for p in procs]


@test
def many_processes_starting_at_once_migrate_exactly_once():
    postgres_only("pg_advisory_xact_lock")
    for round_ in range(3):
        with pg_database("race") as (cluster, name, url):
            results = check_config(url, 12)
            bad = [r for r in results if r[0] != 0]
            assert not bad, f"round {round_}: {len(bad)} of 12 failed: {bad[:3]}"
            rows = cluster.psql(name, "SELECT version, count(*) FROM schema_migrations GROUP BY version "
                                      "ORDER BY version").split()
            assert rows == [f"{int(m.name[:3])}|1" for m in MIGRATIONS], rows
            # each index made once (a second run of a script would have failed on "already exists")
            assert cluster.psql(name, "SELECT count(*) FROM pg_indexes WHERE indexname IN "
                                      "('messages_by_chat', 'messages_on_path')").strip() == "2"


@test
def newer_schema_than_the_program_stops_the_start():
    postgres_only("schema_migrations")
    with pg_database("newer") as (cluster, name, url):
        assert check_config(url, 1)[0][0] == 0
        cluster.psql(name, "INSERT INTO schema_migrations (version) VALUES (999)")
        status, output = check_config(url, 1)[0]
        assert status != 0 and "999" in output, (status, output)


@test
def data_survives_a_restart():
    postgres_only("a database kept across stacks (SQLite: test_storage.py)")
    with pg_database("kept") as (cluster, name, url):
        settings = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}
        user = new_user()
        with Stack(env=settings, database_url=url) as s:
            chat = create_chat(s, user, "kept")
            insert_messages(s, chat["id"], ["one", "two"])
        started = time.monotonic()
        with Stack(env=settings, database_url=url) as s:
            kept = dict(chat, message_count=2)
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, kept)
            check_chat_stored(s, kept)
            create_chat(s, user, "after the restart")
            assert len(s.sql("SELECT version FROM schema_migrations")) == len(MIGRATIONS)
        assert time.monotonic() - started < 15


@test
def chats_from_before_the_tree_migrate_to_one_path():
    postgres_only("sql/postgres/003_tree.sql on rows of the older schema (SQLite: test_model_branches.py)")
    from test_model_branches import page
    from api import db_chat
    chat_id = "11111111-1111-4111-8111-111111111111"
    with pg_database("pretree") as (cluster, name, url):
        # the schema as migrations 001 and 002 left it, recorded as the engine records it
        cluster.psql(name, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for f in MIGRATIONS[:2]:
            cluster.psql(name, f.read_text())
        cluster.psql(name, "INSERT INTO schema_migrations (version) VALUES (1), (2)")
        cluster.psql(name, f"INSERT INTO chats (id, user_id, title, created_at, updated_at) VALUES "
                           f"('{chat_id}', 'old', 'kept', 1, 2)")
        for i, (role, text) in enumerate([("user", "hi"), ("assistant", "hello"), ("user", "more"),
                                          ("assistant", "cut")]):
            cluster.psql(name, f"INSERT INTO messages (chat_id, role, content, created_at, incomplete) VALUES "
                               f"('{chat_id}', '{role}', '{text}', {10 + i}, {int(text == 'cut')})")
        cluster.psql(name, f"INSERT INTO idempotency_keys (user_id, key, chat_id, user_message_id, reply_message_id, "
                           f"locked_until, created_at) VALUES ('old', 'k', '{chat_id}', 1, 2, 0, {10**16})")
        assert cluster.psql(name, "SELECT message_count FROM chats").strip() == "4"   # 001's triggers
        with Stack(env={"WORKER_PROCESSES": "1"}, database_url=url) as stack:
            shown = page(stack, chat_id, "old")
            assert [(m["id"], m["parent_id"], m["sibling_ids"]) for m in shown] == \
                [(1, None, [1]), (2, 1, [2]), (3, 2, [3]), (4, 3, [4])], shown
            assert shown[3].get("incomplete") is True
            assert db_chat(stack, chat_id)["message_count"] == 4
            assert [r[0] for r in stack.sql("SELECT version FROM schema_migrations ORDER BY version")] == \
                [int(m.name[:3]) for m in MIGRATIONS]
            assert stack.sql("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'messages_count%'")[0][0] == 0
