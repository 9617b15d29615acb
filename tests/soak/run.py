#!/usr/bin/env python3
"""make soak: mixed traffic against the real stack for a while; no errors, and no memory growth.

Starts the fake provider (tests/fake_provider.py, answering after SOAK_PROVIDER_DELAY s, default 0.2)
and a stack (conf/stack.sh: nginx + the worker with its default settings, 2 processes x 64 threads)
on 127.0.0.1, then SOAK_CLIENTS client threads (default 16), each a user with a few chats, send a
realistic mix for SOAK_SECONDS (default 300): chat management (create, list, get, patch, message pages,
delete) and POST /chat plain and streamed, plus requests whose error answer is expected (a deleted
chat's 404, an invalid body's 422).  Every answer is checked; any status the scenario did not expect,
a reply that is not the provider's, a stream without its done event, or a failed request is an error.

Every SOAK_SAMPLE_S seconds (default 10) it records each worker process's RSS (VmRSS in
/proc/PID/status; the processes are the stack's ai-chat-fcgi processes, found by the run directory in
their environment).

At the end: requests, throughput, p50 and p99 latency per kind; errors; RSS over time per process; and
a memory verdict per process: the mean RSS of the run's last third must be within 10% (or 4 MiB,
whichever is larger) of the second third's.  Exit status 1 on any error or growth.  Everything is
stopped at the end, on failure too.  SOAK_KEEP=1 keeps the temporary directory (logs, database).

Environment: SOAK_SECONDS, SOAK_CLIENTS, SOAK_PROVIDER_DELAY, SOAK_SAMPLE_S, SOAK_MAX_REQUESTS (per
client, default 1,000,000: a bound besides the time).
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable

SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "16"))
PROVIDER_DELAY = float(os.environ.get("SOAK_PROVIDER_DELAY", "0.2"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))
MAX_REQUESTS = int(os.environ.get("SOAK_MAX_REQUESTS", "1000000"))
REQUEST_TIMEOUT = 30
GROWTH_FRACTION = 0.10
GROWTH_FLOOR_KIB = 4 * 1024

# Settings that must not reach the stack from the caller's environment: it runs with the defaults.
SETTINGS = (
    "DATABASE_URL", "PORT", "WORKER_PROCESSES", "WORKER_THREADS", "MAX_BODY_BYTES", "CORS_ORIGINS",
    "DB_BUSY_TIMEOUT_MS", "FCGI_SOCKET", "FCGI_SOCKET_MODE", "FCGI_SOCKET_GROUP", "RUN_DIR", "WORKER",
    "NGINX_WORKERS", "ACCESS_LOG", "GROQ_API_KEY", "GROQ_BASE_URL", "MODELS_FILE", "SYSTEM_PROMPT",
    "PROVIDER_CONNECT_TIMEOUT_MS", "PROVIDER_TIMEOUT_S", "PROVIDER_RETRIES", "PROVIDER_MAX_RESPONSE_BYTES",
    "SSE_HEARTBEAT_S", "LOG_LEVEL", "LOG_FILE", "LOG_CONTENT", "LOG_FORMAT", "TRUST_REQUEST_ID", "METRICS", "METRICS_ALLOW", "AI_CHAT_CONFIG",
)

# The mix: kind -> weight (a step of a client picks one; a kind that cannot run yet, e.g. delete with
# no chat, becomes a create).  About 40% of the requests talk to the model.
MIX = {
    "create": 8, "list": 12, "get": 12, "patch": 5, "messages": 14,
    "chat": 20, "chat_stream": 20, "delete": 5, "expected_404": 2, "expected_422": 2,
}
KINDS = list(MIX)
MAX_CHATS = 6          # per client: beyond that a create becomes a delete
MAX_MESSAGES = 40      # per chat: beyond that a send deletes the chat instead

TITLES = ["Soak", "Plans for Tuesday", "Ünïcödé títle ✓", "日本語のチャット", "emoji 🎉🚀", "a" * 200]
MESSAGES = ["Hello, AI!", "How are you today?", "Grüße aus Köln — ça va?", "你好，世界", "🙂 emoji 🎉",
            "Tell me a story about a lighthouse keeper.", "x" * 2000, "line one\nline two\ttab \"quotes\""]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s did not start within %d s" % (what, timeout))


def stop_group(proc, timeout=30):
    """SIGTERM to proc's process group, then SIGKILL after timeout; returns proc's exit status."""
    if proc is None:
        return None
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            print("soak: pid %d still running %d s after signal %d" % (proc.pid, wait, sig))
    return proc.poll()


# --------------------------------------------------------------------------------------------------
# Memory


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def worker_pids(run_dir):
    """The stack's ai-chat-fcgi processes (the supervisor and its workers), by the run directory in
    their environment."""
    mark = ("RUN_DIR=" + run_dir).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if b"ai-chat-fcgi" in cmd.split(b"\0")[0] and mark in env:
            pids.append(int(d))
    return sorted(pids)


def role(pid, pids):
    """'supervisor' for the process whose parent is not one of the stack's, else 'worker'."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return "?"
    return "worker" if ppid in pids else "supervisor"


