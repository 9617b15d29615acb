"""AUTH=remote-user behind the shipped nginx examples, run for real: conf/nginx-auth-basic.conf with a
password file made by htpasswd (apache2-utils), and conf/nginx-auth-request.conf with a stand-in for
the SSO proxy.  The user is REMOTE_USER; a client's own headers never name it."""

import base64
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from api import chat_not_found, expect
from auth_util import cli
from harness import ROOT, Stack, free_port, test

NGINX_MAIN = """
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
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


class Front:
    """nginx with one of conf/'s example sites, in front of a running stack's worker socket."""

    def __init__(self, stack, example, replace):
        socket_path = re.search(r"fastcgi_pass unix:([^;]+);", (stack.run_dir / "nginx.conf").read_text()).group(1)
        self.dir = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-front-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        site = (ROOT / "conf" / example).read_text()
        for old, new in {"/run/ai-chat-fcgi/worker.sock": socket_path, "listen 80;": f"listen 127.0.0.1:{self.port};",
                         **replace}.items():
            assert old in site, f"{example} no longer holds {old!r}"
            site = site.replace(old, new)
        (self.dir / "site.conf").write_text(site)
        user = "user www-data www-data;" if os.getuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(NGINX_MAIN.format(dir=self.dir, user=user))
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                      "-e", str(self.dir / "error.log")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.request("GET", "/health")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {(self.dir / 'error.log').read_text()}")
                time.sleep(0.05)

    def request(self, method, path, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            hdrs = dict(headers or {})
            if data is not None:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
        finally:
            conn.close()

    def json(self, method, path, user=None, password=None, headers=None, body=None):
        hdrs = dict(headers or {})
        if user is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        status, h, raw = self.request(method, path, hdrs, body)
        return status, h, (json.loads(raw) if raw and h.get("content-type", "").startswith("application/json") else raw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def remote_stack():
    return Stack(env={"AUTH": "remote-user", "JWT_SECRET": None, "WORKER_PROCESSES": "2"})


@test
def auth_basic_in_front_of_remote_user():
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-htpasswd-"))
    os.chmod(tmp, 0o755)
    htpasswd = tmp / "users"
    for i, (name, password) in enumerate((("alice", "alice-pass"), ("Bob", "bob-pass"))):
        done = subprocess.run(["htpasswd", "-b", *(["-c"] if i == 0 else []), "-B", str(htpasswd), name, password],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    os.chmod(htpasswd, 0o644)
    front = None
    try:
        with remote_stack() as s:
            front = Front(s, "nginx-auth-basic.conf", {"/etc/nginx/ai-chat.htpasswd": str(htpasswd)})
            # nginx refuses who has no password; the worker never sees them
            status, h, _ = front.json("GET", "/chats")
            assert status == 401 and h.get("www-authenticate", "").startswith("Basic"), (status, h)
            status, _, _ = front.json("GET", "/chats", "alice", "wrong")
            assert status == 401
            # alice: an account made on first sight, with no password
            status, _, me = front.json("GET", "/auth/me", "alice", "alice-pass")
            assert status == 200 and me["email"] == "alice" and me["role"] == "user", (status, me)
            status, _, chat = front.json("POST", "/chats", "alice", "alice-pass", body={"title": "hers", "user_id": "Bob"})
            assert status == 201 and chat["user_id"] == me["id"], chat
            status, _, again = front.json("GET", "/auth/me", "alice", "alice-pass")
            assert again == me, again
            # Bob (stored in lower case) gets a 404 for alice's chat, and lists none of hers
            status, _, body = front.json("GET", f"/chats/{chat['id']}?user_id={me['id']}", "Bob", "bob-pass")
            assert status == 404 and body == chat_not_found(chat["id"]), body
            status, _, listing = front.json("GET", f"/chats?user_id={me['id']}", "Bob", "bob-pass")
            assert listing == {"chats": [], "total": 0}, listing
            assert s.sql("SELECT email, password_hash FROM users ORDER BY email") == [("alice", None), ("bob", None)]
            # through a front that does not authenticate (nginx.conf.example), a client's headers
            # cannot name a user
            for headers in ({"Remote-User": "alice"}, {"X-Remote-User": "alice"}, {"X-Forwarded-User": "alice"},
                            {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pass").decode()}):
                expect(s, "GET", "/auth/me", 401, {"detail": "Not authenticated"}, headers=headers)
            # accounts are the web server's: no registering, logging in or out here
            remote = {"detail": "Not available: the web server authenticates (AUTH=remote-user)"}
            for path in ("/auth/register", "/auth/login"):
                status, _, body = front.json("POST", path, "alice", "alice-pass", body={"email": "a@example.com", "password": "12345678"})
                assert status == 404 and body == remote, body
            status, _, body = front.json("GET", "/auth/config", "alice", "alice-pass")
            assert body == {"mode": "remote-user", "registration": "closed"}, body
            # an admin is made on the host
            status, _, body = front.json("GET", "/admin/users", "alice", "alice-pass")
            assert status == 403, body
            code, out = cli(s, "user", "role", "alice", "admin")
            assert code == 0, out
            status, _, users = front.json("GET", "/admin/users", "alice", "alice-pass")
            assert status == 200 and [u["email"] for u in users] == ["alice", "bob"], users
            # an account with no password is deleted without one
            status, _, _ = front.json("DELETE", "/auth/me", "Bob", "bob-pass")
            assert status == 204
            assert s.sql("SELECT email FROM users") == [("alice",)]
    finally:
        if front is not None:
            front.stop()
        shutil.rmtree(tmp, ignore_errors=True)


class _SSO(http.server.BaseHTTPRequestHandler):
    """A stand-in for oauth2-proxy's /oauth2/auth: a known session cookie is signed in."""
    sessions = {"session=alice-cookie": "alice@example.com"}

    def do_GET(self):
        user = self.sessions.get(self.headers.get("Cookie", ""))
        self.send_response(202 if user else 401)
        if user:
            self.send_header("X-Auth-Request-Email", user)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@test
def auth_request_in_front_of_remote_user():
    sso = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SSO)
    threading.Thread(target=sso.serve_forever, daemon=True).start()
    front = None
    try:
        with remote_stack() as s:
            front = Front(s, "nginx-auth-request.conf", {"127.0.0.1:4180": f"127.0.0.1:{sso.server_address[1]}"})
            status, _, _ = front.json("GET", "/auth/me")
            assert status == 401
            # a client's own copy of the proxy's header names nobody
            status, _, _ = front.json("GET", "/auth/me", headers={"X-Auth-Request-Email": "mallory@example.com"})
            assert status == 401
            cookie = {"Cookie": "session=alice-cookie"}
            status, _, me = front.json("GET", "/auth/me", headers={**cookie, "X-Auth-Request-Email": "mallory@example.com"})
            assert status == 200 and me["email"] == "alice@example.com", me
            status, _, chat = front.json("POST", "/chats", headers=cookie, body={"title": "sso"})
            assert status == 201 and chat["user_id"] == me["id"], chat
    finally:
        if front is not None:
            front.stop()
        sso.shutdown()
