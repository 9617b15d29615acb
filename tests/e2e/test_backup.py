"""Backups (issue 16): ai-chat-fcgi db backup PATH (SQLite's online backup API) and db check, and on
PostgreSQL the pg_dump and pg_restore commands README shows.  A backup is taken while clients keep
creating chats through the stack; the copy is restored (a stack started on it) and every chat in it
reads back through the API, and every chat made before the backup began is in it."""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from api import chat_path, create_chat, expect, insert_messages, new_user, qs
from harness import ENGINE, SETTINGS, WORKER, Stack, pg_cluster, test

WRITERS = 4


def cli(*args, database_url=None):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    if database_url:
        env["DATABASE_URL"] = database_url
    done = subprocess.run([str(WORKER), "db", *args], env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


class WriteLoad:
    """WRITERS threads creating chats through the stack until stopped; notes when each was answered."""

    def __init__(self, s, users):
        self.s, self.users = s, users
        self.made = []        # (chat id, user, title, monotonic time answered)
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(WRITERS)]

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            user = self.users[(i + n) % len(self.users)]
            title = f"load {i}-{n}"
            status, _, data = self.s.json("POST", "/chats", json={"user_id": user, "title": title})
            with self.lock:
                if status == 201:
                    self.made.append((data["id"], user, title, time.monotonic()))
                else:
                    self.failures.append((status, data))
            n += 1

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for th in self.threads:
            th.join(30)
        return False


def chats_of(s):
    return {r[0]: r[1:] for r in s.sql("SELECT id, user_id, title, created_at, message_count FROM chats")}


def check_restored(restored, source, before, users):
    """Every chat of the copy reads back through the API as stored; every chat answered before the
    backup began is in it."""
    got = chats_of(restored)
    missing = [c for c, _, _, at in before if c not in got]
    assert not missing, f"{len(missing)} chats made before the backup are not in it: {missing[:3]}"
    original = chats_of(source)
    assert all(original[c] == row for c, row in got.items()), "a chat of the copy differs from the source"
    for chat_id, (user, title, _, count) in got.items():
        _, chat = expect(restored, "GET", chat_path(chat_id, user_id=user), 200)
        assert chat["title"] == title and chat["message_count"] == count, chat
    for user in users:
        _, listing = expect(restored, "GET", "/chats" + qs(user_id=user, limit=1), 200)
        assert listing["total"] == sum(1 for u, *_ in got.values() if u == user), listing
    return got


def load_then(s, users, take_backup):
    """Chats with messages first; then the write load, the backup taken in its midst."""
    for user in users:   # some 40 MB, for the copy to take a while
        chat = create_chat(s, user, "with messages")
        insert_messages(s, chat["id"], [f"m{j} {user} " + "x" * 2000 for j in range(6000)])
    with WriteLoad(s, users) as load:
        while len(load.made) < 50:
            time.sleep(0.02)
        started = time.monotonic()
        with load.lock:
            before = list(load.made)
        took = take_backup()
        with load.lock:
            during = [m for m in load.made if started < m[3] < started + took]
        time.sleep(0.3)
    assert not load.failures, load.failures[:3]
    assert during, "no chat was made while the backup ran"
    return before, during, took


