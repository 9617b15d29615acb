#!/usr/bin/env python3
"""make bench, the event loop's part: many chats in flight at once through nginx, side by side with
thread-per-chat.

    python3 tests/bench/loop_bench.py            # the whole comparison (make bench runs it)
    python3 tests/bench/loop_bench.py provider   # the fake provider alone (--port-file, --seconds, --pieces)
    python3 tests/bench/loop_bench.py client     # the load client alone (see client())

Each run: a stack (conf/stack.sh: nginx with 2 workers, the worker with its default pool), a fake
provider that streams each reply in BENCH_PIECES pieces over BENCH_REPLY_S seconds (or answers a plain
call after that long), BENCH_STREAMS concurrent streamed POST /chat (default 10,000), then
BENCH_PLAIN concurrent plain ones (default 2,000), each in its own chat.  Meanwhile a prober sends
GET /chats/{id} every 20 ms (a chat of its own) and the worker processes' RSS is sampled every 0.5 s.
Checked: every answer complete, every delta in order and the deltas making the reply, every reply
stored whole (the database read after the run).  Printed per run: completions, elapsed time, peak
worker RSS, GET p50/p99; then the same for thread-per-chat (EVENT_LOOP=0, WORKER_PROCESSES x
WORKER_THREADS raised to hold every chat: 1,024 threads a process), and the ratios.

The provider and the client are asyncio programs of their own (one process each, so that they hold
10,000 streams without the worker's help); their CPU time and peak RSS are printed too.

Environment: BENCH_STREAMS, BENCH_PLAIN, BENCH_REPLY_S (20), BENCH_PIECES (20), BENCH_RAMP_S (seconds
over which the clients connect, default 16: 625 new chats a second, the arrival rate that keeps
10,000 replies of 20 s in flight; all are in flight at once from the last start to the first end; the
most in flight at once is printed), BENCH_MODES ("loop threads"), BENCH_KEEP=1 keeps the
temporary directory.
"""
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable
USER = "bench-loop"
# The databases go here (default /dev/shm when it exists): on a machine whose disk other work shares,
# SQLite's commits (two fsyncs a chat) would measure the disk, not the worker.  BENCH_DB_DIR=. for the
# temporary directory on disk.
DB_DIR = os.environ.get("BENCH_DB_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else "")


def reply_of(message, pieces):
    """The reply the provider gives a message: its pieces, in order."""
    tag = message.split()[-1]
    return ["%s.%d " % (tag, i) for i in range(pieces)]


# --------------------------------------------------------------------------------------------------
# The fake provider: HTTP/1.1, keep-alive, one coroutine per call.

async def provider_conn(reader, writer, seconds, pieces):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length)) if length else {}
            last = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "x")
            parts = reply_of(last, pieces)
            model = body.get("model", "m")
            usage = {"prompt_tokens": 10, "completion_tokens": pieces, "total_tokens": 10 + pieces}
            if body.get("stream"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                step = seconds / pieces
                for i, p in enumerate(parts):
                    await asyncio.sleep(step if i else step / 2)
                    data = b'data: {"object":"chat.completion.chunk","model":"%s","choices":[{"index":0,"delta":' \
                           b'{"content":"%s"},"finish_reason":null}]}\n\n' % (model.encode(), p.encode())
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                end = json.dumps({"object": "chat.completion.chunk", "model": model, "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}).encode()
                for data in (b"data: " + end + b"\n\n", b"data: [DONE]\n\n"):
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                writer.write(b"0\r\n\r\n")
            else:
                await asyncio.sleep(seconds)
                out = json.dumps({"object": "chat.completion", "model": model, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                     "finish_reason": "stop"}], "usage": usage}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(out), out))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def provider_main(port_file, seconds, pieces):
    server = await asyncio.start_server(lambda r, w: provider_conn(r, w, seconds, pieces), "127.0.0.1", 0,
                                        backlog=4096, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------------------------------
# The load client: one connection a chat, Connection: close, the answer checked as it comes.

async def read_chunked(reader):
    """Yields the body's pieces of a chunked response."""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)


