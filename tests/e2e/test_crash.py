"""Crashes and hostile environments: a worker process killed with SIGKILL while 100 chats are in flight,
a read-only database, a full disk, and every provider fault ending within the configured timeouts.

Mounts (a read-only bind mount in a mount namespace of the worker's own, a tiny tmpfs) need root and
CAP_SYS_ADMIN; where the sandbox refuses them the test says why and passes as skipped.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from api import chat_path, create_chat, expect, new_user, qs
from harness import ENGINE, WORKER, Stack, _process_state, command_line, sqlite_only, test
from provider import FakeProvider, check_reply, model_env, stream_chat, tag

SKIPPED = []


def skip(why):
    print(f"    SKIP: {why}", flush=True)
    SKIPPED.append(why)


# --------------------------------------------------------------------------------------------------
# kill -9 a worker process while 100 chats are in flight


def supervisor_and_children(s):
    """(the supervisor's pid, its children's pids): ai-chat-fcgi processes whose environment names
    the stack's run directory, the supervisor being the one whose parent is not one of them."""
    mark = str(s.run_dir).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        state = _process_state(pid)
        if state is None or state[0] in ("Z", "X") or "ai-chat-fcgi" not in command_line(pid):
            continue
        try:
            if mark in Path(f"/proc/{pid}/environ").read_bytes():
                found.append((pid, state[2]))
        except OSError:
            continue
    pids = {pid for pid, _ in found}
    supervisors = [pid for pid, ppid in found if ppid not in pids]
    assert len(supervisors) == 1, f"not one supervisor among {found}"
    return supervisors[0], sorted(pid for pid, ppid in found if ppid == supervisors[0])


def check_no_partial_rows(s):
    """Every reply hangs under a user message of its chat; every message_count is the shown rows of
    the active path; a reply row a killed worker left generating holds nothing."""
    problems = []
    for chat_id, count in s.sql("SELECT id, message_count FROM chats"):
        found = s.sql("SELECT m.id, m.role, m.active, m.state, m.content, p.role FROM messages m "
                      "LEFT JOIN messages p ON p.id = m.parent_id WHERE m.chat_id = ? ORDER BY m.id", (chat_id,))
        shown = [r for r in found if r[2] == 1 and r[3] < 2]
        if count != len(shown):
            problems.append(f"chat {chat_id}: message_count {count}, {len(shown)} shown rows")
        for mid, role, _, state, content, parent_role in found:
            if role == "assistant" and parent_role != "user":
                problems.append(f"chat {chat_id}: reply {mid} does not hang under a user message: {found}")
                break
            if state >= 2 and content != "":
                problems.append(f"chat {chat_id}: hidden row {mid} (state {state}) holds {content!r}")
    if ENGINE == "sqlite":  # PostgreSQL has no file-level check; its WAL keeps what committed
        assert s.sql("PRAGMA integrity_check") == [("ok",)], s.sql("PRAGMA integrity_check")
    assert not problems, "\n".join(problems[:20])


def post_chat(s, chat_id, user, message, timeout=30):
    """POST /chat; (status, decoded body or raw text, seconds) — never raises for a dropped connection."""
    started = time.monotonic()
    try:
        resp = s.request("POST", "/chat", json={"chat_id": chat_id, "user_id": user, "message": message},
                         timeout=timeout, validate=False)
    except OSError as e:
        return f"no answer ({type(e).__name__}: {e})", None, time.monotonic() - started
    try:
        data = resp.data()
    except ValueError:
        data = resp.body[:200]
    return resp.status, data, time.monotonic() - started