@test
def sqlite_backup_during_writes_restores_every_chat():
    if ENGINE != "sqlite":
        # PostgreSQL: db backup says to use pg_dump, and fails
        s = Stack().start()
        try:
            status, out = cli("backup", "/tmp/never.db", database_url=s.database_url)
            assert status == 3 and "pg_dump --format=custom" in out and "pg_restore" in out, (status, out)
            assert not os.path.exists("/tmp/never.db")
        finally:
            s.stop()
        return
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-backup-"))
    try:
        copy = keep / "copy.db"
        users = [new_user("bk") for _ in range(3)]
        with Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "8"}) as s:
            def take():
                t0 = time.monotonic()
                status, out = cli("backup", str(copy), database_url=s.database_url)
                assert status == 0 and "checked" in out, (status, out)
                return time.monotonic() - t0

            before, during, took = load_then(s, users, take)
            assert not (keep / "copy.db.part").exists()
            # a second backup to the same path is refused; --force replaces it
            status, out = cli("backup", str(copy), database_url=s.database_url)
            assert status == 3 and "exists" in out, out
            status, out = cli("check", f"sqlite:///{copy}")
            assert status == 0 and "integrity ok, foreign keys ok" in out, out
            with Stack(database_url=f"sqlite:///{copy}", db_file=copy) as restored:
                got = check_restored(restored, s, before, users)
            print(f"    backup of {len(got)} chats took {took * 1000:.0f} ms; {len(during)} chats were "
                  f"made meanwhile", flush=True)
            status, out = cli("backup", str(copy), "--force", database_url=s.database_url)
            assert status == 0, out
    finally:
        shutil.rmtree(keep, ignore_errors=True)


@test
def postgres_pg_dump_during_writes_restores_every_chat():
    """The commands of README's "Backups and upgrades", run as written."""
    if ENGINE != "postgres":
        return
    cluster = pg_cluster()
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-pgdump-"))
    os.chmod(keep, 0o777)
    target_name = f"restored_{os.getpid()}"
    try:
        dump = keep / "ai_chat.dump"
        users = [new_user("pgbk") for _ in range(3)]
        with Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "8"}) as s:
            def take():
                t0 = time.monotonic()
                done = subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", s.database_url],
                                      capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, done.stderr
                return time.monotonic() - t0

            before, during, took = load_then(s, users, take)
            target = cluster.create_database(target_name)
            done = subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={target}",
                                   str(dump)], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            status, out = cli("check", target)
            assert status == 0 and "integrity ok" in out, out
            with Stack(database_url=target) as restored:
                got = check_restored(restored, s, before, users)
            print(f"    pg_dump of {len(got)} chats took {took * 1000:.0f} ms; {len(during)} chats were "
                  f"made meanwhile", flush=True)
    finally:
        cluster.drop_database(target_name)
        shutil.rmtree(keep, ignore_errors=True)


@test
def check_finds_what_is_wrong():
    with Stack() as s:
        user = new_user("check")
        chat = create_chat(s, user)
        insert_messages(s, chat["id"], ["a", "b"])
        status, out = cli("check", database_url=s.database_url)
        assert status == 0 and "chats 1, messages 2" in out, out
        s.sql("UPDATE chats SET message_count = 7 WHERE id = ?", (chat["id"],))
        status, out = cli("check", database_url=s.database_url)
        assert status == 1 and "message_count disagrees" in out, out
        if ENGINE == "sqlite":
            with s.db() as conn:
                conn.execute("PRAGMA foreign_keys = OFF")
                conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES ('nope', 'user', 'x', 1)")
            status, out = cli("check", database_url=s.database_url)
            assert status == 1 and "messages without their chat: 1" in out and "foreign keys FAILED" in out, out
        status, out = cli("check", "sqlite:////nonexistent/x.db")
        assert status == 1 and "cannot open" in out, out


@test
def backup_and_check_refuse_bad_arguments():
    for args in (("backup",), ("backup", "a.db", "--yes"), ("check", "a", "b"), ("nothing",)):
        status, out = cli(*args, database_url="sqlite:////nonexistent/x.db")
        assert status == 2 and "usage" in out and "db backup PATH" in out and "db check [URL]" in out, (args, out)
    status, out = cli("check", "mysql://x")
    assert status == 2 and "not supported" in out, out
    # the database to back up must exist: a missing one is not made
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-backup-"))
    try:
        status, out = cli("backup", str(keep / "b.db"), database_url=f"sqlite:///{keep / 'missing.db'}")
        assert status == 1 and not (keep / "missing.db").exists() and not (keep / "b.db").exists(), out
        assert not (keep / "b.db.part").exists(), out
    finally:
        shutil.rmtree(keep, ignore_errors=True)