# --------------------------------------------------------------------------------------------------
# Traffic


class Errors:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.by_kind = {}
        self.examples = []

    def add(self, kind, what):
        with self.lock:
            self.count += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if len(self.examples) < 15:
                self.examples.append("%s: %s" % (kind, what))


class Client(threading.Thread):
    """One user: a few chats, a keep-alive connection, a step at a time until the deadline."""

    def __init__(self, n, port, deadline, errors, seed):
        super().__init__(daemon=True, name="client-%d" % n)
        self.port = port
        self.deadline = deadline
        self.errors = errors
        self.rng = random.Random(seed)
        self.user = "soak-%d-%s" % (n, uuid.uuid4().hex[:8])
        self.chats = {}     # id -> number of messages
        self.conn = None
        self.latency = {k: [] for k in KINDS}
        self.requests = 0

    # -- HTTP

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict, body bytes); raises OSError/HTTPException on a transport failure."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            out = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, out

    def q(self, path, **params):
        from urllib.parse import urlencode
        return path + "?" + urlencode(dict(user_id=self.user, **params))

    # -- steps

    def run(self):
        while time.monotonic() < self.deadline and self.requests < MAX_REQUESTS:
            kind = self.rng.choices(KINDS, weights=[MIX[k] for k in KINDS])[0]
            kind, fn = self.plan(kind)
            started = time.perf_counter()
            try:
                problem = fn()
            except Exception as e:  # noqa: BLE001 - any failure of a request is an error
                problem = "%s: %s" % (type(e).__name__, e)
            self.requests += 1
            if problem:
                self.errors.add(kind, problem)
            else:
                self.latency[kind].append(time.perf_counter() - started)
        if self.conn is not None:
            self.conn.close()

    def plan(self, kind):
        """The kind to run (adjusted to the client's state) and the step doing it."""
        if not self.chats or (kind == "create" and len(self.chats) >= MAX_CHATS):
            kind = "create" if not self.chats else "delete"
        chat = self.rng.choice(list(self.chats)) if self.chats else None
        if kind in ("chat", "chat_stream") and self.chats[chat] >= MAX_MESSAGES:
            kind = "delete"
        return kind, {
            "create": self.create, "list": self.list, "get": lambda: self.get(chat),
            "patch": lambda: self.patch(chat), "messages": lambda: self.messages(chat),
            "chat": lambda: self.send(chat, False), "chat_stream": lambda: self.send(chat, True),
            "delete": lambda: self.delete(chat), "expected_404": self.expected_404,
            "expected_422": self.expected_422,
        }[kind]

    @staticmethod
    def unexpected(status, want, out):
        return "status %d, wanted %d: %r" % (status, want, out[:300])

    def create(self):
        body = {"user_id": self.user}
        if self.rng.random() < 0.8:
            body["title"] = self.rng.choice(TITLES)
        status, _, out = self.request("POST", "/chats", body)
        if status != 201:
            return self.unexpected(status, 201, out)
        chat = json.loads(out)
        if chat.get("user_id") != self.user or chat.get("title") != body.get("title"):
            return "created chat does not match: %r" % out[:300]
        self.chats[chat["id"]] = 0
        return None

    def list(self):
        status, _, out = self.request("GET", self.q("/chats", limit=20, offset=0))
        if status != 200:
            return self.unexpected(status, 200, out)
        data = json.loads(out)
        ids = {c["id"] for c in data["chats"]}
        if data["total"] != len(self.chats) or ids != set(self.chats):
            return "list has %d chats (total %d), the client has %d" % (len(ids), data["total"], len(self.chats))
        return None

    def get(self, chat):
        status, _, out = self.request("GET", self.q("/chats/" + chat))
        if status != 200:
            return self.unexpected(status, 200, out)
        data = json.loads(out)
        if data["id"] != chat or data["message_count"] != self.chats[chat]:
            return "chat %s has %s messages, wanted %d" % (chat, data["message_count"], self.chats[chat])
        return None

    def patch(self, chat):
        title = self.rng.choice(TITLES) + " " + str(self.rng.randrange(1000))
        status, _, out = self.request("PATCH", self.q("/chats/" + chat), {"title": title[:200]})
        if status != 200:
            return self.unexpected(status, 200, out)
        if json.loads(out)["title"] != title[:200]:
            return "patched title not returned: %r" % out[:300]
        return None

    def messages(self, chat):
        n = self.chats[chat]
        page = self.rng.choice(["first", "newest", "before", "after"])
        params = {"limit": self.rng.choice([5, 20, 100])}
        if page == "newest":
            params["newest"] = "true"
        elif page in ("before", "after"):
            params[page] = self.rng.randrange(0, 10 ** 6)
        status, headers, out = self.request("GET", self.q("/chats/%s/messages" % chat, **params))
        if status != 200:
            return self.unexpected(status, 200, out)
        msgs = json.loads(out)
        if page in ("first", "newest") and len(msgs) != min(n, params["limit"]):
            return "%s page of %d messages has %d" % (page, n, len(msgs))
        if any(m["chat_id"] != chat for m in msgs) or [m["id"] for m in msgs] != sorted(m["id"] for m in msgs):
            return "messages page is not the chat's, oldest first"
        if headers.get("x-has-more") not in ("true", "false"):
            return "no X-Has-More header"
        return None

    def send(self, chat, stream):
        message = "%s [%s]" % (self.rng.choice(MESSAGES), uuid.uuid4().hex[:6])
        body = {"chat_id": chat, "user_id": self.user, "message": message}
        headers = None
        if stream:
            if self.rng.random() < 0.5:
                body["stream"] = True
            else:
                headers = {"Accept": "text/event-stream"}
        status, hdrs, out = self.request("POST", "/chat", body, headers)
        if status != 200:
            return self.unexpected(status, 200, out)
        want = "Echo: " + message
        if not stream:
            reply = json.loads(out).get("reply")
        else:
            if not hdrs.get("content-type", "").startswith("text/event-stream"):
                return "stream answered %r" % hdrs.get("content-type")
            events = parse_events(out.decode("utf-8"))
            done = [d for e, d in events if e == "done"]
            if not done or any(e == "error" for e, _ in events):
                return "stream without a done event, or with an error: %r" % out[-300:]
            reply = json.loads(done[-1]).get("reply")
            deltas = "".join(json.loads(d)["content"] for e, d in events if e == "delta")
            if deltas != reply:
                return "the deltas do not add up to the reply"
        if reply != want:
            return "reply %r, wanted %r" % (reply[:100] if reply else reply, want[:100])
        self.chats[chat] += 2
        return None

    def delete(self, chat):
        status, _, out = self.request("DELETE", self.q("/chats/" + chat))
        if status != 204:
            return self.unexpected(status, 204, out)
        del self.chats[chat]
        return None

    def expected_404(self):
        """A chat that was deleted (or never existed) is a 404."""
        status, _, out = self.request("GET", self.q("/chats/" + str(uuid.uuid4())))
        if status != 404:
            return self.unexpected(status, 404, out)
        return None

    def expected_422(self):
        """An invalid body is a 422 with FastAPI's list of problems."""
        body = self.rng.choice([{}, {"user_id": ""}, {"user_id": None}, {"user_id": 5, "title": []}])
        status, _, out = self.request("POST", "/chats", body)
        if status != 422 or not isinstance(json.loads(out).get("detail"), list):
            return self.unexpected(status, 422, out)
        return None


