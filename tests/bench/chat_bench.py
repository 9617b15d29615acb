#!/usr/bin/env python3
"""make bench, the model half: POST /chat through nginx and the worker against the fake provider, on
SQLite and on PostgreSQL (a throwaway cluster, tests/pgcluster.py, unix socket, fsync on), one after
the other in one run.

1. Added latency: POST /chat against a provider that answers at once, next to the same completion
   request sent straight to that provider; the backend's added latency is the difference of the
   medians (targets: under 1 ms on SQLite, under 2 ms on PostgreSQL).
2. Concurrency: BENCH_CONCURRENT (default 1000) simultaneous POST /chat against a provider that takes
   BENCH_SLOW_DELAY (default 2) seconds: how many complete without error, the wall time, and the worker
   processes' memory while they wait (target: all of them).

Environment: BENCH_CHAT_N (sequential requests for 1, default 500), BENCH_CONCURRENT, BENCH_SLOW_DELAY,
BENCH_PROCESSES and BENCH_THREADS (the worker pool for 2; default 2 x 64, the default pool: the chats
wait on the event loop, not on threads).
"""
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests"))
import pgcluster  # noqa: E402
PY = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("chat_bench: %s did not start" % what)


class Provider:
    def __init__(self, work, delay):
        self.port_file = os.path.join(work, "provider-%s.port" % delay)
        if os.path.exists(self.port_file):  # an earlier provider's (each engine has its own)
            os.unlink(self.port_file)
        self.proc = subprocess.Popen([PY, os.path.join(TOP, "tests", "fake_provider.py"), "--port-file",
                                      self.port_file, "--delay", str(delay)], start_new_session=True)
        wait_for(lambda: os.path.exists(self.port_file), 10, "the fake provider")
        self.port = int(open(self.port_file).read())

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


