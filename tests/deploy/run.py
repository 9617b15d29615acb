#!/usr/bin/env python3
"""Deployment tests: ai-chat-fcgi behind the web servers and process managers its users have.

Each test starts what it needs (the worker, lighttpd, nginx, Apache, spawn-fcgi) on 127.0.0.1 free
ports and in temporary directories, configured from the examples in conf/ (their make-install paths
rewritten to the test's), and stops it all at the end, even on failure.  The model provider is
tests/fake_provider.py.  Python's standard library only.

    python3 tests/deploy/run.py [pattern]

Prints "PASS name" or "FAIL name: why" per test and ends with "deploy: N passed, N failed" (exit
status 1 if any failed).  A test whose server is not installed (lighttpd, apache2, spawn-fcgi) fails,
except Apache's, which is skipped (reported as such) when apache2 is missing.
"""

import ctypes
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parent.parent.parent
BIN = ROOT / "build" / "ai-chat-fcgi"
CONF = ROOT / "conf"
FAKE_PROVIDER = ROOT / "tests" / "fake_provider.py"
MIGRATIONS = len(list((ROOT / "sql" / "sqlite").glob("*.sql")))

# make install's paths, as the examples in conf/ name them.
I_BIN = "/usr/local/bin/ai-chat-fcgi"
I_SETTINGS = "/usr/local/etc/ai-chat-fcgi/ai-chat.env"
I_SHARE = "/usr/local/share/ai-chat-fcgi"
I_SOCKET = "/run/ai-chat-fcgi/worker.sock"

# Settings that must not leak from the caller's environment into a test's worker.
SETTINGS = (
    "DATABASE_URL", "PORT", "WORKER_PROCESSES", "WORKER_THREADS", "MAX_BODY_BYTES", "CORS_ORIGINS",
    "DB_BUSY_TIMEOUT_MS", "FCGI_SOCKET", "FCGI_SOCKET_MODE", "FCGI_SOCKET_GROUP", "GROQ_API_KEY",
    "GROQ_BASE_URL", "MODELS_FILE", "SYSTEM_PROMPT", "PROVIDER_CONNECT_TIMEOUT_MS", "PROVIDER_TIMEOUT_S",
    "PROVIDER_RETRIES", "PROVIDER_MAX_RESPONSE_BYTES", "SSE_HEARTBEAT_S", "LOG_LEVEL", "LOG_FILE",
    "LOG_CONTENT", "LOG_FORMAT", "TRUST_REQUEST_ID", "METRICS", "METRICS_ALLOW", "AI_CHAT_CONFIG", "PREFIX", "DESTDIR", "FCGI_READ_TIMEOUT_S", "REASONING",
)

TIMEOUT = 20


class Skip(Exception):
    """The test cannot run here (its server is not installed)."""


# --------------------------------------------------------------------------------------------------
# Processes: everything started is recorded, and stopped by the test's scope or at exit.

ALL_PROCS = []      # Popen objects
ALL_ORPHANS = set()  # pids of processes we did not start directly (spawn-fcgi's children)


def become_subreaper():
    """Orphans of our children (spawn-fcgi's pool) become our children: we can reap and never lose them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def reap(pid, timeout):
    """Waits up to timeout for pid (ours or adopted) to exit; its exit status, or None if it lives on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            if not alive(pid):
                return 0
        time.sleep(0.02)
    return None


def stop_pid(pid, sig=signal.SIGTERM, timeout=10):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if reap(pid, timeout) is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap(pid, 5)


class Scope:
    """A test's temporary directory and processes; closing it stops them all (newest first)."""

    def __init__(self, name):
        self.dir = Path(tempfile.mkdtemp(prefix=f"ai-chat-deploy-{name}-"))
        os.chmod(self.dir, 0o711)  # web servers' workers (www-data) reach sockets and files inside
        self.procs = []   # (Popen, stop signal)
        self.orphans = []
        self.logs = []

    def popen(self, args, log_name, stop_sig=signal.SIGTERM, **kw):
        log = open(self.dir / log_name, "ab")
        self.logs.append(self.dir / log_name)
        kw.setdefault("stdout", log)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen([str(a) for a in args], **kw)
        log.close()
        self.procs.append((p, stop_sig))
        ALL_PROCS.append(p)
        return p

    def adopt(self, pid):
        self.orphans.append(pid)
        ALL_ORPHANS.add(pid)

    def log_tail(self):
        out = []
        for path in self.logs:
            try:
                text = path.read_text(errors="replace")[-1500:]
            except OSError:
                continue
            out.append(f"--- {path.name}\n{text}")
        return "\n".join(out)

    def close(self):
        for p, sig in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            if p in ALL_PROCS:
                ALL_PROCS.remove(p)
        for pid in self.orphans:
            stop_pid(pid)
            ALL_ORPHANS.discard(pid)
        # Anything else still running from this scope (a web server's children whose parent died).
        for pid in scope_pids(self.dir):
            stop_pid(pid, signal.SIGKILL, 5)
        shutil.rmtree(self.dir, ignore_errors=True)


