"""A tiny test framework and a controller for the real stack (nginx + the worker, conf/stack.sh).

Python's standard library, and python3-jsonschema (Debian's, for openapi_check): /usr/bin/python3 runs it.
Every response received through Stack.request/.json/.raw is checked against the OpenAPI document
(conf/docs/openapi.json, openapi_check.py); a response that does not conform fails the test that made the
request. E2E_NO_SCHEMA=1 turns that off (for debugging); so does a document without paths.

    @test
    def chat_is_created():
        s = default_stack()
        status, headers, body = s.json("POST", "/chats", json={"user_id": "u1"})

    with Stack(env={"MAX_BODY_BYTES": "2048"}) as s:   # a stack of its own
        ...
"""

import contextlib
import http.client
import io
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import namedtuple
from pathlib import Path

import openapi_check

sys.path.insert(0, str(Path(os.path.abspath(__file__)).parent.parent))
import pgcluster  # noqa: E402  (tests/pgcluster.py)

# The repository root, from this file's location (not resolving symlinks, so a checkout that links
# tests/e2e from elsewhere is tested as itself).
ROOT = Path(os.path.abspath(__file__)).parent.parent.parent
WORKER = ROOT / "build" / "ai-chat-fcgi"
STACK_SCRIPT = ROOT / "conf" / "stack.sh"

# Settings that must not leak from the caller's environment into a test stack.
SETTINGS = (
    "DATABASE_URL", "PORT", "WORKER_PROCESSES", "WORKER_THREADS", "MAX_BODY_BYTES", "MAX_IMPORT_BYTES", "CORS_ORIGINS",
    "DB_BUSY_TIMEOUT_MS", "FCGI_SOCKET", "FCGI_SOCKET_MODE", "FCGI_SOCKET_GROUP", "RUN_DIR", "WORKER",
    "NGINX_WORKERS", "ACCESS_LOG", "GROQ_API_KEY", "GROQ_BASE_URL", "MODELS_FILE", "SYSTEM_PROMPT",
    "PROVIDER_CONNECT_TIMEOUT_MS", "PROVIDER_TIMEOUT_S", "PROVIDER_RETRIES", "PROVIDER_MAX_RESPONSE_BYTES",
    "SSE_HEARTBEAT_S", "FCGI_READ_TIMEOUT_S", "REASONING", "EVENT_LOOP", "CLIENT_QUEUE_BYTES", "PAGE_CACHE_BYTES",
    "LOG_FORMAT", "TRUST_REQUEST_ID", "METRICS", "METRICS_ALLOW",
    "AUTH", "JWT_SECRET", "ACCESS_TOKEN_EXPIRE_MINUTES", "REGISTRATION", "LOGIN_WINDOW_S",
    "LOGIN_MAX_FAILURES_PER_EMAIL", "LOGIN_MAX_FAILURES_PER_ADDR", "PASSWORD_HASH_CONCURRENCY",
    "PASSWORD_HASH_MEMORY_KIB", "PASSWORD_HASH_PASSES", "AI_CHAT_CONFIG", "JWT_PUBLIC_KEY_FILE", "JWT_ISSUER",
    "JWT_AUDIENCE",
    "CHAT_RATE_PER_MINUTE", "TOKENS_PER_DAY", "CHAT_CONCURRENCY_PER_USER", "AUTO_TITLE", "RETENTION_DAYS",
    "RETENTION_INTERVAL_S",
)

# What a test stack runs with unless its test says otherwise: the per-user limits and the automatic
# titles off (tests that send many messages as one user, or count the provider's calls, predate them;
# tests/e2e/test_user_limits.py and test_auto_title.py turn them on).
STACK_DEFAULTS = {"CHAT_RATE_PER_MINUTE": "0", "CHAT_CONCURRENCY_PER_USER": "0", "AUTO_TITLE": "0"}

# The database engine of this run: E2E_DB=sqlite (the default) or postgres (a throwaway cluster made
# with initdb for the run, a fresh database in it for every stack).
ENGINE = os.environ.get("E2E_DB", "sqlite")
if ENGINE not in ("sqlite", "postgres"):
    raise SystemExit(f"E2E_DB must be sqlite or postgres, not {ENGINE!r}")

START_TIMEOUT = 15
STOP_TIMEOUT = 10
REQUEST_TIMEOUT = 30

# --------------------------------------------------------------------------------------------------
# Tests


class TestCase:
    def __init__(self, name, fn):
        self.name = name
        self.fn = fn


TESTS = []


class Skip(Exception):
    """Raised by a test that does not apply to this run (its message says why)."""


