#!/usr/bin/env python3
"""Two worker hosts behind one nginx upstream, sharing one PostgreSQL (make test; alone:
python3 tests/multihost/run.py). Ends with "multihost: N passed, N failed".

Each host is its own network namespace (ip netns, where the kernel and our rights allow it) with an
address of its own on a veth pair: 10.231.1.2 and 10.231.2.2, the front end and PostgreSQL on the
other ends (10.231.1.1, 10.231.2.1). Without namespaces, the hosts are distinct loopback addresses
(127.0.0.2 and 127.0.0.3, the front end 127.0.0.1); the first line printed says which. Each host runs
the worker (2 processes x 64 threads) on TCP (FCGI_SOCKET=host:9000, FCGI_ALLOWED_PEERS the front
end's address) and its own fake provider; nginx runs conf/nginx-multihost.conf with the hosts'
addresses put in, plus two servers pinned to one host each, so that a test can choose the host.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests"))
import pgcluster  # noqa: E402

WORKER = os.path.join(TOP, "build", "ai-chat-fcgi")
FAKE_PROVIDER = os.path.join(TOP, "tests", "fake_provider.py")
EXAMPLE = os.path.join(TOP, "conf", "nginx-multihost.conf")
PY = sys.executable
FCGI_PORT = 9000


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Network:
    """Where the hosts live: two namespaces on veth pairs, or two loopback addresses."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.names = [f"ac-mh-{tag}-a", f"ac-mh-{tag}-b"]
        self.veths = [(f"mh{tag}a0", f"mh{tag}a1"), (f"mh{tag}b0", f"mh{tag}b1")]
        self.netns = False
        self.made = []
        try:
            self._make()
            self.netns = True
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            self.remove()
            why = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
            self.why = why
        if self.netns:
            self.front = ["10.231.1.1", "10.231.2.1"]   # the root side of each pair
            self.hosts = ["10.231.1.2", "10.231.2.2"]
            self.stranger = "10.231.1.3"                # an address of ours that is not allowed
            self.ports = [FCGI_PORT, FCGI_PORT]
        else:
            self.front = ["127.0.0.1", "127.0.0.1"]
            self.hosts = ["127.0.0.2", "127.0.0.3"]
            self.stranger = "127.0.0.9"
            self.ports = [pgcluster.free_port(), pgcluster.free_port()]

    def _make(self):
        for i, name in enumerate(self.names):
            outer, inner = self.veths[i]
            run("ip", "netns", "add", name)
            self.made.append(name)
            run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            run("ip", "link", "set", inner, "netns", name)
            run("ip", "addr", "add", f"10.231.{i + 1}.1/24", "dev", outer)
            if i == 0:
                run("ip", "addr", "add", "10.231.1.3/24", "dev", outer)
            run("ip", "link", "set", outer, "up")
            run("ip", "netns", "exec", name, "ip", "addr", "add", f"10.231.{i + 1}.2/24", "dev", inner)
            run("ip", "netns", "exec", name, "ip", "link", "set", inner, "up")
            run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")

    def describe(self):
        if self.netns:
            return ("network namespaces " + ", ".join(f"{n} ({h})" for n, h in zip(self.names, self.hosts)))
        return f"loopback addresses {self.hosts[0]} and {self.hosts[1]} (no network namespaces: {self.why})"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.names[i]] if self.netns else []

    def remove(self):
        for name in self.made:
            run("ip", "netns", "del", name, check=False)
        for outer, _ in self.veths:
            run("ip", "link", "del", outer, check=False)
        self.made = []