@test
def sigkill_of_a_worker_during_100_chats():
    with FakeProvider(delay=1) as p, \
            Stack(env=model_env(p, WORKER_PROCESSES="2", WORKER_THREADS="64", PROVIDER_TIMEOUT_S="20")) as s:
        chats = [(user, create_chat(s, user)["id"]) for user in (new_user("kill") for _ in range(100))]
        supervisor, children = supervisor_and_children(s)
        assert len(children) == 2, f"expected 2 worker processes, found {children}"
        with ThreadPoolExecutor(100) as pool:
            futures = [pool.submit(post_chat, s, chat_id, user, f"hello {i} {tag()}")
                       for i, (user, chat_id) in enumerate(chats)]
            time.sleep(0.3)
            victim = children[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            # the supervisor restores the pool
            while True:
                now_supervisor, now = supervisor_and_children(s)
                if now_supervisor == supervisor and len(now) == 2 and victim not in now:
                    break
                assert time.monotonic() - killed_at < 5, f"the pool was not restored within 5 s: {now}"
                time.sleep(0.05)
            restored = time.monotonic() - killed_at
            results = [f.result(timeout=60) for f in futures]
        ok = [r for r in results if r[0] == 200]
        failed = [r for r in results if r[0] != 200]
        print(f"    pool restored {restored:.2f} s after SIGKILL; {len(ok)} chats answered, {len(failed)} failed "
              f"({sorted({str(r[0]) for r in failed})}); slowest {max(r[2] for r in results):.2f} s", flush=True)
        wrong = [r for r in failed if r[0] not in (502, 503) or not isinstance(r[1], dict)
                 or not isinstance(r[1].get("detail"), str)]
        assert not wrong, f"failures that are not a 502/503 JSON answer: {wrong[:5]}"
        assert ok, "no chat was answered: the other worker did not carry on"
        for status, data, _ in ok:
            assert data["reply"].startswith("Echo: hello "), data
        # later requests succeed, on whichever process
        user, chat_id = new_user("after"), None
        chat_id = create_chat(s, user)["id"]
        for i in range(6):
            status, data, _ = post_chat(s, chat_id, user, f"after the kill {i}")
            assert status == 200, f"a chat after the kill: {status} {data!r}"
            check_reply(data, chat_id, f"Echo: after the kill {i}")
        check_no_partial_rows(s)
        # every answered chat has its two rows
        for status, data, _ in ok:
            rows = s.sql("SELECT id, role FROM messages WHERE chat_id = ? ORDER BY id", (data["chat_id"],))
            assert rows == [(data["user_message_id"], "user"), (data["message_id"], "assistant")], rows


# --------------------------------------------------------------------------------------------------
# Mount namespaces and tmpfs


def can_mount():
    """None when this process may mount (a tmpfs, tried), else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "unshare or mount is missing"
    probe = tempfile.mkdtemp(prefix="ai-chat-e2e-probe-")
    try:
        done = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs",
                               "-o", "size=1m", "tmpfs", probe], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            return f"mounting is not permitted here: {done.stderr.strip()}"
    finally:
        os.rmdir(probe)
    return None


def read_only_wrapper(directory, tmp):
    """A WORKER for conf/stack.sh: the worker in a mount namespace of its own in which directory is a
    read-only bind mount of itself (the test, outside, still sees it writable)."""
    path = Path(tmp) / "ro-worker.sh"
    path.write_text(
        "#!/bin/sh\n"
        "exec unshare -m --propagation private /bin/sh -c "
        "'mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && shift && exec \"$@\"' "
        f"sh '{directory}' '{WORKER}' \"$@\"\n")
    path.chmod(0o755)
    return str(path)


def expect_db_unavailable(s, method, path, **kwargs):
    _, data = expect(s, method, path, 503, **kwargs)
    assert set(data) == {"detail"} and data["detail"].startswith("Database unavailable: "), data
    return data


def integrity(db):
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


@test
def read_only_database():
    sqlite_only("a read-only database file (PostgreSQL: test_pg_faults.py)")
    why = can_mount()
    if why:
        skip(f"read_only_database: {why}")
        return
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-ro-"))
    try:
        db = keep / "ro.db"
        settings = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "4", "DB_BUSY_TIMEOUT_MS": "500"}
        user = new_user("ro")
        with Stack(env=settings, database_url=f"sqlite:///{db}", db_file=db) as s:
            chat = create_chat(s, user, "before")
            # A connection held open here keeps the -wal and -shm files when the worker stops: a WAL
            # database on a read-only mount can only be read when they exist.
            holder = s.db()
            holder.execute("SELECT count(*) FROM chats").fetchall()
        with contextlib.closing(holder), Stack(env=dict(settings, WORKER=read_only_wrapper(keep, keep)), database_url=f"sqlite:///{db}",
                   db_file=db) as s:
            expect(s, "GET", "/health", 200, {"status": "healthy"})
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
            expect(s, "GET", "/chats" + qs(user_id=user), 200, {"chats": [chat], "total": 1})
            expect_db_unavailable(s, "POST", "/chats", json={"user_id": user, "title": "refused"})
            expect_db_unavailable(s, "PATCH", chat_path(chat["id"], user_id=user), json={"title": "refused"})
            expect_db_unavailable(s, "DELETE", chat_path(chat["id"], user_id=user))
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
        assert integrity(db) == [("ok",)], integrity(db)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM chats WHERE user_id = ?", (user,)).fetchone()[0] == 1
    finally:
        shutil.rmtree(keep, ignore_errors=True)


@test
def disk_full():
    sqlite_only("the database file's disk filling up")
    why = can_mount()
    if why:
        skip(f"disk_full: {why}")
        return
    mnt = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-full-"))
    mounted = False
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            skip(f"disk_full: mount -t tmpfs failed: {done.stderr.strip()}")
            return
        mounted = True
        db = mnt / "full.db"
        with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "4", "DB_BUSY_TIMEOUT_MS": "500"},
                   database_url=f"sqlite:///{db}", db_file=db) as s:
            user = new_user("full")
            first = create_chat(s, user, "before the disk filled")
            filler = mnt / "filler"
            # unbuffered: a buffered file keeps the part of its last write that did not fit, and fails
            # again on closing
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
            created, refused = 1, None
            for i in range(3000):   # until the WAL cannot grow
                resp = s.request("POST", "/chats", json={"user_id": user, "title": f"{i:04d}" + "t" * 196})
                if resp.status == 201:
                    created += 1
                    continue
                refused = resp
                break
            assert refused is not None, "3000 chats were stored on a full disk"
            data = json.loads(refused.body)
            assert refused.status == 503 and data["detail"].startswith("Database unavailable: "), \
                refused.describe()
            print(f"    {created - 1} more chats fit, then: {data['detail']}", flush=True)
            # reads go on, and hold exactly what was answered 201
            _, listing = expect(s, "GET", "/chats" + qs(user_id=user, limit=1), 200)
            assert listing["total"] == created, f"total {listing['total']}, {created} chats answered 201"
            expect(s, "GET", chat_path(first["id"], user_id=user), 200, first)
            assert integrity(db) == [("ok",)], integrity(db)
            filler.unlink()
            create_chat(s, user, "after the disk had room again")
            assert integrity(db) == [("ok",)], integrity(db)
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], capture_output=True)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Every provider fault ends within the configured timeouts


TIMEOUT_S, RETRIES, BACKOFF_S = 2, 1, 0.5
BOUND_S = (RETRIES + 1) * (TIMEOUT_S + BACKOFF_S) + 1   # 2 * (2 + 0.5) + 1 = 6 s

FAULTS = [  # name, directives, stream
    ("hang", "#fault=hang", False), ("hang_stream", "#fault=hang", True),
    ("drop", "#fault=drop", False), ("drop_stream", "#fault=drop", True),
    ("malformed", "#fault=malformed", False), ("malformed_stream", "#fault=malformed", True),
    ("500", "#fault=500", False), ("500_stream", "#fault=500", True),
    ("midstream", "#fault=midstream #words=20", True),
    ("delay_10", "#delay=10", False), ("delay_10_stream", "#delay=10", True),
]


def one_fault(s, directives, stream):
    """Sends the fault; (seconds, what ended it) or raises AssertionError when it ended wrongly."""
    user = new_user("fault")
    chat_id = create_chat(s, user)["id"]
    message = f"{directives} {tag()}"
    started = time.monotonic()
    if not stream:
        status, data, _ = post_chat(s, chat_id, user, message, timeout=30)
        took = time.monotonic() - started
        assert status == 503 and isinstance(data, dict) and data["detail"].startswith("Failed to get AI response: "), \
            f"{status} {data!r}"
        return took, data["detail"]
    with stream_chat(s, chat_id, user, message) as st:
        if st.status != 200:
            body = json.loads(st.resp.read())
            took = time.monotonic() - started
            assert st.status == 503 and body["detail"].startswith("Failed to get AI response: "), (st.status, body)
            return took, f"{st.status} {body['detail']}"
        events = st.read_all()
        took = time.monotonic() - started
    assert events and events[-1].name == "error", f"the stream did not end with an error event: {events!r}"
    detail = events[-1].json()["detail"]
    assert detail.startswith("Failed to get AI response: "), detail
    return took, f"error event: {detail}"


@test
def provider_faults_end_within_the_timeouts():
    with FakeProvider() as p, \
            Stack(env=model_env(p, PROVIDER_TIMEOUT_S=str(TIMEOUT_S), PROVIDER_RETRIES=str(RETRIES),
                                PROVIDER_CONNECT_TIMEOUT_MS="500", WORKER_PROCESSES="1",
                                WORKER_THREADS="16")) as s:
        with ThreadPoolExecutor(len(FAULTS)) as pool:
            futures = {name: pool.submit(one_fault, s, directives, stream) for name, directives, stream in FAULTS}
            wrong = []
            for name, future in futures.items():
                try:
                    took, what = future.result(timeout=60)
                except AssertionError as e:
                    wrong.append(f"{name}: {e}")
                    continue
                print(f"    {name}: {took:.2f} s: {what}", flush=True)
                if took > BOUND_S:
                    wrong.append(f"{name}: answered after {took:.2f} s, more than {BOUND_S} s")
        assert not wrong, "\n".join(wrong)
        expect(s, "GET", "/health", 200, {"status": "healthy"})
