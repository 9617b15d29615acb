"""A thread gives back what a large request made it take: RSS after a burst of large chats and pages
stays near what the same traffic with small payloads leaves, but for SQLite's page cache (README's
sizing holds after large traffic too)."""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from api import chat_path
from harness import WORKER, Stack, test
from provider import model_env, new_chat, send, shared_provider, tag
from test_crash import skip

THREADS = 16
MESSAGE = 200 * 1024     # a message near the largest the default model's context takes


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def burst(s, chats, size):
    """Every thread busy at once, twice over: a POST /chat whose message, provider request, provider
    answer and reply are each about size bytes, then the chat's page of messages."""
    def one(i):
        user, chat_id = chats[i % len(chats)]
        message = f"{tag()} " + "x" * size
        status, _, data = send(s, chat_id, user, message)
        assert status == 200, data
        resp = s.request("GET", chat_path(chat_id, "/messages", user_id=user, limit=4, newest="true"),
                         validate=False, timeout=60)
        assert resp.status == 200, resp.describe()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(2 * THREADS)))


@test
def memory_comes_back_after_large_requests():
    # Regression: a thread kept its largest buffers (response body, provider request and answer, 1 MiB
    # each kept), and glibc's adaptive mmap threshold kept freed large blocks in the arenas.
    if "libasan" in subprocess.run(["ldd", str(WORKER)], capture_output=True, text=True).stdout:
        skip("built with AddressSanitizer, whose allocator keeps freed memory in quarantine: RSS says nothing")
        return
    env = model_env(shared_provider(), WORKER_PROCESSES="1", WORKER_THREADS=str(THREADS))
    with Stack(env=env) as s:
        (pid,) = [p for p in s.leftover_processes() if "ai-chat-fcgi" in Path(f"/proc/{p}/cmdline").read_text()]
        chats = [new_chat(s) for _ in range(THREADS)]
        for _ in range(2):
            burst(s, chats, 100)          # every thread and its connection warmed up, small payloads
        time.sleep(0.5)
        small = rss_kib(pid)
        for _ in range(3):
            burst(s, chats, MESSAGE)
        time.sleep(0.5)
        large = rss_kib(pid)
        grown = (large - small) / 1024
        print(f"    RSS {small / 1024:.1f} MiB after small requests, {large / 1024:.1f} MiB after "
              f"{6 * THREADS} chats of {MESSAGE // 1024} KiB on {THREADS} threads (+{grown:.1f} MiB, "
              f"{grown / THREADS:.2f} MiB a thread)")
        # What stays is mostly SQLite's page cache, capped at 1 MiB a connection (the old code kept
        # 3.5 MiB a thread here).
        assert grown / THREADS < 1.5, f"+{grown:.1f} MiB over {THREADS} threads: large buffers are kept"
