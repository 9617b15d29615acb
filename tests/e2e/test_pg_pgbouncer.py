"""The chat core through Debian's PgBouncer in transaction pooling (what Neon's and Supabase's poolers
are), with DB_PREPARED=0: unnamed statements only, nothing kept in a session, the timeouts set per
transaction. PostgreSQL runs only."""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from api import chat_path, check_chat_stored, create_chat, expect, new_user, qs
from harness import Stack, free_port, pg_cluster, postgres_only, test
from provider import FakeProvider, check_reply, check_stored_reply, model_env, rows, send, stream_chat, tag

PGBOUNCER = "/usr/sbin/pgbouncer"


class PgBouncer:
    """pgbouncer on a free loopback port in front of the run's cluster, pool_mode = transaction, with
    few server connections (so that sessions really are shared)."""

    def __init__(self, cluster, pool_size=4):
        self.cluster = cluster
        self.dir = tempfile.mkdtemp(prefix="ai-chat-pgbouncer-")
        self.port = free_port()
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"ai" ""\n')
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as f:
            f.write(f"""[databases]
* = host={cluster.socket_dir} port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
logfile = {self.dir}/pgbouncer.log
pidfile =
""")
        os.chmod(self.dir, 0o755)
        cmd = [PGBOUNCER, os.path.join(self.dir, "pgbouncer.ini")]
        if os.geteuid() == 0:   # pgbouncer refuses to run as root
            pw = pwd.getpwnam("postgres")
            for name in os.listdir(self.dir):
                os.chown(os.path.join(self.dir, name), pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with contextlib.closing(__import__("socket").create_connection(("127.0.0.1", self.port), 1)):
                    break
            except OSError:
                assert self.proc.poll() is None, f"pgbouncer exited: {self.log()}"
                assert time.monotonic() < deadline, f"pgbouncer did not listen: {self.log()}"
                time.sleep(0.05)

    def url(self, database):
        return f"postgresql://ai@127.0.0.1:{self.port}/{database}"

    def log(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


@contextlib.contextmanager
def bounced_database(pool_size=4):
    postgres_only("PgBouncer in front of PostgreSQL")
    cluster = pg_cluster()
    name = f"bounced_{tag()}"
    cluster.create_database(name)
    try:
        with PgBouncer(cluster, pool_size) as bouncer:
            yield cluster, bouncer, name
    finally:
        cluster.drop_database(name)


@test
def chat_core_through_pgbouncer_in_transaction_pooling():
    with bounced_database() as (cluster, bouncer, name), FakeProvider() as p, \
            Stack(env=model_env(p, DB_PREPARED="0", WORKER_PROCESSES="2", WORKER_THREADS="8"),
                  database_url=bouncer.url(name)) as s:
        assert "pool_mode = transaction" in open(os.path.join(bouncer.dir, "pgbouncer.ini")).read()
        user = new_user("bouncer")
        chats = [create_chat(s, user, f"chat {i}") for i in range(5)]
        expect(s, "GET", "/chats" + qs(user_id=user, limit=2), 200,
               {"chats": chats[::-1][:2], "total": 5})
        _, renamed = expect(s, "PATCH", chat_path(chats[0]["id"], user_id=user), 200, json={"title": "renamed"})
        check_chat_stored(s, renamed)
        chat_id = chats[1]["id"]
        t = tag()
        for i in range(6):
            status, _, data = send(s, chat_id, user, f"hello {i} {t}")
            assert status == 200, data
            check_reply(data, chat_id, f"Echo: hello {i} {t}")
            check_stored_reply(s, data)
        with stream_chat(s, chat_id, user, f"streamed {t}") as stream:
            events = stream.read_all()
        assert events[-1].name == "done", events
        check_reply(events[-1].json(), chat_id, f"Echo: streamed {t}")
        key = f"key-{t}"
        status, _, first = send(s, chat_id, user, f"keyed {t}", headers={"Idempotency-Key": key})
        assert status == 200, first
        status, headers, again = send(s, chat_id, user, f"keyed {t}", headers={"Idempotency-Key": key})
        assert status == 200 and again == first and headers.get("idempotent-replayed") == "true"
        _, page = expect(s, "GET", chat_path(chat_id, "/messages", user_id=user, limit=4, newest="true"), 200)
        assert [m["role"] for m in page] == ["user", "assistant", "user", "assistant"], page
        assert len(rows(s, chat_id)) == 16
        expect(s, "GET", chat_path(chat_id, user_id=user), 200)
        resp = s.request("DELETE", chat_path(chats[2]["id"], user_id=user))
        assert resp.status == 204, resp.describe()
        assert s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user,))[0][0] == 4
        # the statements were unnamed: PgBouncer 1.18 would have lost named ones between transactions
        assert "prepared statement" not in s.log_tail(400), s.log_tail(400)
        # the server saw few connections, each shared by many transactions
        servers = int(cluster.psql(name, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                         " AND application_name <> 'psql'").strip() or 0)
        assert servers <= 4, f"{servers} server connections behind a pool of 4"


@test
def timeouts_hold_through_pgbouncer():
    with bounced_database() as (cluster, bouncer, name), \
            Stack(env={"DB_PREPARED": "0", "WORKER_PROCESSES": "1", "WORKER_THREADS": "4",
                       "DB_STATEMENT_TIMEOUT_MS": "300", "DB_BUSY_TIMEOUT_MS": "20000"},
                  database_url=bouncer.url(name)) as s:
        user = new_user()
        chat = create_chat(s, user, "before")
        lock = s.db()   # straight to the server (the harness's connection), holding every table
        try:
            lock.execute("BEGIN; LOCK TABLE chats, messages, idempotency_keys IN ACCESS EXCLUSIVE MODE")
            for method, path, body in (("GET", chat_path(chat["id"], user_id=user), None),
                                       ("POST", "/chats", {"user_id": user})):
                started = time.monotonic()
                kwargs = {} if body is None else {"json": body}
                _, data = expect(s, method, path, 503, **kwargs)
                waited = time.monotonic() - started
                assert data["detail"].startswith("Database unavailable: ") and "statement timeout" in data["detail"], data
                assert 0.25 <= waited < 5, f"{method}: {waited:.2f} s"
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