class Stack:
    def __init__(self, work, name, env, database_url=None):
        self.port = free_port()
        self.run_dir = os.path.join(work, name)
        e = dict(os.environ, PORT=str(self.port), RUN_DIR=self.run_dir, ACCESS_LOG="off", AUTH="none",
                 LOG_LEVEL=os.environ.get("LOG_LEVEL", "warn"),
                 DATABASE_URL=database_url or "sqlite:///" + os.path.join(work, name + ".db"), **env)
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen([os.path.join(TOP, "conf", "stack.sh")], env=e, cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.request("GET", "/health")[0] == 200, 20, "the stack")

    def request(self, method, path, body=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        out = r.read()
        if conn is None:
            c.close()
        return r.status, out

    def new_chat(self, user):
        status, out = self.request("POST", "/chats", {"user_id": user})
        assert status == 201, out
        return json.loads(out)["id"]

    def worker_pids(self):
        """The stack's ai-chat-fcgi processes (supervisor and workers)."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if b"ai-chat-fcgi" in cmd and self.run_dir.encode() in env:
                pids.append(int(d))
        return pids

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def latency(work, engine, url, target_ms):
    n = int(os.environ.get("BENCH_CHAT_N", "500"))
    provider = Provider(work, 0)
    stack = Stack(work, "latency-" + engine, {"GROQ_API_KEY": "test-key", "CHAT_RATE_PER_MINUTE": "0", "AUTO_TITLE": "0",
                                              "GROQ_BASE_URL": "http://127.0.0.1:%d/v1" % provider.port}, url)
    try:
        chats = [stack.new_chat("bench-latency") for _ in range(n + 50)]
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        pconn = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=30)
        direct_body = {"model": "openai/gpt-oss-20b", "temperature": 0.7, "max_completion_tokens": 4096,
                       "reasoning_effort": "low", "stream": False,
                       "messages": [{"role": "system", "content": "You are a helpful, friendly AI assistant."},
                                    {"role": "user", "content": "How are you today?"}]}

        def via_backend(chat):
            t = time.perf_counter()
            status, out = stack.request("POST", "/chat", {"chat_id": chat, "user_id": "bench-latency",
                                                          "message": "How are you today?"}, conn)
            assert status == 200, out
            return time.perf_counter() - t

        def direct():
            t = time.perf_counter()
            pconn.request("POST", "/v1/chat/completions", body=json.dumps(direct_body).encode(),
                          headers={"Content-Type": "application/json", "Authorization": "Bearer test-key"})
            r = pconn.getresponse()
            r.read()
            assert r.status == 200
            return time.perf_counter() - t

        for chat in chats[:50]:  # warm up both paths
            via_backend(chat)
            direct()
        backend, provider_only = [], []
        for chat in chats[50:]:  # interleaved, so drift hits both alike
            backend.append(via_backend(chat))
            provider_only.append(direct())
        b, p = statistics.median(backend) * 1000, statistics.median(provider_only) * 1000
        print("%s: POST /chat against an instant provider, %d sequential requests:" % (engine, n))
        print("  through nginx + worker: median %.2f ms, p99 %.2f ms" % (b, pct(backend, 0.99) * 1000))
        print("  straight to the provider: median %.2f ms, p99 %.2f ms" % (p, pct(provider_only, 0.99) * 1000))
        print("  added by the backend (median difference): %.2f ms   target < %g ms: %s"
              % (b - p, target_ms, "PASS" if b - p < target_ms else "MISS"))
    finally:
        stack.stop()
        provider.stop()


def concurrency(work, engine, url):
    n = int(os.environ.get("BENCH_CONCURRENT", "1000"))
    delay = float(os.environ.get("BENCH_SLOW_DELAY", "2"))
    procs = os.environ.get("BENCH_PROCESSES", "2")    # the default pool: the chats wait on the event loop
    threads = os.environ.get("BENCH_THREADS", "64")
    provider = Provider(work, delay)
    stack = Stack(work, "concurrency-" + engine, {"GROQ_API_KEY": "test-key", "WORKER_PROCESSES": procs,
                                                  "AUTO_TITLE": "0",
                                                  "WORKER_THREADS": threads, "PROVIDER_RETRIES": "0",
                                                  "GROQ_BASE_URL": "http://127.0.0.1:%d/v1" % provider.port}, url)
    try:
        pids = stack.worker_pids()
        idle = sum(rss_kib(p) for p in pids)
        chats = [stack.new_chat("bench-conc-%d" % i) for i in range(n)]
        results = [None] * n
        start = threading.Barrier(n + 1)

        def one(i):
            start.wait()
            t = time.perf_counter()
            body = b""
            try:
                status, body = stack.request("POST", "/chat", {"chat_id": chats[i], "user_id": "bench-conc-%d" % i,
                                                               "message": "Hello #%d" % i})
            except OSError as e:
                status = repr(e)
            results[i] = (status, time.perf_counter() - t, body[:200])

        ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in ts:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        time.sleep(delay / 2)
        waiting = sum(rss_kib(p) for p in pids)
        per = [rss_kib(p) for p in pids]
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        ok = sum(1 for r in results if r and r[0] == 200)
        errors = {}
        for r in results:
            if not r or r[0] != 200:
                key = "%s %s" % (r[0], r[2].decode(errors="replace")) if r else "None"
                errors[key] = errors.get(key, 0) + 1
        times = [r[1] for r in results if r]
        print("%s: %d concurrent POST /chat against a %.0f s provider (%s processes x %s threads):"
              % (engine, n, delay, procs, threads))
        print("  completed: %d/%d in %.2f s (p50 %.2f s, p99 %.2f s)%s   target %d: %s"
              % (ok, n, wall, pct(times, 0.5), pct(times, 0.99),
                 ("; errors " + json.dumps(errors)) if errors else "", n, "PASS" if ok == n else "MISS"))
        print("  workers' memory (RSS, %d processes incl. supervisor): %.1f MiB idle, %.1f MiB while waiting "
              "(%s MiB each)" % (len(pids), idle / 1024, waiting / 1024,
                                 ", ".join("%.1f" % (k / 1024) for k in per)))
    finally:
        stack.stop()
        provider.stop()


def main():
    part = os.environ.get("BENCH_PART", "all")
    with tempfile.TemporaryDirectory(prefix="ai-chat-chatbench.") as work, pgcluster.Cluster(fsync=True) as pg:
        engines = [("SQLite", None, 1.0), ("PostgreSQL", None, 2.0)]
        for engine, _, target in engines:
            if part in ("all", "latency"):
                url = pg.create_database() if engine == "PostgreSQL" else None
                latency(work, engine, url, target)
        for engine, _, _ in engines:
            if part in ("all", "concurrency"):
                url = pg.create_database() if engine == "PostgreSQL" else None
                concurrency(work, engine, url)


if __name__ == "__main__":
    main()