def sqlite_only(why):
    """Skips the calling test on PostgreSQL: why names the SQLite-specific thing it tests."""
    if ENGINE != "sqlite":
        raise Skip(f"SQLite only: {why}")


def postgres_only(why):
    if ENGINE != "postgres":
        raise Skip(f"PostgreSQL only: {why}")


def test(fn):
    """Registers fn as a test named <module>.<function> (module without its test_ prefix)."""
    module = fn.__module__.rsplit(".", 1)[-1]
    if module.startswith("test_"):
        module = module[len("test_"):]
    add_test(f"{module}.{fn.__name__}", fn)
    return fn


def add_test(name, fn):
    """Registers fn under an explicit name (for tests generated from a table)."""
    if any(t.name == name for t in TESTS):
        raise ValueError(f"duplicate test name {name}")
    TESTS.append(TestCase(name, fn))


_default_stack = None
_default_stack_failed = False


def default_stack():
    """The stack most tests share: started on first use, stopped by the runner at the end.
    If it cannot start, the later tests that need it fail at once instead of each waiting."""
    global _default_stack, _default_stack_failed
    if _default_stack is None:
        if _default_stack_failed:
            raise StackError("the shared stack could not start (see the first test that needed it)")
        _default_stack_failed = True
        _default_stack = Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "8"}).start()
        _default_stack_failed = False
    return _default_stack


def stop_default_stack():
    """Stops the shared stack; returns a problem description or None."""
    global _default_stack
    if _default_stack is None:
        return None
    stack, _default_stack = _default_stack, None
    stack.stop()
    return stack.stop_problem


def _default_stack_death():
    """If the shared stack has exited, cleans it up and describes it (with its log); else None."""
    global _default_stack
    if _default_stack is None or _default_stack.proc.poll() is None:
        return None
    stack, _default_stack = _default_stack, None
    description = f"conf/stack.sh exited with status {stack.proc.returncode}\n{stack.log_tail()}"
    stack.stop()
    return description


def run_tests(pattern=""):
    """Runs the registered tests whose name contains pattern; returns the process exit status."""
    selected = [t for t in TESTS if pattern in t.name]
    passed = failed = skipped = 0
    try:
        for case in selected:
            outcome = _run_one(case.name, case.fn)
            if outcome is None:
                skipped += 1
            elif outcome:
                passed += 1
            else:
                failed += 1
    finally:
        problem = stop_default_stack()
        if problem:
            print(f"FAIL shared-stack-shutdown: {problem}", flush=True)
            failed += 1
        stop_pg_cluster()
    name = "e2e" if ENGINE == "sqlite" else "e2e-pg"
    print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def _run_one(name, fn):
    """Runs one test, prints PASS, SKIP or FAIL (with the traceback); returns whether it passed (None:
    skipped)."""
    reason = details = None
    try:
        fn()
    except Skip as e:
        if _default_stack_death() is None:
            print(f"SKIP {name}: {e}", flush=True)
            return None
        reason = "the shared stack died during this test"
        details = ""
    except Exception as e:  # noqa: BLE001 - a test fails on any exception
        first = str(e).splitlines()[0] if str(e) else ""
        reason = f"{type(e).__name__}: {first}"
        details = "".join(traceback.format_exception(e))
    died = _default_stack_death()
    if died:
        reason = reason or "the shared stack died during this test (the next test starts another)"
        details = (details or "") + died
    if reason is None:
        print(f"PASS {name}", flush=True)
        return True
    print(f"FAIL {name}: {reason}", flush=True)
    print("    " + details.rstrip().replace("\n", "\n    "), flush=True)
    return False


# --------------------------------------------------------------------------------------------------
# HTTP


class Response(namedtuple("Response", "status headers body")):
    """status: int; headers: dict with lower-case names (repeated headers joined by ", "); body: bytes."""

    def data(self):
        return jsonlib.loads(self.body.decode("utf-8"))

    def describe(self):
        text = self.body[:600].decode("utf-8", "replace")
        return f"{self.status} {self.headers} {text!r}"


def _collect_headers(pairs):
    headers = {}
    for name, value in pairs:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class _Recorder(io.RawIOBase):
    """A socket's input that keeps a copy of every byte read."""

    def __init__(self, sock):
        self.sock = sock
        self.data = bytearray()

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self.sock.recv_into(buffer)
        self.data += memoryview(buffer)[:n]
        return n


class _RecordingSocket:
    """Enough of a socket for http.client.HTTPResponse, recording what it reads."""

    def __init__(self, sock):
        self.recorder = _Recorder(sock)

    def makefile(self, *args, **kwargs):
        return io.BufferedReader(self.recorder)


