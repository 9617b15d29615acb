"""The database file: schema applied once (PRAGMA user_version), WAL mode, data kept across restarts,
every write synced before it is answered."""

import os
import shutil
import tempfile
from pathlib import Path

from api import chat_path, check_chat_stored, create_chat, expect, insert_messages, new_user
from harness import ROOT, WORKER, Stack, default_stack, sqlite_only, test
from provider import model_env, send, shared_provider, tag

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


def strace_worker(tmp, trace):
    """A WORKER for conf/stack.sh: the real one under strace, its writes and syncs in trace."""
    wrapper = tmp / "worker-strace.sh"
    wrapper.write_text(f"""#!/bin/sh
exec strace -f -qq -y -s 64 -e trace=pwrite64,fdatasync,fsync,write,writev -o "{trace}" "{WORKER}" "$@"
""")
    wrapper.chmod(0o755)
    return wrapper


def answers_after_sync(lines, status):
    """For each FastCGI answer with status: whether the write-ahead log was synced (fdatasync of the
    -wal file, by any thread) after its last write into the log and before the answer was written."""
    seen, wal_written, wal_synced = [], False, False
    for line in lines:
        if "-wal>" in line and "pwrite64(" in line:
            wal_written, wal_synced = True, False
        elif "fdatasync(" in line and "-wal>" in line or "<... fdatasync resumed>" in line:
            wal_synced = True
        elif "socket:[" in line and f"Status: {status}" in line:
            seen.append(wal_written and wal_synced)
    return seen


@test
def a_write_is_on_the_disk_before_it_is_answered():
    # Group commit: COMMIT does not wait for the disk (synchronous = NORMAL); the writer waits for a
    # sync of the log after it.  Watched with strace on the real worker: between the commit's last
    # write into the -wal file and the answer there is an fdatasync of that file.
    sqlite_only("SQLite's write-ahead log (PostgreSQL syncs its own)")
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-sync-"))
    trace = tmp / "trace"
    env = model_env(shared_provider(), WORKER=str(strace_worker(tmp, trace)), WORKER_PROCESSES="1",
                    WORKER_THREADS="2")
    if "ASAN_OPTIONS" in os.environ:   # SANITIZE=1: LeakSanitizer cannot run under ptrace (strace)
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":detect_leaks=0"
    try:
        with Stack(env=env) as s:
            user = new_user()
            chat = create_chat(s, user, "durable")
            status, _, data = send(s, chat["id"], user, f"kept {tag()}")
            assert status == 200, data
            created = answers_after_sync(trace.read_text().splitlines(), "201")
            sent = answers_after_sync(trace.read_text().splitlines(), "200")
            stored = s.sql("SELECT role FROM messages WHERE chat_id = ? ORDER BY id", (chat["id"],))
        assert created == [True], f"POST /chats answered before its commit was synced: {created}"
        assert sent and sent[-1], f"POST /chat answered before its reply's commit was synced: {sent}"
        assert [r[0] for r in stored] == ["user", "assistant"], stored
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