def scope_pids(directory):
    """Processes whose command line or working directory is in directory (ours, by construction)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if str(directory).encode() in cmdline or cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(int(entry))
    return found


def stop_everything():
    for p in list(ALL_PROCS):
        if p.poll() is None:
            p.kill()
            p.wait()
    for pid in list(ALL_ORPHANS):
        stop_pid(pid, signal.SIGKILL, 5)


# --------------------------------------------------------------------------------------------------
# Helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["AUTH"] = "none"  # the original API (user_id in the request): accounts are tests/e2e/test_auth*.py's
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def data(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"{self.status} {self.headers.get('content-type')} {self.body[:300]!r}"


def req(port, method, path, body=None, headers=None, timeout=TIMEOUT):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def wait_http(port, proc=None, path="/health", timeout=15, want=200, scope=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with status {proc.returncode} before serving\n"
                                 f"{scope.log_tail() if scope else ''}")
        try:
            r = req(port, "GET", path, timeout=2)
            if r.status == want:
                return r
            last = r
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not answer {want} on {path}: {last}\n"
                         f"{scope.log_tail() if scope else ''}")


def wait_socket(path, proc, scope, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited with status {proc.returncode}\n{scope.log_tail()}")
        time.sleep(0.02)
    raise AssertionError(f"no socket at {path}\n{scope.log_tail()}")


def db_query(db, sql, args=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def rewrite(text, mapping):
    for old, new in mapping.items():
        text = text.replace(old, str(new))
    return text


def example(name, mapping):
    """An example from conf/ with make install's paths replaced by the test's."""
    return rewrite((CONF / name).read_text(), mapping)


def settings_file(scope, db, provider_port, **extra):
    path = scope.dir / "ai-chat.env"
    lines = [f"DATABASE_URL=sqlite:///{db}", "GROQ_API_KEY=test-key",
             f"GROQ_BASE_URL=http://127.0.0.1:{provider_port}/v1", "PROVIDER_RETRIES=0",
             "AUTH=none"]  # the original API (user_id in the request); accounts: tests/e2e/test_auth*.py
    lines += [f"{k}={v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def private_copy(scope):
    """The binary copied where another user (www-data) can run it whatever the checkout's permissions
    (a clone in /root is 0700): scope/bin/ai-chat-fcgi."""
    bindir = scope.dir / "bin"
    bindir.mkdir(exist_ok=True)
    shutil.copy(BIN, bindir / "ai-chat-fcgi")
    os.chmod(bindir, 0o755)
    os.chmod(bindir / "ai-chat-fcgi", 0o755)
    return bindir / "ai-chat-fcgi"


def ui_served(port):
    """The chat page and its script, as static files of the web server."""
    r = req(port, "GET", "/ui/")
    eq((r.status, r.headers.get("content-type", "").split(";")[0]), (200, "text/html"), f"/ui/ {r}")
    r = req(port, "GET", "/ui/app.js")
    eq(r.status, 200, f"/ui/app.js {r}")


def docs_tree(scope):
    """The documentation as make install lays it out (share/ai-chat-fcgi/docs)."""
    share = scope.dir / "share"
    docs = share / "docs"
    (docs / "assets" / "swagger-ui").mkdir(parents=True)
    (docs / "assets" / "redoc").mkdir(parents=True)
    for f in (CONF / "docs").glob("*.html"):
        shutil.copy(f, docs)
    nm = CONF / "docs" / "node_modules"
    have_assets = (nm / "swagger-ui-dist" / "swagger-ui.css").exists()
    if have_assets:
        shutil.copy(nm / "swagger-ui-dist" / "swagger-ui.css", docs / "assets" / "swagger-ui")
    # The chat page, as make install lays it out (share/ai-chat-fcgi/ui).
    (share / "ui" / "vendor").mkdir(parents=True)
    for f in ("index.html", "app.js", "app.css"):
        shutil.copy(CONF / "ui" / f, share / "ui")
    for f in (CONF / "ui" / "node_modules" / "marked" / "lib" / "marked.umd.js",
              CONF / "ui" / "node_modules" / "dompurify" / "dist" / "purify.min.js"):
        if f.exists():
            shutil.copy(f, share / "ui" / "vendor")
    for root, dirs, files in os.walk(share):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return share, have_assets


_provider = None


def provider_port():
    """The fake provider, shared by every test (stopped at exit)."""
    global _provider
    if _provider is None:
        scope = Scope("provider")
        port_file = scope.dir / "port"
        p = scope.popen([sys.executable, FAKE_PROVIDER, "--port-file", port_file], "provider.log")
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the fake provider did not start\n{scope.log_tail()}")
            time.sleep(0.02)
        _provider = (scope, int(port_file.read_text()))
    return _provider[1]


# --------------------------------------------------------------------------------------------------
# The API calls every deployment must carry


def api_roundtrip(port, db, user="dep user+ü/1"):
    """Create, list, get, patch, messages, POST /chat, delete: statuses, bodies and the database."""
    q = urllib.parse.quote(user, safe="")
    r = req(port, "GET", "/")
    eq(r.status, 200, f"GET / {r}")
    eq(r.data().get("message"), "AI Chat Backend API", "GET / body")

    r = req(port, "POST", "/chats", {"user_id": user, "title": "First chat"})
    eq(r.status, 201, f"POST /chats {r}")
    chat = r.data()
    cid = chat["id"]
    eq((chat["user_id"], chat["title"], chat["message_count"]), (user, "First chat", 0), "created chat")
    eq(db_query(db, "SELECT user_id, title FROM chats WHERE id = ?", (cid,)), [(user, "First chat")],
       "stored chat")

    r = req(port, "GET", f"/chats?user_id={q}&limit=10")
    eq(r.status, 200, f"GET /chats {r}")
    eq(r.data()["total"], 1, "GET /chats total")
    eq([c["id"] for c in r.data()["chats"]], [cid], "GET /chats ids")

    r = req(port, "GET", f"/chats/{cid}?user_id={q}")
    eq(r.status, 200, f"GET /chats/id {r}")
    eq(r.data()["id"], cid, "GET /chats/id id")
    r = req(port, "GET", f"/chats/{cid}?user_id=someone-else")
    eq(r.status, 404, f"another user's chat {r}")
    eq(r.data(), {"detail": f"Chat with id '{cid}' not found"}, "another user's chat body")

    r = req(port, "PATCH", f"/chats/{cid}?user_id={q}", {"title": "Renamed"})
    eq(r.status, 200, f"PATCH {r}")
    eq(r.data()["title"], "Renamed", "PATCH title")
    eq(db_query(db, "SELECT title FROM chats WHERE id = ?", (cid,)), [("Renamed",)], "stored title")

    r = req(port, "POST", "/chat", {"chat_id": cid, "user_id": user, "message": "hello deploy"})
    eq(r.status, 200, f"POST /chat {r}")
    reply = r.data()
    eq(reply["reply"], "Echo: hello deploy", "POST /chat reply")
    eq(reply["chat_id"], cid, "POST /chat chat_id")
    rows = db_query(db, "SELECT id, role, content FROM messages WHERE chat_id = ? ORDER BY id", (cid,))
    eq([(role, content) for _, role, content in rows],
       [("user", "hello deploy"), ("assistant", "Echo: hello deploy")], "stored messages")
    eq(rows[1][0], reply["message_id"], "message_id is the stored reply")
    eq(db_query(db, "SELECT message_count FROM chats WHERE id = ?", (cid,)), [(2,)], "message_count")

    r = req(port, "GET", f"/chats/{cid}/messages?user_id={q}")
    eq(r.status, 200, f"GET messages {r}")
    eq([(m["role"], m["content"]) for m in r.data()],
       [("user", "hello deploy"), ("assistant", "Echo: hello deploy")], "GET messages body")

    r = req(port, "POST", "/chats", {"user_id": user, "title": "Doomed"})
    eq(r.status, 201, f"second POST /chats {r}")
    doomed = r.data()["id"]
    r = req(port, "DELETE", f"/chats/{doomed}?user_id={q}")
    eq(r.status, 204, f"DELETE {r}")
    eq(r.body, b"", "DELETE body")
    eq(db_query(db, "SELECT count(*) FROM chats WHERE id = ?", (doomed,)), [(0,)], "deleted chat row")
    r = req(port, "GET", f"/chats/{doomed}?user_id={q}")
    eq(r.status, 404, f"GET deleted chat {r}")

    r = req(port, "GET", "/no/such/path")
    eq(r.status, 404, f"unknown path {r}")
    eq(r.data(), {"detail": "Not Found"}, "unknown path body")
    return cid


def streamed_chat(port, db, cid, user="dep user+ü/1"):
    """A streamed POST /chat: the first delta arrives long before the end (the front end does not buffer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        body = json.dumps({"chat_id": cid, "user_id": user, "stream": True,
                           "message": "tell me #chunk_delay=0.3 #words=10"}).encode()
        t0 = time.monotonic()
        conn.request("POST", "/chat", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        eq(r.status, 200, "streamed POST /chat status")
        check(r.getheader("Content-Type", "").startswith("text/event-stream"),
              f"streamed content type {r.getheader('Content-Type')}")
        first_delta = done_at = None
        events, text = [], ""
        event = None
        while True:
            line = r.fp.readline() if not r.chunked else None
            if line is None:
                line = read_line_chunked(r)
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
                events.append(event)
                if event == "delta" and first_delta is None:
                    first_delta = time.monotonic() - t0
                if event == "done":
                    done_at = time.monotonic() - t0
            elif line.startswith("data: ") and event == "delta":
                text += json.loads(line[6:])["content"]
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
                break
    finally:
        conn.close()
    check(first_delta is not None and done_at is not None, f"events {events}")
    check(first_delta < 1.5, f"first delta after {first_delta:.2f} s (buffered?)")
    check(done_at > 2.5, f"done after {done_at:.2f} s")
    want = " ".join(f"w{i}" for i in range(10))
    eq(text, want, "streamed text")
    eq(done["reply"], want, "done reply")
    eq(db_query(db, "SELECT role, content, incomplete FROM messages WHERE id = ?", (done["message_id"],)),
       [("assistant", want, 0)], "stored streamed reply")
    return f"stream: first delta {first_delta:.2f} s, done {done_at:.2f} s"


def read_line_chunked(r):
    """One line of a chunked response body, as it arrives (http.client's read would wait for more)."""
    buf = getattr(r, "_line_buf", b"")
    while b"\n" not in buf:
        piece = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not piece:
            r._line_buf = b""
            return buf
        buf += piece
    line, rest = buf.split(b"\n", 1)
    r._line_buf = rest
    return line + b"\n"


# --------------------------------------------------------------------------------------------------
# A tiny FastCGI client (the web server's side of the protocol)


def _fcgi_record(rtype, content, rid=1):
    return struct.pack(">BBHHBx", 1, rtype, rid, len(content), 0) + content


def _fcgi_nv(name, value):
    out = b""
    for s in (name, value):
        n = len(s)
        out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    return out + name + value


def fcgi_request(sock_path, method, uri, body=b"", timeout=TIMEOUT):
    """One request over FastCGI: (status, headers, body)."""
    path, _, query = uri.partition("?")
    params = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "QUERY_STRING": query, "SCRIPT_NAME": "",
              "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
              "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body))}
    if body:
        params["CONTENT_TYPE"] = "application/json"
    out = _fcgi_record(1, struct.pack(">HB5x", 1, 0))  # BEGIN_REQUEST, responder, no keep-conn
    enc = b"".join(_fcgi_nv(k.encode(), v.encode()) for k, v in params.items())
    out += _fcgi_record(4, enc) + _fcgi_record(4, b"")
    for i in range(0, len(body), 65535):
        out += _fcgi_record(5, body[i:i + 65535])
    out += _fcgi_record(5, b"")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(out)
        data = b""
        stdout = b""
        ended = False
        while not ended:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
            while len(data) >= 8:
                _, rtype, _, clen, plen = struct.unpack(">BBHHBx", data[:8])
                if len(data) < 8 + clen + plen:
                    break
                content = data[8:8 + clen]
                data = data[8 + clen + plen:]
                if rtype == 6:
                    stdout += content
                elif rtype == 3:
                    ended = True
    check(ended, f"no FCGI_END_REQUEST (got {stdout[:200]!r})")
    head, _, payload = stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, payload


# --------------------------------------------------------------------------------------------------
# Servers


def start_worker(scope, db, env_extra=None, socket_path=None, stdin=None, settings=None):
    extra = {"WORKER_PROCESSES": 1, "WORKER_THREADS": 8, **(env_extra or {})}
    env = clean_env(AI_CHAT_CONFIG=settings or settings_file(scope, db, provider_port()), **extra)
    if socket_path is not None:
        env["FCGI_SOCKET"] = str(socket_path)
    p = scope.popen([BIN], "worker.log", cwd=scope.dir, env=env,
                    stdin=stdin if stdin is not None else subprocess.DEVNULL)
    if socket_path is not None:
        wait_socket(socket_path, p, scope)
    return p


LIGHTTPD_BASE = """
server.document-root = "{dir}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/lighttpd-error.log"
mimetype.assign = ( ".html" => "text/html", ".css" => "text/css", ".js" => "text/javascript",
                    ".png" => "image/png", ".json" => "application/json" )
include "{dir}/site.conf"
"""


def start_lighttpd(scope, site_text):
    if shutil.which("lighttpd") is None and not os.path.exists("/usr/sbin/lighttpd"):
        raise AssertionError("lighttpd is not installed (apt-get install lighttpd)")
    port = free_port()
    (scope.dir / "www").mkdir(exist_ok=True)
    (scope.dir / "site.conf").write_text(site_text)
    conf = scope.dir / "lighttpd.conf"
    conf.write_text(LIGHTTPD_BASE.format(dir=scope.dir, port=port))
    t = subprocess.run(["lighttpd", "-tt", "-f", conf], capture_output=True, text=True)
    eq(t.returncode, 0, f"lighttpd -tt: {t.stdout}{t.stderr}")
    p = scope.popen(["lighttpd", "-D", "-f", conf], "lighttpd.log")
    scope.logs.append(scope.dir / "lighttpd-error.log")
    wait_http(port, p, path="/", scope=scope)
    return port


NGINX_BASE = """
user www-data www-data;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    include /etc/nginx/mime.types;
    default_type application/json;
    client_body_temp_path {dir}/client_body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


def start_nginx(scope, socket_path, share):
    port = free_port()
    site = example("nginx-site.conf", {I_SOCKET: socket_path, I_SHARE: share,
                                       "listen 80;": f"listen 127.0.0.1:{port};"})
    (scope.dir / "site.conf").write_text(site)
    conf = scope.dir / "nginx.conf"
    conf.write_text(NGINX_BASE.format(dir=scope.dir))
    p = scope.popen(["/usr/sbin/nginx", "-p", scope.dir, "-c", conf, "-e", scope.dir / "nginx-error.log"],
                    "nginx.log", stop_sig=signal.SIGQUIT)
    scope.logs.append(scope.dir / "nginx-error.log")
    wait_http(port, p, scope=scope)
    return port


APACHE_BASE = """
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/apache-error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
{modules}
TypesConfig /etc/mime.types
Include {dir}/site.conf
"""


def start_apache(scope, site_text, modules):
    if not os.path.exists("/usr/sbin/apache2"):
        raise Skip("apache2 is not installed")
    port = free_port()
    (scope.dir / "site.conf").write_text(site_text.replace("<VirtualHost *:80>", f"<VirtualHost *:{port}>"))
    conf = scope.dir / "httpd.conf"
    mods = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in modules)
    conf.write_text(APACHE_BASE.format(dir=scope.dir, port=port, modules=mods))
    t = subprocess.run(["/usr/sbin/apache2", "-t", "-f", conf], capture_output=True, text=True)
    eq(t.returncode, 0, f"apache2 -t: {t.stdout}{t.stderr}")
    p = scope.popen(["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"], "apache.log",
                    stop_sig=signal.SIGTERM)
    scope.logs.append(scope.dir / "apache-error.log")
    wait_http(port, p, scope=scope)
    return port


# --------------------------------------------------------------------------------------------------
# The tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def lighttpd_fastcgi(scope):
    """lighttpd's mod_fastcgi (conf/lighttpd-fastcgi.conf) in front of the worker on its own socket."""
    db = scope.dir / "chat.db"
    sock = scope.dir / "worker.sock"
    start_worker(scope, db, socket_path=sock)
    share, have_assets = docs_tree(scope)
    port = start_lighttpd(scope, example("lighttpd-fastcgi.conf", {I_SOCKET: sock, I_SHARE: share}))
    cid = api_roundtrip(port, db)
    timing = streamed_chat(port, db, cid)
    r = req(port, "GET", "/docs")
    eq((r.status, r.headers.get("content-type", "").split(";")[0]), (200, "text/html"), f"/docs {r}")
    r = req(port, "GET", "/redoc")
    eq(r.status, 200, f"/redoc {r}")
    ui_served(port)
    if have_assets:
        r = req(port, "GET", "/docs/assets/swagger-ui/swagger-ui.css")
        eq(r.status, 200, f"/docs/assets {r}")
    r = req(port, "GET", "/openapi.json")
    eq(r.status, 200, f"/openapi.json from the worker {r}")
    return timing


@test
def lighttpd_cgi(scope):
    """lighttpd's mod_cgi (conf/lighttpd-cgi.conf): one process per request, settings via AI_CHAT_CONFIG."""
    db = scope.dir / "data" / "chat.db"
    db.parent.mkdir()
    settings = settings_file(scope, db, provider_port())
    share, _ = docs_tree(scope)
    port = free_port()
    site = example("lighttpd-cgi.conf", {I_BIN: BIN, I_SETTINGS: settings, I_SHARE: share})
    # The server is up before anything reached the program: probe a static page, not /health.
    (scope.dir / "www").mkdir(exist_ok=True)
    (scope.dir / "site.conf").write_text(site)
    conf = scope.dir / "lighttpd.conf"
    conf.write_text(LIGHTTPD_BASE.format(dir=scope.dir, port=port))
    t = subprocess.run(["lighttpd", "-tt", "-f", conf], capture_output=True, text=True)
    eq(t.returncode, 0, f"lighttpd -tt: {t.stdout}{t.stderr}")
    p = scope.popen(["lighttpd", "-D", "-f", conf], "lighttpd.log")
    scope.logs.append(scope.dir / "lighttpd-error.log")
    wait_http(port, p, path="/docs", scope=scope)
    check(not db.exists(), "the database exists before the first request")

    r = req(port, "GET", "/health")
    eq(r.status, 200, f"first CGI request {r}")
    eq(r.data(), {"status": "healthy"}, "GET /health body")
    check(db.exists(), "the first CGI request did not create the database")
    eq(db_query(db, "PRAGMA user_version"), [(MIGRATIONS,)], "schema version after the first request")
    tables = {t for (t,) in db_query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    check({"chats", "messages", "idempotency_keys"} <= tables, f"tables {tables}")

    cid = api_roundtrip(port, db)
    timing = streamed_chat(port, db, cid)
    r = req(port, "HEAD", "/health")
    eq((r.status, r.body), (200, b""), "HEAD /health")
    ui_served(port)
    return timing


@test
def spawn_fcgi_pool(scope):
    """spawn-fcgi -F 3 (WORKER_PROCESSES=1 each) behind nginx (conf/nginx-site.conf): one database, a
    process killed with SIGKILL and the others go on."""
    if shutil.which("spawn-fcgi") is None:
        raise AssertionError("spawn-fcgi is not installed")
    data = scope.dir / "data"
    data.mkdir()
    shutil.chown(data, "www-data", "www-data")  # the pool runs as www-data
    db = data / "chat.db"
    sock = scope.dir / "run" / "worker.sock"
    pid_file = scope.dir / "run" / "spawn-fcgi.pid"
    settings = settings_file(scope, db, provider_port())
    os.chmod(settings, 0o644)
    # The pool runs as www-data, which may not enter the checkout (a clone in /root, mode 0700):
    # it runs a copy, as it would run the installed binary.
    binary = private_copy(scope)
    # conf/spawn-fcgi.sh itself, pointed at the test's files: spawn-fcgi -F 3 forks the pool (each
    # process WORKER_PROCESSES=1) and exits.
    env = clean_env(BIN=binary, SOCKET=sock, PROCESSES=3, PID_FILE=pid_file, WORK_DIR=data,
                    AI_CHAT_CONFIG=settings, WORKER_THREADS=16)
    sp = subprocess.run([CONF / "spawn-fcgi.sh"], env=env, capture_output=True, text=True, timeout=20)
    pids = [int(x) for x in pid_file.read_text().split()] if pid_file.exists() else []
    for pid in pids:
        scope.adopt(pid)
    eq(sp.returncode, 0, f"spawn-fcgi: {sp.stdout}{sp.stderr}")
    eq(len(pids), 3, f"pids in {pid_file}")
    st = os.stat(sock)
    eq(oct(st.st_mode & 0o777), oct(0o660), "socket mode")
    for pid in pids:
        eq(os.stat(f"/proc/{pid}").st_uid, pwd.getpwnam("www-data").pw_uid, f"user of pool process {pid}")
    share, _ = docs_tree(scope)
    port = start_nginx(scope, sock, share)
    r = req(port, "GET", "/ui/")
    eq((r.status, r.headers.get("content-type", "").split(";")[0]), (200, "text/html"), f"/ui/ {r}")
    r = req(port, "GET", "/ui/app.js")
    eq(r.status, 200, f"/ui/app.js {r}")

    # Every process of the pool holds the one database open.
    time.sleep(0.2)
    for pid in pids:
        check(alive(pid), f"pool process {pid} is not running")
        fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        check(str(db) in fds, f"process {pid} does not have {db} open")

    def create_many(n, tag):
        results = [None] * n

        def one(i):
            try:
                results[i] = req(port, "POST", "/chats", {"user_id": f"pool-{tag}", "title": f"c{i}"})
            except Exception as e:  # noqa: BLE001
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        bad = [r for r in results if not isinstance(r, Resp) or r.status != 201]
        check(not bad, f"{len(bad)} of {n} POST /chats failed: {bad[:3]}")
        eq(db_query(db, "SELECT count(*) FROM chats WHERE user_id = ?", (f"pool-{tag}",)), [(n,)],
           f"rows for {tag}")
        r = req(port, "GET", f"/chats?user_id=pool-{tag}&limit=100")
        eq((r.status, r.data()["total"]), (200, n), f"GET /chats for {tag}")

    create_many(60, "a")
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    eq(reap(victim, 5), -signal.SIGKILL, "the killed process's status")
    create_many(30, "b")
    for pid in pids[1:]:
        check(alive(pid), f"pool process {pid} died")
    # Chats still reach the model through the survivors.
    r = req(port, "POST", "/chats", {"user_id": "pool-c"})
    cid = r.data()["id"]
    r = req(port, "POST", "/chat", {"chat_id": cid, "user_id": "pool-c", "message": "after the kill"})
    eq((r.status, r.data().get("reply")), (200, "Echo: after the kill"), f"POST /chat {r}")
    for pid in pids[1:]:
        os.kill(pid, signal.SIGTERM)
    for pid in pids[1:]:
        eq(reap(pid, 10), 0, f"pool process {pid} after SIGTERM")
    return "3 processes; 60, then 30 after a SIGKILL, concurrent POST /chats"


@test
def socket_activation_fd0(scope):
    """systemd's way without systemd: a listening socket as fd 0 (conf/systemd/); the supervisor with
    two processes; SIGTERM lets a request in flight finish, then exits 0."""
    unit = (CONF / "systemd" / "ai-chat-fcgi.socket").read_text()
    service = (CONF / "systemd" / "ai-chat-fcgi.service").read_text()
    check(f"ListenStream={I_SOCKET}" in unit and "SocketMode=0660" in unit, "socket unit settings")
    check("Accept=yes" not in unit.splitlines() and "Accept=no" in unit.splitlines(),
          "the socket unit must say Accept=no")
    for line in ("StandardInput=socket", "StandardOutput=journal", "StandardError=journal",
                 f"ExecStart={I_BIN}", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        check(line in service.splitlines(), f"service unit lacks {line}")

    db = scope.dir / "chat.db"
    sock_path = scope.dir / "activation.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(sock_path))
        listener.listen(128)
        p = start_worker(scope, db, env_extra={"WORKER_PROCESSES": 2, "WORKER_THREADS": 4},
                         stdin=listener.fileno())
    finally:
        listener.close()  # the worker holds its own copy, as under systemd

    deadline = time.monotonic() + 10
    while True:
        try:
            status, headers, body = fcgi_request(sock_path, "GET", "/health", timeout=5)
            break
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker did not serve fd 0\n{scope.log_tail()}")
            time.sleep(0.05)
    eq((status, json.loads(body)), (200, {"status": "healthy"}), "GET /health over fd 0")
    eq(headers.get("content-type"), "application/json", "content type")

    status, _, body = fcgi_request(sock_path, "POST", "/chats", json.dumps({"user_id": "fd0"}).encode())
    eq(status, 201, f"POST /chats {body!r}")
    cid = json.loads(body)["id"]
    eq(db_query(db, "SELECT user_id FROM chats WHERE id = ?", (cid,)), [("fd0",)], "stored chat")
    status, _, body = fcgi_request(sock_path, "GET", f"/chats?user_id=fd0")
    eq((status, json.loads(body)["total"]), (200, 1), "GET /chats")

    # A chat the provider takes 1.5 s to answer, with SIGTERM in the middle of it.
    result = {}

    def slow():
        try:
            result["r"] = fcgi_request(sock_path, "POST", "/chat", json.dumps(
                {"chat_id": cid, "user_id": "fd0", "message": "slow one #delay=1.5"}).encode())
        except Exception as e:  # noqa: BLE001
            result["r"] = e
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    t_sig = time.monotonic()
    t.join(15)
    r = result.get("r")
    check(isinstance(r, tuple), f"the chat in flight at SIGTERM: {r}")
    eq(r[0], 200, f"the chat in flight at SIGTERM: {r[2][:200]!r}")
    eq(json.loads(r[2])["reply"], "Echo: slow one #delay=1.5", "its reply")
    check(time.monotonic() - t_sig > 0.9, "the chat in flight answered before the provider did")
    try:
        code = p.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker did not exit within 10 s of SIGTERM")
    eq(code, 0, f"exit status after SIGTERM\n{scope.log_tail()}")
    eq(db_query(db, "SELECT count(*) FROM messages WHERE chat_id = ?", (cid,)), [(2,)], "stored messages")


def _installed_files(root, prefix):
    share = f"{prefix}/share/ai-chat-fcgi"
    files = [f"{prefix}/bin/ai-chat-fcgi", f"{prefix}/share/man/man8/ai-chat-fcgi.8",
             f"{share}/models.conf", f"{share}/docs/swagger.html", f"{share}/docs/redoc.html",
             f"{share}/examples/lighttpd-fastcgi.conf", f"{share}/examples/lighttpd-cgi.conf",
             f"{share}/examples/apache-proxy-fcgi.conf", f"{share}/examples/apache-fcgid.conf",
             f"{share}/examples/apache-cgi.conf", f"{share}/examples/nginx-site.conf",
             f"{share}/examples/nginx-auth-basic.conf", f"{share}/examples/nginx-auth-request.conf",
             f"{share}/examples/spawn-fcgi.sh", f"{share}/examples/systemd/ai-chat-fcgi.socket",
             f"{share}/examples/systemd/ai-chat-fcgi.service"]
    files += [f"{share}/sql/{f.parent.name}/{f.name}" for f in (ROOT / "sql").glob("*/*.sql")]
    if (CONF / "docs" / "openapi.json").exists():
        files.append(f"{share}/docs/openapi.json")
    if (CONF / "docs" / "node_modules" / "swagger-ui-dist").exists():
        files += [f"{share}/docs/assets/swagger-ui/{f}"
                  for f in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")]
        files.append(f"{share}/docs/assets/redoc/redoc.standalone.js")
    files += [f"{share}/ui/{f}" for f in ("index.html", "app.js", "app.css")]
    if (CONF / "ui" / "node_modules" / "dompurify").exists():
        files += [f"{share}/ui/vendor/marked.umd.js", f"{share}/ui/vendor/purify.min.js"]
    return [Path(str(root) + f) for f in files]


@test
def install_destdir(scope):
    """make install (or conf/install.sh) into a DESTDIR with PREFIX=/usr, then uninstall."""
    dest = scope.dir / "dest"
    prefix = "/usr"
    env = clean_env()
    dry = subprocess.run(["make", "-n", "install"], cwd=ROOT, capture_output=True, text=True, env=env)
    if dry.returncode == 0:
        # make install builds the binary for PREFIX: do that in a copy of the checkout, so that the
        # checkout's own build/ is left alone.
        tree = scope.dir / "src"
        shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", "build", "run", "node_modules", "__pycache__", "*.db", "*.db-*", ".env"))
        for sub in ("docs", "ui"):
            if (CONF / sub / "node_modules").is_dir():
                os.symlink(CONF / sub / "node_modules", tree / "conf" / sub / "node_modules")
        how = ["make", "--no-print-directory", "install", f"DESTDIR={dest}", f"PREFIX={prefix}"]
        undo = ["make", "--no-print-directory", "uninstall", f"DESTDIR={dest}", f"PREFIX={prefix}"]
        run_env, cwd, via = env, tree, "make install"
    else:
        how = [CONF / "install.sh"]
        undo = [CONF / "install.sh", "uninstall"]
        run_env, cwd, via = clean_env(DESTDIR=dest, PREFIX=prefix), ROOT, "conf/install.sh (no make install rule yet)"
    r = subprocess.run([str(a) for a in how], cwd=cwd, capture_output=True, text=True, env=run_env,
                       timeout=120)
    eq(r.returncode, 0, f"{' '.join(map(str, how))}: {r.stdout}{r.stderr}")
    missing = [str(f) for f in _installed_files(dest, prefix) if not f.is_file()]
    check(not missing, f"not installed: {missing}")
    binary = dest / "usr/bin/ai-chat-fcgi"
    check(os.access(binary, os.X_OK), "the binary is not executable")
    v = subprocess.run([binary, "--version"], capture_output=True, text=True)
    check(v.returncode == 0 and v.stdout.startswith("ai-chat-fcgi "), f"--version: {v.stdout}{v.stderr}")

    settings = dest / "usr/etc/ai-chat-fcgi/ai-chat.env"
    check(settings.is_file(), f"no settings file {settings}")
    eq(oct(settings.stat().st_mode & 0o777), oct(0o640), "settings file mode")
    text = settings.read_text()
    check("DATABASE_URL=sqlite:////var/lib/ai-chat-fcgi/ai_chat.db" in text.splitlines(),
          "the installed settings do not put the database in /var/lib/ai-chat-fcgi")
    check((dest / "var/lib/ai-chat-fcgi").is_dir(), "no /var/lib/ai-chat-fcgi")
    # AUTH=token, the default, has the secret it needs: written once, random.
    secrets = [l for l in text.splitlines() if l.startswith("JWT_SECRET=")]
    check(len(secrets) == 1 and re.fullmatch(r"JWT_SECRET=[0-9a-f]{64}", secrets[0]),
          f"the installed settings have no random JWT_SECRET: {secrets}")
    if via == "make install":
        # Built by make install for PREFIX, the binary reads the installed settings file by default.
        check(f"{prefix}/etc/ai-chat-fcgi/ai-chat.env".encode() in binary.read_bytes(),
              f"make install's binary does not read {prefix}/etc/ai-chat-fcgi/ai-chat.env by default")
    # The installed settings are valid: --check-config with the database moved into the test's dir.
    c = subprocess.run([binary, "--check-config"], capture_output=True, text=True, cwd=scope.dir,
                       env=clean_env(AI_CHAT_CONFIG=settings, DATABASE_URL=f"sqlite:///{scope.dir}/c.db"))
    eq(c.returncode, 0, f"--check-config with the installed settings: {c.stdout}{c.stderr}")
    env_token = {k: v for k, v in clean_env(AI_CHAT_CONFIG=settings, DATABASE_URL=f"sqlite:///{scope.dir}/c.db").items()
                 if k != "AUTH"}
    c = subprocess.run([binary, "--check-config"], capture_output=True, text=True, cwd=scope.dir, env=env_token)
    eq(c.returncode, 0, f"--check-config in AUTH=token with the installed settings: {c.stdout}{c.stderr}")

    # The examples name the installed paths.
    for f in (dest / "usr/share/ai-chat-fcgi/examples").rglob("*"):
        if f.is_file():
            check("/usr/local/" not in f.read_text(), f"{f.name} still names /usr/local")
    ex = (dest / "usr/share/ai-chat-fcgi/examples/systemd/ai-chat-fcgi.service").read_text()
    check("ExecStart=/usr/bin/ai-chat-fcgi" in ex and "/usr/etc/ai-chat-fcgi/ai-chat.env" in ex,
          "the installed service unit names other paths")
    m = subprocess.run(["man", "-l", dest / "usr/share/man/man8/ai-chat-fcgi.8"], capture_output=True,
                       text=True, env=clean_env(MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    check(m.returncode == 0 and "ai-chat-fcgi" in m.stdout and "SIGTERM" in m.stdout,
          f"man -l: {m.stderr[:300]}")

    # A second install keeps the administrator's settings.
    settings.write_text(text + "GROQ_API_KEY=mine\n")
    r = subprocess.run([str(a) for a in how], cwd=cwd, capture_output=True, text=True, env=run_env,
                       timeout=120)
    eq(r.returncode, 0, f"second install: {r.stdout}{r.stderr}")
    check("GROQ_API_KEY=mine" in settings.read_text(), "a second install replaced the settings file")
    check([l for l in settings.read_text().splitlines() if l.startswith("JWT_SECRET=")] == secrets,
          "a second install changed the JWT_SECRET")

    r = subprocess.run([str(a) for a in undo], cwd=cwd, capture_output=True, text=True, env=run_env,
                       timeout=60)
    eq(r.returncode, 0, f"uninstall: {r.stdout}{r.stderr}")
    left = [str(f) for f in _installed_files(dest, prefix) if f.exists()]
    check(not left, f"left after uninstall: {left}")
    check(not (dest / "usr/share/ai-chat-fcgi").exists(), "share/ai-chat-fcgi is left after uninstall")
    check(settings.is_file() and "GROQ_API_KEY=mine" in settings.read_text(),
          "uninstall removed the settings file")
    check((dest / "var/lib/ai-chat-fcgi").is_dir(), "uninstall removed the database directory")
    return via


@test
def apache_proxy_fcgi(scope):
    """Apache's mod_proxy_fcgi (conf/apache-proxy-fcgi.conf) in front of the worker, a streamed chat too."""
    if not os.path.exists("/usr/sbin/apache2"):
        raise Skip("apache2 is not installed (apt-get install apache2)")
    db = scope.dir / "chat.db"
    sock = scope.dir / "worker.sock"
    start_worker(scope, db, socket_path=sock, env_extra={"FCGI_SOCKET_GROUP": "www-data"})
    share, _ = docs_tree(scope)
    port = start_apache(scope, example("apache-proxy-fcgi.conf", {I_SOCKET: sock, I_SHARE: share}),
                        ["proxy", "proxy_fcgi"])
    cid = api_roundtrip(port, db)
    timing = streamed_chat(port, db, cid)
    r = req(port, "GET", "/docs")
    eq((r.status, r.headers.get("content-type", "").split(";")[0]), (200, "text/html"), f"/docs {r}")
    ui_served(port)
    return timing


@test
def apache_fcgid(scope):
    """Apache's mod_fcgid (conf/apache-fcgid.conf): Apache starts the worker with a socket on fd 0."""
    if not os.path.exists("/usr/lib/apache2/modules/mod_fcgid.so"):
        raise Skip("libapache2-mod-fcgid is not installed")
    db = scope.dir / "data" / "chat.db"
    db.parent.mkdir()
    shutil.chown(db.parent, "www-data", "www-data")
    settings = settings_file(scope, db, provider_port())
    os.chmod(settings, 0o644)
    bindir = private_copy(scope).parent
    share, _ = docs_tree(scope)
    site = example("apache-fcgid.conf", {I_BIN: bindir / "ai-chat-fcgi", "/usr/local/bin": bindir,
                                         I_SETTINGS: settings, I_SHARE: share})
    site = "FcgidIPCDir {d}/fcgid\nFcgidProcessTableFile {d}/fcgid/table\n".format(d=scope.dir) + site
    port = start_apache(scope, site, ["fcgid"])
    cid = api_roundtrip(port, db)
    ui_served(port)
    return streamed_chat(port, db, cid)


@test
def apache_cgi(scope):
    """Apache's mod_cgid (conf/apache-cgi.conf): one process per request, settings from SetEnv."""
    db = scope.dir / "data" / "chat.db"
    db.parent.mkdir()
    shutil.chown(db.parent, "www-data", "www-data")
    settings = settings_file(scope, db, provider_port())
    os.chmod(settings, 0o644)
    bindir = private_copy(scope).parent
    share, _ = docs_tree(scope)
    site = example("apache-cgi.conf", {I_BIN: bindir / "ai-chat-fcgi", "/usr/local/bin": bindir,
                                       I_SETTINGS: settings, I_SHARE: share})
    site = f"ScriptSock {scope.dir}/cgid.sock\n" + site
    port = start_apache(scope, site, ["cgid"])
    cid = api_roundtrip(port, db)
    ui_served(port)
    return streamed_chat(port, db, cid)


# --------------------------------------------------------------------------------------------------


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    if not os.access(BIN, os.X_OK):
        print(f"FAIL setup: no {BIN} (make)")
        print("deploy: 0 passed, 1 failed")
        return 1
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    passed = failed = skipped = 0
    try:
        for fn in TESTS:
            name = fn.__name__
            if pattern not in name:
                continue
            scope = Scope(name)
            t0 = time.monotonic()
            try:
                note = fn(scope)
                note = f"; {note}" if note else ""
                print(f"PASS {name} ({time.monotonic() - t0:.1f} s{note})", flush=True)
                passed += 1
            except Skip as e:
                print(f"SKIP {name}: {e}", flush=True)
                skipped += 1
            except Exception as e:  # noqa: BLE001
                first = str(e).splitlines()[0] if str(e) else ""
                print(f"FAIL {name}: {type(e).__name__}: {first}", flush=True)
                details = "".join(traceback.format_exception(e)) + scope.log_tail()
                print("    " + details.rstrip().replace("\n", "\n    "), flush=True)
                failed += 1
            finally:
                scope.close()
    finally:
        if _provider is not None:
            _provider[0].close()
        stop_everything()
    extra = f", {skipped} skipped" if skipped else ""
    print(f"deploy: {passed} passed, {failed} failed{extra}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