def read_response(sock, method):
    """Reads one response from a socket (by its Content-Length or chunks, not waiting for the close);
    the Response keeps the raw bytes received in .raw."""
    recording = _RecordingSocket(sock)
    resp = http.client.HTTPResponse(recording, method=method)
    resp.begin()
    parsed = Response(resp.status, _collect_headers(resp.getheaders()), resp.read())
    parsed.raw = bytes(recording.recorder.data)
    return parsed


_UNSET = object()


def encode_json(value):
    return jsonlib.dumps(value, ensure_ascii=False).encode("utf-8")


def assert_json_type(resp):
    ctype = resp.headers.get("content-type", "")
    media = ctype.split(";")[0].strip().lower()
    assert media == "application/json", f"Content-Type {ctype!r} is not application/json: {resp.describe()}"


# --------------------------------------------------------------------------------------------------
# The stack


class StackError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_field(pid, name):
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def command_line(pid):
    return _proc_field(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()


def describe_processes(pids):
    return ", ".join(f"{pid} ({command_line(pid)})" for pid in pids)


def parent_pid(pid):
    state = _process_state(pid)
    return state and state[2]


def _process_state(pid):
    """(state, pgrp, ppid) of a process from /proc/<pid>/stat, or None if it is gone."""
    stat = _proc_field(pid, "stat").decode("ascii", "replace")
    if not stat:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[1])