async def one_chat(port, chat_id, i, stream, pieces, start_at, results):
    message = "bench m%d" % i
    want = reply_of(message, pieces)
    body = json.dumps({"chat_id": chat_id, "user_id": USER, "message": message, "stream": stream}).encode()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    began = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(b"POST /chat HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            rest = await reader.read(300)
            results[i] = ("status %d %s" % (status, rest[:120]), time.monotonic() - began)
            writer.close()
            return
        chunked = b"transfer-encoding: chunked" in head.lower()
        if not stream:
            if chunked:
                data = b"".join([p async for p in read_chunked(reader)])
            else:
                length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                              if l.lower().startswith(b"content-length"))
                data = await reader.readexactly(length)
            data = json.loads(data)
            ok = data.get("reply") == "".join(want)
            results[i] = ("ok" if ok else "wrong reply", time.monotonic() - began, began, time.monotonic())
            writer.close()
            return
        buf, got, done, problem = b"", [], None, None
        source = read_chunked(reader) if chunked else None
        while done is None and problem is None:
            piece = await source.__anext__() if source else await reader.read(65536)
            if not piece:
                problem = "cut short after %d deltas" % len(got)
                break
            buf += piece
            while b"\n\n" in buf and done is None:
                event, buf = buf.split(b"\n\n", 1)
                name, data = None, None
                for line in event.split(b"\n"):
                    if line.startswith(b"event: "):
                        name = line[7:]
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if name == b"delta":
                    got.append(json.loads(data)["content"])
                elif name == b"done":
                    done = json.loads(data)
                elif name == b"error":
                    problem = "error event %s" % data[:100]
        writer.close()
        if problem is None:
            if got != want:
                problem = "deltas out of order or missing (%d of %d)" % (len(got), len(want))
            elif done.get("reply") != "".join(want):
                problem = "done's reply differs"
        results[i] = (problem or "ok", time.monotonic() - began, began, time.monotonic())
    except (OSError, asyncio.IncompleteReadError, StopAsyncIteration, ValueError) as e:
        results[i] = ("%s: %s" % (type(e).__name__, e), time.monotonic() - began)


async def client_main(port, chats_file, stream, pieces, ramp, out_file):
    with open(chats_file) as f:
        chats = json.load(f)
    results = [None] * len(chats)
    t0 = time.monotonic() + 0.2
    step = ramp / max(1, len(chats))
    await asyncio.gather(*(one_chat(port, c, i, stream, pieces, t0 + i * step, results) for i, c in enumerate(chats)))
    with open(out_file, "w") as f:
        json.dump({"results": results, "elapsed": time.monotonic() - t0}, f)


# --------------------------------------------------------------------------------------------------
# The comparison

