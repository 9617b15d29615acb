"""The database becoming unavailable (503) and stopping: SIGTERM finishes the requests in flight."""

import contextlib
import fcntl
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from api import chat_path, check_chat, check_chat_stored, count_chats, create_chat, db_chat, expect, new_user
from harness import Stack, command_line, describe_processes, encode_json, parent_pid, read_response, sqlite_only, test

# SQLite's unix VFS locks bytes of the -shm file: 120 the WAL writer, 121 checkpointer, 122 recovery,
# 123..127 the read marks. Holding them all from another process stops every read and write (WAL readers
# give up after about 10 s with SQLITE_PROTOCOL, writers after the busy timeout).
SHM_LOCKS_START, SHM_LOCKS_LEN = 120, 8


def expect_unavailable(s, method, path, **kwargs):
    _, data = expect(s, method, path, 503, **kwargs)
    assert set(data) == {"detail"} and data["detail"].startswith("Database unavailable: "), data


@contextlib.contextmanager
def database_locked_out(db_path):
    """Holds every WAL lock of the database (POSIX locks: this process must not open and close the file
    meanwhile, which would drop them)."""
    fd = os.open(f"{db_path}-shm", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, SHM_LOCKS_LEN, SHM_LOCKS_START)
        yield
    finally:
        os.close(fd)


@test
def health_503_when_database_is_unusable():
    sqlite_only("the WAL's locks in the -shm file (PostgreSQL: test_pg_faults.py restarts the server)")
    with Stack(env={"DB_BUSY_TIMEOUT_MS": "200", "WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        chat = create_chat(s, user, "before")
        with database_locked_out(s.db_path):
            expect_unavailable(s, "GET", "/health")  # after about 10 s (SQLite's WAL read retries)
        expect(s, "GET", "/health", 200, {"status": "healthy"})
        expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
        assert count_chats(s, user) == 1


@test
def write_busy_past_timeout_is_503():
    with Stack(env={"DB_BUSY_TIMEOUT_MS": "300", "WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as s:
        user = new_user()
        chat = create_chat(s, user, "before")
        with contextlib.closing(s.db()) as lock:
            lock.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            expect_unavailable(s, "POST", "/chats", json={"user_id": user})
            waited = time.monotonic() - started
            assert waited >= 0.25, f"answered after {waited:.3f} s: did not wait DB_BUSY_TIMEOUT_MS"
            expect_unavailable(s, "PATCH", chat_path(chat["id"], user_id=user), json={"title": "after"})
            expect_unavailable(s, "DELETE", chat_path(chat["id"], user_id=user))
            # readers do not wait for a writer (WAL)
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
            lock.execute("ROLLBACK")
        assert count_chats(s, user) == 1
        check_chat_stored(s, chat)
        create_chat(s, user, "after the lock")


def slow_post(s, user, title):
    """Starts a POST /chats whose body is half sent; returns (socket, rest of the body)."""
    body = encode_json({"user_id": user, "title": title})
    sock = s.connect()
    sock.sendall(b"POST /chats HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
    return sock, body[10:]


@test
def sigterm_finishes_requests_in_flight():
    s = Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "4", "DB_BUSY_TIMEOUT_MS": "30000"}).start()
    try:
        user = new_user()
        sock, rest = slow_post(s, user, "slow body")
        lock = s.db()
        lock.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(s.json, "POST", "/chats", json={"user_id": user, "title": f"waiting {i}"})
                       for i in range(3)]
            time.sleep(1.0)
            assert not any(f.done() for f in waiting), "a write did not wait for the lock"
            s.terminate()
            time.sleep(1.0)
            lock.execute("ROLLBACK")
            lock.close()
            sock.sendall(rest)
            slow = read_response(sock, "POST")
            sock.close()
            assert slow.status == 201, f"the request whose body was arriving: {slow.describe()}"
            for i, future in enumerate(waiting):
                status, _, chat = future.result(timeout=30)
                assert status == 201, f"waiting {i}: {status} {chat!r}"
                check_chat(chat, user, f"waiting {i}")
        left = s.wait_stopped(10)
        assert not left, f"processes left after SIGTERM: {describe_processes(left)}"
        assert count_chats(s, user) == 4
    finally:
        s.stop()


@test
def idle_stack_stops_promptly():
    for stop in ("sigterm_to_stack_script", "sigint_to_group", "sigterm_to_group"):
        s = Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "4"}).start()
        try:
            running = s.leftover_processes()
            if stop == "sigterm_to_stack_script":
                s.terminate()
            else:
                os.killpg(s.proc.pid, signal.SIGINT if stop == "sigint_to_group" else signal.SIGTERM)
            left = s.wait_stopped(5)
            assert not left, f"{stop}: still running after 5 s: {describe_processes(left)}\n{s.log_tail()}"
            assert len(running) >= 4, f"expected stack.sh, nginx and workers: {describe_processes(running)}"
        finally:
            s.stop()


def worker_children(s):
    """The worker processes forked by the supervisor: (supervisor pid, [child pids])."""
    workers = [pid for pid in s.leftover_processes() if "ai-chat-fcgi" in command_line(pid)]
    supervisors = [pid for pid in workers if parent_pid(pid) not in workers]
    assert len(supervisors) == 1, f"not one supervisor: {describe_processes(workers)}"
    return supervisors[0], [pid for pid in workers if pid != supervisors[0]]


def replaced(s, supervisor, dead):
    now_supervisor, now = worker_children(s)
    return now_supervisor == supervisor and len(now) == 2 and dead not in now


@test
def dead_worker_process_is_restarted():
    with Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        chat = create_chat(s, user)
        supervisor, children = worker_children(s)
        assert len(children) == 2, f"expected 2 worker processes: {describe_processes(children)}"
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not replaced(s, supervisor, children[0]):
            if time.monotonic() > deadline:
                raise AssertionError(f"the killed worker was not replaced within 5 s: {worker_children(s)}")
            time.sleep(0.1)
        for _ in range(20):
            expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
        assert db_chat(s, chat["id"]) is not None
