#!/usr/bin/env python3
"""make bench, the accounts half (SQLite), in one run:

1. What a bearer token costs: `wrk -t1 -c50` on GET /chats/{id} with `Authorization: Bearer <token>`
   against a stack in AUTH=token, and the same request with `?user_id=` against a stack in AUTH=none,
   in BENCH_AUTH_PAIRS (default 5) short pairs back to back; the median of the pairs' ratios
   (target: the token costs at most 10% of the throughput, a ratio >= 0.90).  The same with a
   personal API key (`Bearer sk-...`: looked up by its hash in the database on every request).
2. Logins per second: `wrk -c8` on POST /auth/login (right passwords: every one an argon2id check
   with the default parameters, 19 MiB and 2 passes), with the worker processes' memory (their summed
   VmRSS, sampled) before and during the flood; at most PASSWORD_HASH_CONCURRENCY hashes at once per
   process bound it.

Environment: BENCH_AUTH_SECONDS (each run, default 5), BENCH_AUTH_PAIRS.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_bench import TOP, free_port, rss_kib, wait_for  # noqa: E402

import http.client  # noqa: E402

SECRET = "bench-secret-" + "0123456789abcdef" * 3
EMAIL, PASSWORD = "bench@example.com", "correct horse battery"


class Stack:
    def __init__(self, work, name, auth):
        self.port = free_port()
        self.run_dir = os.path.join(work, name)
        e = dict(os.environ)
        e.update(PORT=str(self.port), RUN_DIR=self.run_dir, ACCESS_LOG="off", NGINX_WORKERS="1",
                 LOG_LEVEL=os.environ.get("LOG_LEVEL", "warn"), AUTH=auth, JWT_SECRET=SECRET,
                 DATABASE_URL="sqlite:///" + os.path.join(work, name + ".db"))
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen([os.path.join(TOP, "conf", "stack.sh")], env=e, cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.request("GET", "/health")[0] == 200, 20, "the stack")

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = json.dumps(body).encode() if body is not None else None
        h = dict(headers or {})
        if data:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, out

    def worker_pids(self):
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


def wrk(url, seconds, connections=50, headers=(), script=None):
    """(requests per second, non-2xx count) of one wrk run."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = bad = 0.0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx or 3xx responses" in line or line.strip().startswith("Socket errors"):
            bad += sum(int(w.strip(",")) for w in line.split() if w.strip(",").isdigit())
    return rps, bad


def main():
    seconds = int(os.environ.get("BENCH_AUTH_SECONDS", "5"))
    pairs = int(os.environ.get("BENCH_AUTH_PAIRS", "5"))
    failed = False
    with tempfile.TemporaryDirectory(prefix="ai-chat-authbench.") as work:
        token_stack = Stack(work, "token", "token")
        none_stack = Stack(work, "none", "none")
        try:
            status, out = token_stack.request("POST", "/auth/register", {"email": EMAIL, "password": PASSWORD})
            assert status == 201, out
            status, out = token_stack.request("POST", "/auth/login", {"email": EMAIL, "password": PASSWORD})
            token = json.loads(out)["access_token"]
            status, out = token_stack.request("POST", "/chats", {"title": "bench"},
                                              {"Authorization": f"Bearer {token}"})
            chat_token = json.loads(out)["id"]
            status, out = token_stack.request("POST", "/auth/keys", {"name": "bench"},
                                              {"Authorization": f"Bearer {token}"})
            assert status == 201, out
            key = json.loads(out)["key"]
            status, out = none_stack.request("POST", "/chats", {"user_id": "bench-user", "title": "bench"})
            chat_none = json.loads(out)["id"]
            url_token = f"http://127.0.0.1:{token_stack.port}/chats/{chat_token}"
            url_none = f"http://127.0.0.1:{none_stack.port}/chats/{chat_none}?user_id=bench-user"
            auth = [f"Authorization: Bearer {token}"]
            auth_key = [f"Authorization: Bearer {key}"]
            wrk(url_token, 1, headers=auth)
            wrk(url_token, 1, headers=auth_key)
            wrk(url_none, 1)
            ratios, with_token, without, key_ratios, with_key = [], [], [], [], []
            for _ in range(pairs):
                a, bad_a = wrk(url_token, seconds, headers=auth)
                b, bad_b = wrk(url_none, seconds)
                k, bad_k = wrk(url_token, seconds, headers=auth_key)
                if bad_a or bad_b or bad_k:
                    print(f"auth_bench: FAIL non-2xx or socket errors ({bad_a}, {bad_b}, {bad_k})")
                    failed = True
                with_token.append(a)
                without.append(b)
                with_key.append(k)
                ratios.append(a / b if b else 0)
                key_ratios.append(k / b if b else 0)
            median = statistics.median(ratios)
            key_median = statistics.median(key_ratios)
            print(f"GET /chats/{{id}} with a bearer token: {statistics.median(with_token):.0f} req/s; "
                  f"AUTH=none: {statistics.median(without):.0f} req/s; {pairs} pairs of {seconds} s, ratios "
                  + " ".join(f"{r:.2f}" for r in ratios) + f" -> median {median:.2f} (target >= 0.90: "
                  + ("met" if median >= 0.90 else "MISS") + ")")
            print(f"GET /chats/{{id}} with an API key: {statistics.median(with_key):.0f} req/s; ratios to "
                  "AUTH=none " + " ".join(f"{r:.2f}" for r in key_ratios) + f" -> median {key_median:.2f}")

            # logins per second, and the memory they take
            lua = os.path.join(work, "login.lua")
            with open(lua, "w") as f:
                f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        f'wrk.body = \'{json.dumps({"email": EMAIL, "password": PASSWORD})}\'\n')
            pids = token_stack.worker_pids()
            before = sum(rss_kib(p) for p in pids)
            peak = [before]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], sum(rss_kib(p) for p in pids))
                    time.sleep(0.05)
            t = threading.Thread(target=sample)
            t.start()
            rps, bad = wrk(f"http://127.0.0.1:{token_stack.port}/auth/login", seconds, connections=8, script=lua)
            stop.set()
            t.join()
            if bad:
                print(f"auth_bench: FAIL {bad} logins were not 200")
                failed = True
            print(f"POST /auth/login (argon2id 19 MiB, 2 passes; PASSWORD_HASH_CONCURRENCY=2 per process, "
                  f"{len(pids)} processes): {rps:.1f} logins/s; the workers' RSS {before / 1024:.1f} MiB "
                  f"before, at most {peak[0] / 1024:.1f} MiB during")
        finally:
            token_stack.stop()
            none_stack.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
