"""Hostile neighbours: during a steady load, slowloris clients through nginx (headers and bodies
trickled a byte a second), raw connections to the worker's socket that send a byte and stall (and come
back when closed), and SIGUSR1, SIGHUP and SIGPIPE sent to the worker processes again and again.
GET /health's p99 stays under 50 ms, no request of the steady load fails, and the worker processes
are the same ones at the end.  Bounded numbers (make test): HOSTILE_SECONDS (default 8) of it, 500
slowloris clients, 50 raw connections, FCGI_READ_TIMEOUT_S=2, the default pool (2 x 64 threads)."""

import os
import signal
import socket
import threading
import time

from api import chat_path, new_user
from fastcgi_client import socket_path
from harness import Stack, encode_json, test
from test_worker_signals import stack_workers

SECONDS = float(os.environ.get("HOSTILE_SECONDS", "8"))
SLOWLORIS = 500
RAW = 50
STEADY_CLIENTS = 3
P99_MS = 50


class Hostiles:
    """The neighbours, each kind in a thread of its own, until stop."""

    def __init__(self, s, pids):
        self.s, self.pids = s, pids
        self.stop = threading.Event()
        self.raw_reopened = 0
        self.slow_open = 0
        self.signals_sent = 0
        self.errors = []
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.slowloris, self.raw, self.signals)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def slowloris(self):
        socks = []
        body_head = (b"POST /chats HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4000\r\n\r\n{")
        for i in range(SLOWLORIS):
            try:
                sock = self.s.connect(timeout=5)
                sock.setblocking(False)
                sock.send(b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: " if i % 2 else body_head)
                socks.append(sock)
            except OSError as e:
                self.errors.append(f"slowloris connect {i}: {e}")
        self.slow_open = len(socks)
        while not self.stop.wait(1.0):
            for sock in socks:
                try:
                    sock.send(b"a")
                except OSError:
                    pass
        for sock in socks:
            sock.close()

    def raw(self):
        path = socket_path(self.s)
        socks = []

        def opened():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            sock.send(b"\x01")
            sock.setblocking(False)
            return sock
        socks = [opened() for _ in range(RAW)]
        while not self.stop.wait(0.2):
            for i, sock in enumerate(socks):
                try:
                    gone = sock.recv(100) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:      # the worker closed it at its deadline: come back, and stall again
                    sock.close()
                    socks[i] = opened()
                    self.raw_reopened += 1
        for sock in socks:
            sock.close()

    def signals(self):
        sigs = (signal.SIGUSR1, signal.SIGHUP, signal.SIGPIPE)
        while not self.stop.wait(0.5):
            for sig in sigs:
                for pid in self.pids:
                    try:
                        os.kill(pid, sig)
                        self.signals_sent += 1
                    except ProcessLookupError:
                        self.errors.append(f"worker process {pid} is gone")


def steady(s, until, health_ms, failures):
    user = new_user("steady")
    while time.monotonic() < until:
        try:
            started = time.monotonic()
            resp = s.request("GET", "/health", timeout=10, validate=False)
            health_ms.append((time.monotonic() - started) * 1000)
            if resp.status != 200:
                failures.append(f"GET /health: {resp.describe()}")
            resp = s.request("POST", "/chats", json={"user_id": user, "title": "steady"}, timeout=10,
                             validate=False)
            if resp.status != 201:
                failures.append(f"POST /chats: {resp.describe()}")
                continue
            chat_id = resp.data()["id"]
            resp = s.request("GET", chat_path(chat_id, user_id=user), timeout=10, validate=False)
            if resp.status != 200:
                failures.append(f"GET /chats/id: {resp.describe()}")
        except OSError as e:
            failures.append(f"{type(e).__name__}: {e}")


@test
def hostile_neighbours_neither_stall_nor_silence_the_worker():
    with Stack(env={"FCGI_READ_TIMEOUT_S": "2", "WORKER_PROCESSES": "2", "WORKER_THREADS": "64",
                    "ACCESS_LOG": "off"}) as s:
        supervisor, children = stack_workers(s)
        pids = [supervisor, *children]
        hostiles = Hostiles(s, pids).start()
        time.sleep(1.0)                    # let the neighbours settle in
        health_ms, failures = [], []
        until = time.monotonic() + SECONDS
        clients = [threading.Thread(target=steady, args=(s, until, health_ms, failures))
                   for _ in range(STEADY_CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(SECONDS + 30)
        hostiles.join()
        assert health_ms, f"no GET /health answered: {failures[:3]} {hostiles.errors[:3]}"
        health_ms.sort()
        p50 = health_ms[len(health_ms) // 2]
        p99 = health_ms[min(len(health_ms) - 1, int(len(health_ms) * 0.99))]
        print(f"    {len(health_ms)} GET /health in {SECONDS:.0f} s beside {hostiles.slow_open} slowloris "
              f"clients, {RAW} stalled raw connections (closed and reopened {hostiles.raw_reopened} times) "
              f"and {hostiles.signals_sent} signals: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max "
              f"{health_ms[-1]:.1f} ms; {len(failures)} failures", flush=True)
        assert not failures, f"{len(failures)} requests of the steady load failed: {failures[:5]}"
        assert not hostiles.errors, hostiles.errors[:5]
        assert hostiles.slow_open == SLOWLORIS, f"only {hostiles.slow_open} slowloris clients connected"
        assert hostiles.raw_reopened >= RAW, \
            f"the stalled raw connections were closed {hostiles.raw_reopened} times in {SECONDS:.0f} s"
        assert p99 < P99_MS, f"GET /health p99 {p99:.1f} ms (p50 {p50:.1f} ms)"
        assert stack_workers(s) == (supervisor, children), \
            f"the worker processes changed: {pids} then {stack_workers(s)}"
        assert s.proc.poll() is None, "the stack stopped"