class Host:
    """One worker host: its fake provider and the worker's supervisor with its processes."""

    def __init__(self, net, i, work, database_url, delay):
        self.net, self.i, self.name = net, i, "AB"[i]
        self.dir = os.path.join(work, f"host-{self.name}")
        os.makedirs(self.dir)
        port_file = os.path.join(self.dir, "provider.port")
        self.provider = subprocess.Popen(net.prefix(i) + [PY, FAKE_PROVIDER, "--port-file", port_file,
                                                          "--delay", str(delay)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10, "a fake provider")
        self.provider_port = int(open(port_file).read())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "FCGI_", "WORKER_", "GROQ_",
                                                                                 "PROVIDER_", "DATABASE_URL"))}
        self.env.update({
            "DATABASE_URL": database_url, "FCGI_SOCKET": f"{net.hosts[i]}:{net.ports[i]}",
            "FCGI_ALLOWED_PEERS": net.front[i], "WORKER_PROCESSES": "2", "WORKER_THREADS": "64",
            "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": f"http://127.0.0.1:{self.provider_port}/v1",
            "MODELS_FILE": os.path.join(TOP, "conf", "models.conf"), "PROVIDER_TIMEOUT_S": "3",
            "PROVIDER_RETRIES": "0", "LOG_LEVEL": "warn",
            # the per-user limits off: these tests send many messages as one user at once
            "CHAT_RATE_PER_MINUTE": "0", "CHAT_CONCURRENCY_PER_USER": "0",
            "AUTO_TITLE": "0",   # they count the providers' calls
            "AUTH": "none",  # the original API (user_id in the request): accounts are tests/e2e/test_auth*.py's
        })
        self.worker = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "worker.log"), "ab")
        self.worker = subprocess.Popen(self.net.prefix(self.i) + [WORKER], env=self.env, cwd=self.dir,
                                       stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        wait(lambda: self.answers(), 15, f"host {self.name}'s worker")

    def answers(self):
        assert self.worker.poll() is None, f"host {self.name}'s worker exited: {self.log_tail()}"
        # from the front end's address: a FastCGI request for /health straight to the worker
        status = fastcgi_health(self.net.hosts[self.i], self.net.ports[self.i], self.net.front[self.i])
        return status == 200

    def log_tail(self):
        try:
            return open(os.path.join(self.dir, "worker.log"), errors="replace").read()[-2000:]
        except OSError:
            return ""

    def provider_requests(self, text):
        c = http.client.HTTPConnection("127.0.0.1", self.provider_port, timeout=10) if not self.net.netns else None
        if c is None:
            out = run(*self.net.prefix(self.i), PY, "-c",
                      "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
                      f"'http://127.0.0.1:{self.provider_port}/_requests').read().decode())").stdout
        else:
            c.request("GET", "/_requests")
            out = c.getresponse().read().decode()
            c.close()
        return [r for r in json.loads(out) if r.get("messages") and text in r["messages"][-1].get("content", "")]

    def kill(self):
        """kill -9 of the host's every worker process (the supervisor and its children)."""
        try:
            os.killpg(self.worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.worker.wait()
        self.log.close()

    def stop(self):
        for proc in (self.worker, self.provider):
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def fcgi_record(rtype, content):
    padding = -len(content) % 8
    return struct.pack(">BBHHBx", 1, rtype, 1, len(content), padding) + content + b"\0" * padding


def fcgi_params(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        out += bytes([len(k)]) + (bytes([len(v)]) if len(v) < 128 else struct.pack(">I", len(v) | 1 << 31)) + k + v
    return out


def fastcgi_health(host, port, source, timeout=5):
    """GET /health over FastCGI from source: its status, or None when the worker closed on us."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        try:
            sock.connect((host, port))
        except OSError:
            return None
        params = fcgi_params({"REQUEST_METHOD": "GET", "REQUEST_URI": "/health", "QUERY_STRING": "",
                              "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"})
        try:
            sock.sendall(fcgi_record(1, struct.pack(">HB5x", 1, 0)) + fcgi_record(4, params) + fcgi_record(4, b"")
                         + fcgi_record(5, b""))
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
    if b"Status:" not in data and b"\r\n\r\n" not in data:
        return None
    text = data.decode("latin-1")
    if "Status: " in text:
        return int(text.split("Status: ", 1)[1][:3])
    return 200 if "{" in text else None


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"multihost: {what} did not start within {timeout} s")


class Front:
    """nginx: the example's upstream on one port, and a server pinned to each host."""

    def __init__(self, net, work):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir)
        self.port, self.pinned = pgcluster.free_port(), [pgcluster.free_port(), pgcluster.free_port()]
        example = open(EXAMPLE).read()
        site = example.replace("10.0.0.5:9000", f"{net.hosts[0]}:{net.ports[0]}") \
                      .replace("10.0.0.6:9000", f"{net.hosts[1]}:{net.ports[1]}") \
                      .replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        if net.netns:   # each host is reached through its own pair: the kernel picks the source
            site = site.replace("        fastcgi_bind 10.0.0.2;\n", "")
        else:
            site = site.replace("fastcgi_bind 10.0.0.2;", f"fastcgi_bind {net.front[0]};")
        assert "fastcgi_pass ai_chat_hosts;" in site
        server = site[site.index("server {"):]
        for i in range(2):
            pinned = server.replace("fastcgi_pass ai_chat_hosts;", f"fastcgi_pass {net.hosts[i]}:{net.ports[i]};") \
                           .replace(f"listen 127.0.0.1:{self.port};", f"listen 127.0.0.1:{self.pinned[i]};")
            site += "\n" + pinned
        conf = f"""worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {self.dir}/client_body;
    fastcgi_temp_path {self.dir}/fastcgi;
    proxy_temp_path {self.dir}/proxy;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
{site}
}}
"""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"),
                                      "-e", os.path.join(self.dir, "error.log")], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: request(self.port, "GET", "/health")[0] == 200, 10, "nginx")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers, decoded JSON or raw bytes); status is a string when no answer came."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = dict(headers or {})
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw
        return r.status, {k.lower(): v for k, v in r.getheaders()}, decoded
    except OSError as e:
        return f"no answer ({type(e).__name__}: {e})", {}, None
    finally:
        c.close()