class Stack:
    """nginx + the worker on a free port with a fresh database in a temporary directory.

    env: extra settings (a value of None removes the setting). dotenv: text of a .env file written in
    the working directory (the temporary directory). database_url: instead of the temporary test.db
    (db_path then names the file it points to, relative paths from the temporary directory).
    """

    def __init__(self, env=None, dotenv=None, database_url=None, db_file=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = self.tmp / "run"
        self.log_path = self.tmp / "stack.log"
        self.db_path = self.tmp / (db_file or "test.db")
        self.pg_database = None
        if database_url is None and ENGINE == "postgres":
            cluster = pg_cluster()
            self.pg_database = f"e2e_{os.getpid()}_{next(_database_numbers)}"
            database_url = cluster.create_database(self.pg_database)
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self.env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        self.env.update(STACK_DEFAULTS)
        self.env.update({
            "DATABASE_URL": self.database_url,
            "RUN_DIR": str(self.run_dir),
            "PORT": str(self.port),
            # The API as it was before accounts (user_id in the request): the account tests
            # (test_auth*.py) start their stacks with AUTH=token or remote-user.
            "AUTH": "none",
        })
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = str(value)
        if dotenv is not None:
            (self.tmp / ".env").write_text(dotenv)
        self.proc = None
        self.stop_problem = None
        self._log = None
        self._stopped = False

    # -- lifecycle

    def start(self):
        if not WORKER.exists():
            raise StackError(f"{WORKER} does not exist: run make")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["/bin/bash", str(STACK_SCRIPT)], cwd=self.tmp, env=self.env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self._fail_start(f"conf/stack.sh exited with status {self.proc.returncode}")
            try:
                if self.request("GET", "/health", timeout=1, validate=False).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._fail_start(f"GET /health did not answer 200 within {START_TIMEOUT} s")
            time.sleep(0.05)

    def _fail_start(self, why):
        tail = self.log_tail()
        self.stop()
        raise StackError(f"the stack did not start: {why}\n{tail}")

    def log_tail(self, lines=40):
        parts = []
        for path in (self.log_path, self.run_dir / "error.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}:\n" + "\n".join(text))
        return "\n".join(parts)

    def terminate(self):
        """SIGTERM to conf/stack.sh alone (it stops nginx gracefully and signals the worker)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout=STOP_TIMEOUT):
        """Waits for conf/stack.sh and every process of the stack to be gone; returns the leftovers."""
        deadline = time.monotonic() + timeout
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not self.leftover_processes():
                return []
            time.sleep(0.05)
        return self.leftover_processes() or ([self.proc.pid] if self.proc.poll() is None else [])

    def leftover_processes(self):
        """Live processes of this stack: in its process group, or naming its temporary directory in
        their command line or environment (a worker that left the group still has DATABASE_URL)."""
        mark = str(self.tmp).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            state = _process_state(pid)
            if state is None or state[0] in ("Z", "X"):
                continue
            if (state[1] == self.proc.pid or mark in _proc_field(pid, "cmdline")
                    or mark in _proc_field(pid, "environ")):
                found.append(pid)
        return found

    def stop(self):
        """SIGTERM to the process group, up to STOP_TIMEOUT s, then SIGKILL; cleans up the directory.
        A stack that needed SIGKILL or left processes behind is recorded in stop_problem."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal_group(signal.SIGTERM)
            left = self.wait_stopped()
            if left:
                self.stop_problem = (f"processes still running {STOP_TIMEOUT} s after SIGTERM: "
                                     f"{describe_processes(left)}\n{self.log_tail()}")
                self._signal_group(signal.SIGKILL)
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.wait_stopped(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        # Under make test SANITIZE=1, a report from ASan, LSan or UBSan (a leak shows only at exit)
        # fails the stack's test.
        try:
            with open(self.log_path, errors="replace") as f:
                log = f.read()
        except (OSError, AttributeError):
            log = ""
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if mark in log and not self.stop_problem:
                at = log.index(mark)
                self.stop_problem = f"sanitizer report in the stack's log:\n{log[max(0, at - 200):at + 3000]}"
        if os.environ.get("E2E_KEEP"):
            print(f"    (kept {self.tmp}{' and database ' + self.pg_database if self.pg_database else ''})",
                  flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.pg_database and _pg is not None:
                _pg.drop_database(self.pg_database)

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is None and self.stop_problem:
            raise StackError(f"the stack did not stop cleanly: {self.stop_problem}")
        return False

    # -- HTTP

    def request(self, method, path, body=None, headers=None, json=_UNSET, timeout=REQUEST_TIMEOUT,
                validate=True):
        """One request on a new connection; json= sends a JSON body with Content-Type: application/json
        (unless headers set another). Returns Response(status, headers, body), checked against the
        OpenAPI document unless validate is false (check_schema)."""
        headers = dict(headers or {})
        if json is not _UNSET:
            body = encode_json(json)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            parsed = Response(resp.status, _collect_headers(resp.getheaders()), data)
        finally:
            conn.close()
        if validate:
            check_schema(method, path, parsed, headers, body)
        return parsed

    def json(self, method, path, **kwargs):
        """request(), then checks Content-Type: application/json and decodes the body.
        Returns (status, headers, decoded body) (None for an empty body, e.g. HEAD)."""
        resp = self.request(method, path, **kwargs)
        assert_json_type(resp)
        data = None
        if resp.body:
            try:
                data = resp.data()
            except ValueError as e:
                raise AssertionError(f"the body is not JSON ({e}): {resp.describe()}") from None
        return resp.status, resp.headers, data

    def connect(self, timeout=REQUEST_TIMEOUT):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data, method=None, body_chunks=(), timeout=REQUEST_TIMEOUT):
        """Sends raw bytes (a request head, maybe a body; end the head with Connection: close) and
        returns the Response, its raw bytes in .raw. body_chunks are sent afterwards from a thread,
        ignoring errors (the server may answer and close before reading them). method defaults to
        the request line's (a HEAD response has no body)."""
        if method is None:
            method = data.split(b" ", 1)[0].decode("ascii")
        with self.connect(timeout) as sock:
            sender = threading.Thread(target=_send_all, args=(sock, [data, *body_chunks]), daemon=True)
            sender.start()
            try:
                resp = read_response(sock, method)
            finally:
                sender.join(timeout)
        request_line = data.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) == 3:  # a request line we can name the operation by
            check_schema(method, request_line[1].decode("latin-1"), resp,
                         raw_request=data[:2000] + (bytes(body_chunks[0][:300]) if body_chunks else b""))
        return resp

    # -- database

    def db(self):
        """A connection to the stack's database (autocommit; BEGIN and COMMIT as statements): SQLite's
        file (waits up to 10 s for locks), or on PostgreSQL a PgConnection that takes the same SQL."""
        if self.database_url.startswith("postgres"):
            return PgConnection(self.database_url)
        conn = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def sql(self, query, params=()):
        """Runs one statement on a fresh connection (closed afterwards); returns all its rows."""
        with contextlib.closing(self.db()) as conn:
            return conn.execute(query, params).fetchall()


# --------------------------------------------------------------------------------------------------
# PostgreSQL

_pg = None
_database_numbers = iter(range(1, 1 << 30))


def pg_cluster():
    """The run's PostgreSQL cluster (started on first use, stopped at the end of the run)."""
    global _pg
    if _pg is None:
        _pg = pgcluster.Cluster().start()
    return _pg


@contextlib.contextmanager
def pg_database(prefix="db"):
    """A fresh database in the run's cluster for one test: (cluster, name, url); dropped after."""
    cluster = pg_cluster()
    name = f"{prefix}_{os.getpid()}_{next(_database_numbers)}"
    url = cluster.create_database(name)
    try:
        yield cluster, name, url
    finally:
        cluster.drop_database(name)


def stop_pg_cluster():
    global _pg
    if _pg is not None:
        cluster, _pg = _pg, None
        if os.environ.get("E2E_KEEP"):
            cluster.halt()
            print(f"    (kept the PostgreSQL cluster in {cluster.dir})", flush=True)
        else:
            cluster.stop()


class _PgCursor:
    def __init__(self, cursor, lastrowid):
        self.cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount
        self._rows = None

    def _convert(self, rows):
        names = [d.name for d in self.cursor.description or ()]
        return [tuple(_from_pg(v, names[i].startswith("__blob_")) for i, v in enumerate(row)) for row in rows]

    def fetchall(self):
        if self.cursor.description is None:
            return []
        return self._convert(self.cursor.fetchall())

    def fetchone(self):
        rows = self.fetchall()
        return rows[0] if rows else None


def _from_pg(value, blob):
    """bytea comes back as the text it holds (as SQLite's TEXT does), or as bytes for CAST(... AS BLOB)."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes) and not blob:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _to_pg(value):
    """A string parameter: as a literal, which meets a bytea column as its bytes, unless it holds what
    a literal cannot carry (NUL) or what bytea's input would read as escapes (backslashes)."""
    if isinstance(value, str) and ("\0" in value or "\\" in value):
        return value.encode("utf-8")
    return value


def pg_sql(query):
    """The tests' SQLite SQL for PostgreSQL: ? placeholders, CAST(x AS BLOB) (bytes back), typeof(x)
    (our columns are typed: bytea holding text is 'text'), BEGIN IMMEDIATE (the write lock)."""
    n = iter(range(1, 1000))
    query = re.sub(r"CAST\(\s*([\w.]+)\s+AS\s+BLOB\s*\)", lambda m: f"{m.group(1)} AS __blob_{next(n)}", query,
                   flags=re.I)
    query = re.sub(r"typeof\(\s*([\w.]+)\s*\)", r"(CASE WHEN \1 IS NULL THEN 'null' ELSE 'text' END)", query)
    # SQLite's write lock, readers going on: PostgreSQL's EXCLUSIVE table locks.
    query = re.sub(r"^\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE)\s*$",
                   "BEGIN; LOCK TABLE chats, messages, idempotency_keys IN EXCLUSIVE MODE", query, flags=re.I)
    query = re.sub(r"^\s*BEGIN\s+DEFERRED\b", "BEGIN", query, flags=re.I)
    # SQLite's "x IS ?" (NULL-safe equality)
    query = re.sub(r"\bIS\s+NOT\s+\?", "IS DISTINCT FROM ?", query, flags=re.I)
    query = re.sub(r"\bIS\s+\?", "IS NOT DISTINCT FROM ?", query, flags=re.I)
    return query.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """Enough of sqlite3.Connection over psycopg2 for the tests (see pg_sql), in autocommit mode."""

    def __init__(self, url):
        import psycopg2  # Debian's python3-psycopg2, only needed on this engine
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True

    def execute(self, query, params=()):
        query = pg_sql(query)
        wants_id = re.match(r"\s*INSERT\s+INTO\s+messages\b", query, re.I) and "RETURNING" not in query.upper()
        if wants_id:
            query += " RETURNING id"
        cursor = self.conn.cursor()
        cursor.execute(query, [_to_pg(p) for p in params])
        lastrowid = cursor.fetchone()[0] if wants_id else None
        return _PgCursor(cursor, lastrowid)

    def executescript(self, script):
        self.conn.cursor().execute(script)

    def close(self):
        self.conn.close()


def check_schema(method, path, resp, request_headers=None, request_body=None, raw_request=None):
    """Raises AssertionError when resp does not conform to the OpenAPI document (openapi_check), with the
    problems, the request and the response. Does nothing under E2E_NO_SCHEMA=1 or while the document
    describes no paths."""
    if not openapi_check.active():
        return
    problems = openapi_check.check_response(method, path, resp.status, resp.headers, resp.body)
    if not problems:
        return
    if raw_request is not None:
        request = raw_request.decode("utf-8", "replace")
    else:
        body = request_body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request = f"{method} {path} {dict(request_headers or {})} {body[:300].decode('utf-8', 'replace')!r}"
    raise AssertionError(
        f"not as the OpenAPI document says: {problems[0]}\n  " + "\n  ".join(problems[1:] + [
            f"request: {request}", f"response: {resp.describe()}",
            "(conf/docs/openapi.json; E2E_NO_SCHEMA=1 skips this check)"]))


def _send_all(sock, parts):
    try:
        for part in parts:
            sock.sendall(part)
    except OSError:
        pass