def parse_events(text):
    """[(event, data)] of a server-sent event stream (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


# --------------------------------------------------------------------------------------------------
# Report


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def mib(kib):
    return kib / 1024.0


def memory_verdict(samples, pids_seen, t_start, t_end):
    """Per process: (pid, role, mean of the second third, mean of the last third, growth, ok).
    samples: [(t, {pid: kib})] during the traffic."""
    during = [(t, rss) for t, rss in samples if t_start <= t <= t_end]
    n = len(during)
    verdicts = []
    if n < 3:
        return verdicts, "too few samples (%d) for a verdict: run longer than %d s" % (n, 3 * SAMPLE_S)
    second = during[n // 3:2 * n // 3]
    last = during[2 * n // 3:]
    for pid, kind in pids_seen:
        a = [rss[pid] for _, rss in second if rss.get(pid)]
        b = [rss[pid] for _, rss in last if rss.get(pid)]
        if not a or not b:
            verdicts.append((pid, kind, None, None, None, False))
            continue
        ma, mb = statistics.mean(a), statistics.mean(b)
        allowed = max(GROWTH_FRACTION * ma, GROWTH_FLOOR_KIB)
        verdicts.append((pid, kind, ma, mb, mb - ma, mb - ma <= allowed))
    return verdicts, None


def main():
    work = tempfile.mkdtemp(prefix="ai-chat-soak.")
    provider = stack = None
    failures = []
    errors = Errors()
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        # The fake provider.
        port_file = os.path.join(work, "provider.port")
        provider = subprocess.Popen([PY, os.path.join(TOP, "tests", "fake_provider.py"), "--port-file", port_file,
                                     "--delay", str(PROVIDER_DELAY)], start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(work, "provider.log"), "w"))
        wait_for(lambda: os.path.exists(port_file), 10, "the fake provider")
        provider_port = int(open(port_file).read())

        # The stack, default settings.
        port = free_port()
        run_dir = os.path.join(work, "run")
        db = os.path.join(work, "soak.db")
        env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        env.update(PORT=str(port), RUN_DIR=run_dir, DATABASE_URL="sqlite:///" + db, GROQ_API_KEY="test-key", AUTH="none",
                   GROQ_BASE_URL="http://127.0.0.1:%d/v1" % provider_port,
                   CHAT_RATE_PER_MINUTE="0", CHAT_CONCURRENCY_PER_USER="0",   # its users send faster than that
                   AUTO_TITLE="0")   # it checks every chat's title against the one it gave
        stack_log = os.path.join(work, "stack.log")
        stack = subprocess.Popen([os.path.join(TOP, "conf", "stack.sh")], env=env, cwd=work,
                                 stdin=subprocess.DEVNULL, stdout=open(stack_log, "w"),
                                 stderr=subprocess.STDOUT, start_new_session=True)

        def healthy():
            if stack.poll() is not None:
                raise RuntimeError("conf/stack.sh exited with status %d" % stack.returncode)
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                c.request("GET", "/health")
                return c.getresponse().status == 200
            finally:
                c.close()

        wait_for(healthy, 30, "the stack")
        time.sleep(0.5)  # the supervisor's workers have all started
        pids = worker_pids(run_dir)
        pids_seen = [(p, role(p, pids)) for p in pids]
        print("soak: %d clients for %d s against 127.0.0.1:%d; provider delay %.1f s; processes %s; in %s"
              % (CLIENTS, SECONDS, port, PROVIDER_DELAY,
                 ", ".join("%d (%s)" % pr for pr in pids_seen), work), flush=True)

        # Memory samples, every SAMPLE_S from the start of the traffic (t = 0) to its end.
        samples = []
        stop_sampling = threading.Event()
        t0 = time.monotonic()

        def sample():
            now = worker_pids(run_dir)
            rss = {p: rss_kib(p) for p in now}
            samples.append((time.monotonic() - t0, rss))
            if set(now) != set(pids):
                failures.append("the stack's processes changed at t=%.0f s: %s, then %s"
                                % (time.monotonic() - t0, pids, now))
                return False
            return True

        def sampler():
            k = 1
            while not stop_sampling.wait(max(0.0, t0 + k * SAMPLE_S - time.monotonic())):
                if not sample():
                    return
                k += 1

        sample()
        deadline = t0 + SECONDS
        clients = [Client(i, port, deadline, errors, seed=1000 + i) for i in range(CLIENTS)]
        sampler_thread = threading.Thread(target=sampler, daemon=True)
        sampler_thread.start()
        for c in clients:
            c.start()
        for c in clients:
            c.join(SECONDS + REQUEST_TIMEOUT + 30)
            if c.is_alive():
                failures.append("%s did not finish" % c.name)
        elapsed = time.monotonic() - t0
        if (not failures or not failures[-1].startswith("the stack's processes changed")) \
                and elapsed - samples[-1][0] > 1:
            sample()  # the end
        stop_sampling.set()
        sampler_thread.join(5)

        # Throughput and latency.
        total = sum(c.requests for c in clients)
        print("\nsoak: %d requests in %.1f s (%.1f/s) from %d clients; errors: %d"
              % (total, elapsed, total / elapsed, CLIENTS, errors.count))
        print("%-14s %9s %8s %9s %9s %7s" % ("kind", "requests", "per s", "p50 ms", "p99 ms", "errors"))
        for kind in KINDS:
            lat = [x for c in clients for x in c.latency[kind]]
            n = len(lat) + errors.by_kind.get(kind, 0)
            print("%-14s %9d %8.1f %9.1f %9.1f %7d" % (kind, n, n / elapsed, pct(lat, 0.5) * 1000,
                                                       pct(lat, 0.99) * 1000, errors.by_kind.get(kind, 0)))
        for e in errors.examples:
            print("  error: " + e)
        if errors.count:
            failures.append("%d requests failed" % errors.count)

        # Memory over time and the verdict.
        print("\nRSS (MiB) every %d s:" % SAMPLE_S)
        print("%7s " % "t (s)" + " ".join("%12s" % ("%d %s" % (p, k[:3])) for p, k in pids_seen))
        for t, rss in samples:
            print("%7.0f " % t + " ".join("%12s" % ("%.1f" % mib(rss[p]) if rss.get(p) else "-")
                                          for p, _ in pids_seen))
        verdicts, why_none = memory_verdict(samples, [p for p in pids_seen], 0, elapsed + 1)
        if why_none:
            print("memory: " + why_none)
        for pid, kind, ma, mb, growth, ok in verdicts:
            if ma is None:
                print("memory %d (%s): no samples" % (pid, kind))
            else:
                print("memory %d (%s): second third %.1f MiB, last third %.1f MiB, growth %+.1f MiB "
                      "(allowed %.1f): %s" % (pid, kind, mib(ma), mib(mb), mib(growth),
                                              mib(max(GROWTH_FRACTION * ma, GROWTH_FLOOR_KIB)),
                                              "no growth" if ok else "GROWTH"))
            if not ok:
                failures.append("memory of %d (%s) grew" % (pid, kind))
        try:
            print("database: %.1f MiB (with its WAL)" % (sum(os.path.getsize(db + s) for s in ("", "-wal")
                                                             if os.path.exists(db + s)) / 2 ** 20))
        except OSError:
            pass
    except KeyboardInterrupt:
        failures.append("interrupted")
    except Exception as e:  # noqa: BLE001 - report, stop everything, fail
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        status = stop_group(stack)
        stop_group(provider, 5)
        if stack is not None:
            try:
                with open(os.path.join(work, "stack.log"), errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                lines = []
            bad = [ln for ln in lines if " error " in ln or " warn " in ln or "Sanitizer" in ln]
            print("stack log: %d lines, %d at warn or error level; conf/stack.sh exited with status %s"
                  % (len(lines), len(bad), status))
            for ln in bad[:10]:
                print("  " + ln)
            if any(" error " in ln or "Sanitizer" in ln for ln in bad):
                failures.append("the stack logged errors")
        if os.environ.get("SOAK_KEEP"):
            print("soak: kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("soak: FAIL " + f)
    print("soak: %s" % ("PASS" if not failures else "FAIL"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