def tag():
    return uuid.uuid4().hex[:10]


# --------------------------------------------------------------------------------------------------
# The tests


class World:
    """The hosts and the front end; url has {} where each host's way to PostgreSQL goes."""

    def __init__(self, net, pg, url, work):
        self.net, self.pg, self.work = net, pg, work
        self.hosts = []
        self.front = None
        for i in range(2):
            self.hosts.append(Host(net, i, work, url.format(net.front[i]), delay=1))
        self.front = Front(net, work)

    def via(self, i):
        return self.front.pinned[i]

    def sql(self, query):
        return self.pg.psql("multi", query).split()

    def stop(self):
        if self.front:
            self.front.stop()
        for h in self.hosts:
            h.stop()


def new_chat(port, user):
    status, _, chat = request(port, "POST", "/chats", {"user_id": user, "title": "multi"})
    assert status == 201, (status, chat)
    return chat["id"]


def test_chat_made_on_a_is_used_on_b(w):
    user = "mh-" + tag()
    a, b = w.via(0), w.via(1)
    chat_id = new_chat(a, user)
    status, _, listing = request(b, "GET", f"/chats?user_id={user}")
    assert status == 200 and listing["total"] == 1 and listing["chats"][0]["id"] == chat_id, listing
    for port, text in ((b, "on B"), (a, "on A"), (b, "on B again")):
        status, _, data = request(port, "POST", "/chat", {"chat_id": chat_id, "user_id": user, "message": text})
        assert status == 200 and data["reply"] == "Echo: " + text, (status, data)
    status, _, page = request(b, "GET", f"/chats/{chat_id}/messages?user_id={user}")
    assert status == 200 and [m["content"] for m in page] == \
        ["on B", "Echo: on B", "on A", "Echo: on A", "on B again", "Echo: on B again"], page
    status, _, chat = request(a, "PATCH", f"/chats/{chat_id}?user_id={user}", {"title": "renamed on A"})
    assert status == 200 and chat["title"] == "renamed on A", chat
    status, _, chat = request(b, "GET", f"/chats/{chat_id}?user_id={user}")
    assert status == 200 and chat["title"] == "renamed on A" and chat["message_count"] == 6, chat
    status, _, _ = request(b, "DELETE", f"/chats/{chat_id}?user_id={user}")
    assert status == 204, status
    status, _, data = request(a, "GET", f"/chats/{chat_id}?user_id={user}")
    assert status == 404 and data == {"detail": f"Chat with id '{chat_id}' not found"}, data
    assert w.sql(f"SELECT count(*) FROM messages WHERE chat_id = '{chat_id}'") == ["0"]