def proc_stat(pid):
    """(cpu seconds, rss KiB) of a process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return cpu, rss
    except (OSError, StopIteration, ValueError):
        return 0.0, 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Helper:
    """A subprocess of this file (the provider or the client), with its CPU and peak RSS."""

    def __init__(self, args, work, name):
        self.log = open(os.path.join(work, name + ".log"), "w")
        # Niced: in production the clients and the provider are other machines; here they share the
        # 2 CPUs with the stack under test, which should not wait behind them (BENCH_NICE=0 to compare).
        self.proc = subprocess.Popen(["nice", "-n", os.environ.get("BENCH_NICE", "10"), PY, os.path.abspath(__file__)]
                                     + args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak = 0
        self.cpu = 0.0

    def sample(self):
        cpu, rss = proc_stat(self.proc.pid)
        self.peak = max(self.peak, rss)
        if cpu:
            self.cpu = cpu

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


class Stack:
    def __init__(self, work, name, env):
        self.port = free_port()
        self.run_dir = os.path.join(work, name)
        self.db = os.path.join(DB_DIR or work, name + ".db")
        e = dict(os.environ, PORT=str(self.port), RUN_DIR=self.run_dir, ACCESS_LOG="off", NGINX_WORKERS="2", AUTH="none",
                 LOG_LEVEL=os.environ.get("LOG_LEVEL", "info"), DATABASE_URL="sqlite:///" + self.db, **env)
        self.log_path = os.path.join(work, name + ".log")
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen([os.path.join(TOP, "conf", "stack.sh")], env=e, cwd=work, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.get("/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("loop_bench: the %s stack did not start (see %s.log)" % (name, name))
            time.sleep(0.2)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def workers(self):
        """The worker processes (the supervisor's children)."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if b"ai-chat-fcgi" in cmd and self.run_dir.encode() in env:
                pids.append((int(d), ppid))
        mine = {p for p, _ in pids}
        children = [p for p, pp in pids if pp in mine]
        return children or sorted(mine)   # WORKER_PROCESSES=1: no supervisor

    def worker_ms(self, path_prefix):
        """The worker's own time for requests of a path (its request lines, LOG_LEVEL=info), sorted."""
        ms = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if " method=GET path=" + path_prefix in line:
                    for field in line.split():
                        if field.startswith("ms="):
                            ms.append(float(field[3:]))
        return sorted(ms)

    def nginx(self):
        """nginx's worker processes."""
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if cmd.startswith(b"nginx: worker") or (b"nginx" in cmd and self.run_dir.encode() in cmd):
                found.append(int(d))
        return found

    def make_chats(self, n):
        """n chats (and one for the prober) straight into the database: one transaction."""
        db = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        now = int(time.time() * 1e6)
        ids = [str(uuid.uuid4()) for _ in range(n + 1)]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO chats (id, user_id, title, created_at, updated_at, message_count) "
                       "VALUES (?, ?, 'bench', ?, ?, 0)", [(i, USER, now, now) for i in ids])
        db.execute("COMMIT")
        db.close()
        return ids[:-1], ids[-1]

    def stored_whole(self, chats, pieces):
        """How many chats hold their user message and their whole reply, complete."""
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        got = {}
        for chat_id, role, content, state in db.execute(
                "SELECT chat_id, role, content, state FROM messages WHERE chat_id IN (SELECT id FROM chats "
                "WHERE user_id = ?) ORDER BY id", (USER,)):
            got.setdefault(chat_id, []).append((role, content, state))
        db.close()
        whole = 0
        for i, c in enumerate(chats):
            message = "bench m%d" % i
            if got.get(c) == [("user", message, 0), ("assistant", "".join(reply_of(message, pieces)), 0)]:
                whole += 1
        return whole

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def fig_inside(xs, p):
    return pct(xs, p) if xs else float("nan")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def run(work, mode, n, stream, seconds, pieces, ramp):
    """One run; returns its figures."""
    name = "%s-%s-%d" % (mode, "stream" if stream else "plain", n)
    pfile = os.path.join(work, name + ".port")
    provider = Helper(["provider", "--port-file", pfile, "--seconds", str(seconds), "--pieces", str(pieces)],
                      work, name + "-provider")
    while not os.path.exists(pfile):
        time.sleep(0.05)
    pport = int(open(pfile).read())
    env = {"GROQ_API_KEY": "test-key", "GROQ_BASE_URL": "http://127.0.0.1:%d/v1" % pport, "PROVIDER_RETRIES": "0",
           "MODELS_FILE": os.path.join(TOP, "conf", "models.conf"),
           "CHAT_RATE_PER_MINUTE": "0", "CHAT_CONCURRENCY_PER_USER": "0",   # one user sends them all
           "AUTO_TITLE": "0"}
    if mode == "threads":
        procs = -(-int(n * 1.05 + 64) // 1024)
        env.update(EVENT_LOOP="0", WORKER_PROCESSES=str(procs), WORKER_THREADS="1024")
    else:
        env.update(EVENT_LOOP="1")
    stack = Stack(work, name, env)
    try:
        chats, probe_chat = stack.make_chats(n)
        chats_file = os.path.join(work, name + ".chats.json")
        with open(chats_file, "w") as f:
            json.dump(chats, f)
        workers = stack.workers()
        idle = sum(proc_stat(p)[1] for p in workers)
        nginx = stack.nginx()
        cpu0 = sum(proc_stat(p)[0] for p in workers), sum(proc_stat(p)[0] for p in nginx)
        out_file = os.path.join(work, name + ".out.json")
        client = Helper(["client", "--port", str(stack.port), "--chats", chats_file, "--stream", str(int(stream)),
                         "--pieces", str(pieces), "--ramp", str(ramp), "--out", out_file], work, name + "-client")
        lat, lat_at, peak, stop = [], [], [0], threading.Event()
        t0 = time.monotonic()

        def probe():
            path = "/chats/%s?user_id=%s" % (probe_chat, USER)
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    status, _ = stack.get(path)
                    lat.append((time.perf_counter() - t) * 1000 if status == 200 else float("inf"))
                except OSError:
                    lat.append(float("inf"))
                lat_at.append(time.monotonic() - t0)
                time.sleep(0.02)

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], sum(proc_stat(p)[1] for p in workers))
                provider.sample()
                client.sample()
                time.sleep(0.5)

        ths = [threading.Thread(target=probe, daemon=True), threading.Thread(target=sample, daemon=True)]
        for th in ths:
            th.start()
        client.proc.wait()
        elapsed = time.monotonic() - t0
        cpu_workers = sum(proc_stat(p)[0] for p in workers) - cpu0[0]
        cpu_nginx = sum(proc_stat(p)[0] for p in nginx) - cpu0[1]
        stop.set()
        for th in ths:
            th.join()
        with open(out_file) as f:
            res = json.load(f)["results"]
        ok = sum(1 for r in res if r and r[0] == "ok")
        problems = {}
        for r in res:
            if not r or r[0] != "ok":
                k = (r[0] if r else "no result")[:80]
                problems[k] = problems.get(k, 0) + 1
        whole = stack.stored_whole(chats, pieces)
        inside = stack.worker_ms("/chats/" + probe_chat)
        windows = {}
        for at, ms in zip(lat_at, lat):
            windows.setdefault(int(at // 5) * 5, []).append(ms)
        print("    GET /chats/{id} inside the worker (its log): p99 %.2f ms, max %.1f ms; end to end p99 by 5 s "
              "of the run: " % (fig_inside(inside, 0.99), inside[-1] if inside else float("nan")) + ", ".join(
            "%ds %.0f" % (w, pct(v, 0.99)) for w, v in sorted(windows.items())), flush=True)
        # The most chats in flight at once (their answers begun, not yet ended), from the client's clock.
        edges = sorted([(r[2], 1) for r in res if r and len(r) == 4] + [(r[3], -1) for r in res if r and len(r) == 4])
        inflight = most = 0
        for _, d in edges:
            inflight += d
            most = max(most, inflight)
        fig = {"mode": mode, "n": n, "stream": stream, "ok": ok, "whole": whole, "elapsed": elapsed,
               "rss_peak_mib": peak[0] / 1024, "most_in_flight": most, "rss_idle_mib": idle / 1024, "workers": len(workers),
               "get_p50": pct(lat, 0.5), "get_p99": pct(lat, 0.99), "gets": len(lat),
               "chat_p50": pct([r[1] for r in res if r], 0.5), "chat_max": max(r[1] for r in res if r),
               "provider_cpu": provider.cpu, "provider_mib": provider.peak / 1024,
               "client_cpu": client.cpu, "client_mib": client.peak / 1024, "problems": problems,
               "workers_cpu": cpu_workers, "nginx_cpu": cpu_nginx,
               "get_worker_p99": pct(inside, 0.99), "get_worker_max": inside[-1] if inside else float("nan")}
        print("  %-7s %-6s %6d: %d/%d complete, %d stored whole, at most %d at once, %.1f s; workers (%d) %.0f MiB peak (%.0f idle); "
              "GET /chats/{id} p50 %.1f ms p99 %.1f ms (%d); workers %.1f s CPU, nginx %.1f s CPU; provider %.1f s CPU %.0f MiB, client %.1f s CPU %.0f MiB%s"
              % (mode, "stream" if stream else "plain", n, ok, n, whole, most, elapsed, len(workers), fig["rss_peak_mib"],
                 fig["rss_idle_mib"], fig["get_p50"], fig["get_p99"], len(lat), cpu_workers, cpu_nginx, provider.cpu, fig["provider_mib"],
                 client.cpu, fig["client_mib"], ("; problems " + json.dumps(problems)) if problems else ""),
              flush=True)
        return fig
    finally:
        stack.stop()
        provider.stop()
        if DB_DIR:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(stack.db + suffix)
                except OSError:
                    pass


def compare(work):
    streams = int(os.environ.get("BENCH_STREAMS", "10000"))
    plain = int(os.environ.get("BENCH_PLAIN", "2000"))
    seconds = float(os.environ.get("BENCH_REPLY_S", "20"))
    pieces = int(os.environ.get("BENCH_PIECES", "20"))
    ramp = float(os.environ.get("BENCH_RAMP_S", "16"))
    modes = os.environ.get("BENCH_MODES", "loop threads").split()
    print("event loop bench: %d streamed and %d plain POST /chat at once, replies of %d pieces over %.0f s, "
          "clients connecting over %.0f s; %d CPUs; databases in %s" % (streams, plain, pieces, seconds, ramp,
                                                                       os.cpu_count(), DB_DIR or work), flush=True)
    figs = {}
    for stream, n in ((True, streams), (False, plain)):
        if n <= 0:
            continue
        for mode in modes:
            figs[(mode, stream)] = run(work, mode, n, stream, seconds, pieces, ramp)
    print()
    print("%-18s %12s %12s %10s %10s %14s %12s" % ("", "complete", "stored whole", "at once", "elapsed", "peak RSS",
                                                  "GET p99"))
    for (mode, stream), f in figs.items():
        print("%-18s %12s %12s %10d %9.1fs %11.0f MiB %9.1f ms" % ("%s %s" % (mode, "stream" if stream else "plain"),
              "%d/%d" % (f["ok"], f["n"]), f["whole"], f["most_in_flight"], f["elapsed"], f["rss_peak_mib"],
              f["get_p99"]))
    for stream in (True, False):
        a, b = figs.get(("loop", stream)), figs.get(("threads", stream))
        if a and b:
            print("ratios loop/threads (%s): completions %.2f, elapsed %.2f, peak RSS %.2f, GET p99 %.2f"
                  % ("stream" if stream else "plain", a["ok"] / max(1, b["ok"]), a["elapsed"] / b["elapsed"],
                     a["rss_peak_mib"] / max(0.1, b["rss_peak_mib"]), a["get_p99"] / max(0.01, b["get_p99"])))
    loop = figs.get(("loop", True))
    if loop:
        verdicts = [("all %d streams complete and stored whole" % loop["n"], loop["ok"] == loop["n"] == loop["whole"]),
                    ("worker RSS < 512 MiB at the peak", loop["rss_peak_mib"] < 512),
                    ("GET /chats/{id} p99 < 20 ms", loop["get_p99"] < 20)]
        lp = figs.get(("loop", False))
        if lp:
            verdicts.append(("all %d plain chats complete and stored whole" % lp["n"], lp["ok"] == lp["n"] == lp["whole"]))
        for what, good in verdicts:
            print("target: %-50s %s" % (what, "PASS" if good else "MISS"))
    with open(os.path.join(work, "figures.json"), "w") as f:
        json.dump({"%s-%s" % k: v for k, v in figs.items()}, f, indent=1)


def main():
    args = sys.argv[1:]

    def opt(name, default=None):
        return args[args.index(name) + 1] if name in args else default

    if args[:1] == ["provider"]:
        asyncio.run(provider_main(opt("--port-file"), float(opt("--seconds", "20")), int(opt("--pieces", "20"))))
        return
    if args[:1] == ["client"]:
        asyncio.run(client_main(int(opt("--port")), opt("--chats"), opt("--stream") == "1", int(opt("--pieces")),
                                float(opt("--ramp")), opt("--out")))
        return
    work = tempfile.mkdtemp(prefix="ai-chat-loopbench.")
    try:
        compare(work)
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            print("loop_bench: kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
