"""The database file: schema applied once (PRAGMA user_version), WAL mode, data kept across restarts."""

import shutil
import tempfile
from pathlib import Path

from api import chat_path, check_chat_stored, create_chat, expect, insert_messages, new_user
from harness import ROOT, Stack, default_stack, sqlite_only, test

MIGRATIONS = sorted((ROOT / "sql" / "sqlite").glob("[0-9][0-9][0-9]_*.sql"))


@test
def schema_is_applied_in_wal_mode():
    sqlite_only("PRAGMA user_version and journal_mode (PostgreSQL: test_pg_schema.py)")
    s = default_stack()
    assert MIGRATIONS, "no sql/sqlite/NNN_*.sql files"
    last = int(MIGRATIONS[-1].name[:3])
    assert s.sql("PRAGMA user_version")[0][0] == last
    assert s.sql("PRAGMA journal_mode")[0][0] == "wal"
    tables = {row[0] for row in s.sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"chats", "messages"} <= tables, tables


@test
def data_survives_a_restart():
    sqlite_only("a database file kept across stacks (PostgreSQL: test_pg_schema.py)")
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-keep-"))
    try:
        db = keep / "kept.db"
        settings = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}
        user = new_user()
        with Stack(env=settings, database_url=f"sqlite:///{db}", db_file=db) as s:
            chat = create_chat(s, user, "kept")
            insert_messages(s, chat["id"], ["one", "two"])
            version = s.sql("PRAGMA user_version")[0][0]
        with Stack(env=settings, database_url=f"sqlite:///{db}", db_file=db) as s:
            kept = dict(chat, message_count=2)
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, kept)
            check_chat_stored(s, kept)
            assert s.sql("PRAGMA user_version")[0][0] == version
            create_chat(s, user, "after the restart")
    finally:
        shutil.rmtree(keep, ignore_errors=True)