def test_same_idempotency_key_on_both_hosts_at_once(w):
    for round_ in range(6):
        user, t = "mh-" + tag(), tag()
        chat_id = new_chat(w.front.port, user)
        message, key = f"once {t}", f"key-{t}"
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(request, w.via(i % 2), "POST", "/chat",
                                   {"chat_id": chat_id, "user_id": user, "message": message},
                                   {"Idempotency-Key": key}) for i in range(4)]
            answers = [f.result() for f in futures]
        stored = w.sql(f"SELECT role FROM messages WHERE chat_id = '{chat_id}' ORDER BY id")
        assert stored == ["user", "assistant"], f"round {round_}: stored {stored}; answers {answers}"
        asked = sum(len(h.provider_requests(t)) for h in w.hosts)
        assert asked == 1, f"round {round_}: the providers were asked {asked} times"
        assert {a[0] for a in answers} <= {200, 409} and any(a[0] == 200 for a in answers), answers
        first = next(a[2] for a in answers if a[0] == 200)
        for i in range(2):
            status, headers, again = request(w.via(i), "POST", "/chat",
                                             {"chat_id": chat_id, "user_id": user, "message": message},
                                             {"Idempotency-Key": key})
            assert status == 200 and again == first and headers.get("idempotent-replayed") == "true", again


def test_only_allowed_peers_reach_a_worker(w):
    net = w.net
    assert fastcgi_health(net.hosts[0], net.ports[0], net.front[0]) == 200
    assert fastcgi_health(net.hosts[0], net.ports[0], net.stranger) is None, \
        f"a peer not in FCGI_ALLOWED_PEERS ({net.stranger}) was answered"
    # and a TCP socket without FCGI_ALLOWED_PEERS is refused at start
    env = dict(w.hosts[0].env, FCGI_ALLOWED_PEERS="", FCGI_SOCKET=f"127.0.0.1:{pgcluster.free_port()}")
    done = subprocess.run([WORKER], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "FCGI_ALLOWED_PEERS" in done.stderr, (done.returncode, done.stderr)
    env["FCGI_ALLOWED_PEERS"] = "10.0.0.300"
    done = subprocess.run([WORKER, "--check-config"], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "FCGI_ALLOWED_PEERS: '10.0.0.300'" in done.stderr, done.stderr


def test_kill_host_a_during_100_chats(w):
    users = ["mh-kill-" + tag() for _ in range(100)]
    chats = [(u, new_chat(w.front.port, u)) for u in users]
    reads_ok, reads_bad = [], []
    stop_reads = threading.Event()

    def reader():
        n = 0
        while not stop_reads.is_set():
            user, chat_id = chats[n % len(chats)]
            status, _, data = request(w.front.port, "GET", f"/chats/{chat_id}?user_id={user}", timeout=10)
            (reads_ok if status == 200 else reads_bad).append((status, data))
            n += 1

    def send(i, user, chat_id, port):
        return request(port, "POST", "/chat", {"chat_id": chat_id, "user_id": user, "message": f"in flight {i}"},
                       {"Idempotency-Key": f"kill-{chat_id}"})

    with ThreadPoolExecutor(100) as pool:
        futures = [pool.submit(send, i, u, c, w.front.port) for i, (u, c) in enumerate(chats)]
        time.sleep(0.4)
        w.hosts[0].kill()
        killed = time.monotonic()
        readers = [threading.Thread(target=reader) for _ in range(4)]
        for t in readers:
            t.start()
        results = [f.result(60) for f in futures]
        while time.monotonic() - killed < 2:
            time.sleep(0.1)
        stop_reads.set()
        for t in readers:
            t.join(30)
    ok = [i for i, r in enumerate(results) if r[0] == 200]
    failed = [i for i, r in enumerate(results) if r[0] != 200]
    print(f"    host A killed: {len(ok)} chats answered (host B), {len(failed)} failed "
          f"({sorted({str(results[i][0]) for i in failed})}); {len(reads_ok)} reads through the upstream "
          f"afterwards, {len(reads_bad)} failed", flush=True)
    assert not reads_bad, f"reads failed after host A died: {reads_bad[:5]}"
    assert reads_ok, "no read was made"
    assert ok and failed, "the chats were not spread over both hosts"
    for i in failed:
        status, headers, data = results[i]
        assert status == 502 and data == {"detail": "Bad gateway: the worker host did not answer"}, results[i]
    # repeated with their keys, through the upstream (host B now): answered once each; while host A's
    # dead send still holds the key (its lock), a repeat is a 409, so it waits and repeats
    # (the repeats go in parallel: one after another, fifty answers outlast the deadline on a slow machine)
    deadline = time.monotonic() + 90
    pending = set(failed)
    with ThreadPoolExecutor(len(failed)) as pool:
        while pending and time.monotonic() < deadline:
            batch = sorted(pending)
            answers = pool.map(lambda i: send(i, chats[i][0], chats[i][1], w.front.port), batch)
            for i, (status, _, data) in zip(batch, answers):
                if status == 200:
                    assert data["reply"] == f"Echo: in flight {i}", data
                    pending.discard(i)
                else:
                    assert status == 409, (status, data)
            time.sleep(0.5)
    assert not pending, f"{len(pending)} repeats never answered"
    # nothing half written, and each chat answered once: one user message, one reply
    for user, chat_id in chats:
        roles = w.sql(f"SELECT role FROM messages WHERE chat_id = '{chat_id}' ORDER BY id")
        assert roles == ["user", "assistant"], (chat_id, roles)
    counts = w.sql("SELECT count(*) FROM chats c WHERE message_count <> "
                   "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id)")
    assert counts == ["0"], counts
    # host A comes back and serves again
    w.hosts[0].start()
    user = "mh-" + tag()
    chat_id = new_chat(w.via(0), user)
    status, _, data = request(w.via(1), "GET", f"/chats/{chat_id}?user_id={user}")
    assert status == 200, data


TESTS = [test_chat_made_on_a_is_used_on_b, test_same_idempotency_key_on_both_hosts_at_once,
         test_only_allowed_peers_reach_a_worker, test_kill_host_a_during_100_chats]


def main():
    passed = failed = 0
    work = tempfile.mkdtemp(prefix="ai-chat-multihost-")
    os.chmod(work, 0o755)
    net = Network()
    print(f"multihost: two hosts on {net.describe()}", flush=True)
    world = pg = None
    try:
        try:
            hba = ["host all all 10.231.0.0/16 scram-sha-256"] if net.netns else []
            listen = ",".join(["127.0.0.1"] + (net.front if net.netns else []))
            pg = pgcluster.Cluster(listen=listen, hba=hba).start()
            pg.create_database("multi")
            # each host reaches PostgreSQL at the front end's address on its own pair
            world = World(net, pg, f"postgresql://{pgcluster.USER}:{pgcluster.PASSWORD}@{{}}:{pg.port}/multi", work)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL multihost.setup: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            failed += 1
            world = None
        for t in TESTS if world else ():
            name = t.__name__[len("test_"):]
            try:
                t(world)
                print(f"PASS multihost.{name}", flush=True)
                passed += 1
            except Exception as e:  # noqa: BLE001
                print(f"FAIL multihost.{name}: {type(e).__name__}: {str(e)[:2000]}", flush=True)
                traceback.print_exc()
                failed += 1
    finally:
        if world:
            world.stop()
        if pg:
            pg.stop()
        net.remove()
        shutil.rmtree(work, ignore_errors=True)
    print(f"multihost: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
