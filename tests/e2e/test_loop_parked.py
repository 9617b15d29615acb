"""The event loop (fcgi/loop.c): chats waiting on the model are parked there, not on threads.

Hundreds of streamed chats parked at once by a pool of 8 threads; the provider failing for every
parked chat at once; kill -9 of a worker holding parked chats; a client that leaves while its chat is
parked (streamed and not); SIGTERM letting parked chats finish; EVENT_LOOP=0 (thread per chat).
"""

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from api import chat_path, create_chat, expect, new_user
from harness import Stack, test
from provider import (FAILED, GENERATING, EventStream, FakeProvider, all_rows, check_reply,
                      check_stored_reply, deltas_text, model_env, rows, send, stream_chat, tag)
from test_crash import check_no_partial_rows, supervisor_and_children

PARKED = int(os.environ.get("LOOP_TEST_CHATS", "300"))
THREADS = "4"   # per process, 2 processes: a pool of 8 threads


def threads_of(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def open_stream(s, chat_id, user, message, timeout=120):
    return EventStream(s, "/chat", {"chat_id": chat_id, "user_id": user, "message": message, "stream": True},
                       timeout=timeout)


def stream_one(s, chat_id, user, message, out, i):
    """Streams a send to its end; out[i] = (status, events, stream) or the exception."""
    try:
        with open_stream(s, chat_id, user, message) as st:
            out[i] = (st.status, st.read_all(), st)
    except Exception as e:  # noqa: BLE001 - reported by the test
        out[i] = e


def check_whole(s, chat_id, events, reply):
    names = [e.name for e in events]
    assert names[-1] == "done" and names.count("done") == 1 and set(names[:-1]) <= {"delta"}, events
    assert deltas_text(events) == reply, f"deltas {deltas_text(events)!r}, wanted {reply!r}"
    done = events[-1].json()
    check_reply(done, chat_id, reply)
    check_stored_reply(s, done)
    return done


@test
def hundreds_of_streams_parked_by_eight_threads():
    words = 8
    reply = " ".join(f"w{i}" for i in range(words))
    with FakeProvider() as p, Stack(env=model_env(p, WORKER_THREADS=THREADS, PROVIDER_TIMEOUT_S="60")) as s:
        _, workers = supervisor_and_children(s)
        before = {pid: threads_of(pid) for pid in workers}
        chats = [(u, create_chat(s, u)["id"]) for u in (new_user("park") for _ in range(PARKED))]
        out = [None] * PARKED
        t = tag()
        ts = [threading.Thread(target=stream_one, daemon=True,
                               args=(s, chat_id, user, f"#words={words} #chunk_delay=1 {t} {i}", out, i))
              for i, (user, chat_id) in enumerate(chats)]
        for th in ts:
            th.start()
        peak = {pid: 0 for pid in workers}
        while any(th.is_alive() for th in ts):
            for pid in workers:
                peak[pid] = max(peak[pid], threads_of(pid))
            time.sleep(0.2)
        errors = [o for o in out if not isinstance(o, tuple) or o[0] != 200]
        assert not errors, f"{len(errors)} of {PARKED} streams failed: {errors[:3]!r}"
        for (user, chat_id), (_, events, _) in zip(chats, out):
            check_whole(s, chat_id, events, reply)
        # They were all parked at once: every stream had its first delta before any had its last.
        first_deltas = [next(e.at for e in o[2].seen if e.name == "delta") + o[2].started for o in out]
        dones = [o[1][-1].at + o[2].started for o in out]
        assert max(first_deltas) < min(dones), \
            f"a stream began only after another had ended: the chats were not all in flight at once " \
            f"(last first delta {max(first_deltas) - min(dones):+.2f} s after the first end)"
        # ... and no thread was added for them (the pool, the loop and the main thread).
        for pid in workers:
            assert peak[pid] <= int(THREADS) + 2, f"worker {pid} ran {peak[pid]} threads (had {before[pid]})"
        print(f"    {PARKED} streams on {2 * int(THREADS)} threads; peak threads per worker {sorted(peak.values())}",
              flush=True)
        check_no_partial_rows(s)


@test
def provider_failing_for_every_parked_chat_at_once():
    n = 60
    p = FakeProvider().start()
    port = p.port
    try:
        with Stack(env=model_env(p, WORKER_THREADS=THREADS, PROVIDER_RETRIES="1")) as s:
            chats = [(u, create_chat(s, u)["id"]) for u in (new_user("fail") for _ in range(n))]
            out = [None] * n
            t = tag()
            # half streamed (a few deltas, then the provider goes), half plain (nothing came yet)
            def one(i, user, chat_id):
                if i % 2 == 0:
                    stream_one(s, chat_id, user, f"#words=50 #chunk_delay=0.4 {t} {i}", out, i)
                else:
                    try:
                        out[i] = send(s, chat_id, user, f"#delay=30 {t} {i}")
                    except Exception as e:  # noqa: BLE001
                        out[i] = e
            ts = [threading.Thread(target=one, args=(i, u, c), daemon=True) for i, (u, c) in enumerate(chats)]
            for th in ts:
                th.start()
            deadline = time.monotonic() + 30
            while len(p.requests_for(t)) < n:
                assert time.monotonic() < deadline, f"only {len(p.requests_for(t))} of {n} calls reached the provider"
                time.sleep(0.1)
            time.sleep(1.0)   # the streams have sent a few deltas
            p.proc.kill()      # every call's connection drops at once; its retry finds nothing
            p.proc.wait()
            for th in ts:
                th.join(60)
            for i, (user, chat_id) in enumerate(chats):
                o = out[i]
                if i % 2 == 0:
                    status, events, _ = o
                    assert status == 200, o
                    names = [e.name for e in events]
                    assert names[-1] == "error" and "done" not in names, f"stream {i}: {events!r}"
                    assert events[-1].json()["detail"].startswith(FAILED), events[-1]
                    partial = deltas_text(events)
                    shown = rows(s, chat_id)
                    assert shown[0]["role"] == "user", shown
                    if partial:   # what the client saw is stored, marked incomplete
                        assert shown[1]["content"] == partial and shown[1]["incomplete"] == 1, (shown, partial)
                else:
                    status, _, data = o
                    assert status == 503 and data["detail"].startswith(FAILED), o
                    assert [r["role"] for r in rows(s, chat_id)] == ["user"], rows(s, chat_id)
                left = [r for r in all_rows(s, chat_id) if r["state"] == GENERATING]
                assert not left, f"chat {i}: a send was left generating: {left}"
            check_no_partial_rows(s)
            # The provider comes back: chats are answered again.
            p2 = start_provider_on(port)
            try:
                user, chat_id = chats[0]
                status, _, data = send(s, chat_id, user, f"again {t}")
                assert status == 200, data
                check_reply(data, chat_id, f"Echo: again {t}")
            finally:
                p2.stop()
    finally:
        p.stop()


def start_provider_on(port):
    """A fake provider on a given port (the one the stack was started with)."""
    import subprocess
    import sys
    from provider import FAKE_PROVIDER
    proc = subprocess.Popen([sys.executable, str(FAKE_PROVIDER), "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the fake provider did not come back"
            time.sleep(0.05)

    class Handle:
        def stop(self):
            proc.terminate()
            proc.wait(5)
    return Handle()


@test
def sigkill_of_a_worker_holding_parked_chats():
    n = 60
    with FakeProvider() as p, Stack(env=model_env(p, WORKER_THREADS=THREADS, PROVIDER_TIMEOUT_S="30")) as s:
        chats = [(u, create_chat(s, u)["id"]) for u in (new_user("k9") for _ in range(n))]
        supervisor, children = supervisor_and_children(s)
        out = [None] * n
        t = tag()
        ts = [threading.Thread(target=stream_one, daemon=True,
                               args=(s, c, u, f"#words=8 #chunk_delay=0.5 {t} {i}", out, i))
              for i, (u, c) in enumerate(chats)]
        for th in ts:
            th.start()
        deadline = time.monotonic() + 30
        while len(p.requests_for(t)) < n:
            assert time.monotonic() < deadline, "the chats did not all reach the provider"
            time.sleep(0.05)
        victim = children[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        while True:
            now_supervisor, now = supervisor_and_children(s)
            if now_supervisor == supervisor and len(now) == 2 and victim not in now:
                break
            assert time.monotonic() - killed_at < 5, f"the pool was not restored within 5 s: {now}"
            time.sleep(0.05)
        for th in ts:
            th.join(60)
        whole = cut = 0
        for (user, chat_id), o in zip(chats, out):
            if isinstance(o, tuple) and o[1] and o[1][-1].name == "done":
                check_whole(s, chat_id, o[1], " ".join(f"w{i}" for i in range(8)))
                whole += 1
            else:
                cut += 1   # its worker died: the stream ended without a done event
                assert not isinstance(o, tuple) or "done" not in [e.name for e in o[1]], o
        print(f"    {whole} chats completed on the other worker, {cut} cut by the kill", flush=True)
        assert whole > 0 and cut > 0, f"{whole} whole, {cut} cut: the kill did not fall among parked chats"
        check_no_partial_rows(s)
        user, chat_id = new_user("after"), None
        chat_id = create_chat(s, user)["id"]
        for i in range(4):
            status, _, data = send(s, chat_id, user, f"after {i}")
            assert status == 200, data
            check_reply(data, chat_id, f"Echo: after {i}")


@test
def client_leaving_a_parked_chat_stops_its_call():
    with FakeProvider() as p, Stack(env=model_env(p, WORKER_THREADS=THREADS)) as s:
        # streamed: leaves after two deltas
        user, chat_id = new_user("leave"), None
        chat_id = create_chat(s, user)["id"]
        t = tag()
        with open_stream(s, chat_id, user, f"#words=40 #chunk_delay=0.3 {t}", timeout=30) as st:
            got = 0
            for e in st.events():
                if e.name == "delta" and e.json()["content"]:
                    got += 1
                    if got == 2:
                        break
            st.close()
        left = time.monotonic()
        while True:
            shown = rows(s, chat_id)
            if len(shown) == 2:
                break
            assert time.monotonic() - left < 5, f"nothing stored 5 s after the client left: {all_rows(s, chat_id)}"
            time.sleep(0.05)
        assert shown[1]["incomplete"] == 1 and shown[1]["content"].startswith("w0 w1"), shown
        assert not shown[1]["content"].startswith(" ".join(f"w{i}" for i in range(40))), shown
        # plain: leaves while the model thinks; the call stops, the reply row fails with nothing
        user2 = new_user("leave")
        chat2 = create_chat(s, user2)["id"]
        t2 = tag()
        sock = s.connect()
        body = ('{"chat_id": "%s", "user_id": "%s", "message": "#delay=20 %s"}' % (chat2, user2, t2)).encode()
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        deadline = time.monotonic() + 10
        while not p.requests_for(t2):
            assert time.monotonic() < deadline, "the send did not reach the provider"
            time.sleep(0.05)
        sock.close()
        left = time.monotonic()
        while True:
            hidden = [r for r in all_rows(s, chat2) if r["role"] == "assistant"]
            if hidden and hidden[0]["state"] != GENERATING:
                break
            assert time.monotonic() - left < 5, f"the send still runs 5 s after its client left: {hidden}"
            time.sleep(0.05)
        assert [r["role"] for r in rows(s, chat2)] == ["user"], rows(s, chat2)
        check_no_partial_rows(s)


@test
def sigterm_lets_parked_chats_finish():
    with FakeProvider() as p:
        s = Stack(env=model_env(p, WORKER_THREADS=THREADS)).start()
        try:
            n = 20
            chats = [(u, create_chat(s, u)["id"]) for u in (new_user("term") for _ in range(n))]
            out = [None] * n
            t = tag()
            ts = [threading.Thread(target=stream_one, daemon=True,
                                   args=(s, c, u, f"#words=6 #chunk_delay=0.4 {t} {i}", out, i))
                  for i, (u, c) in enumerate(chats)]
            for th in ts:
                th.start()
            deadline = time.monotonic() + 20
            while len(p.requests_for(t)) < n:
                assert time.monotonic() < deadline, "the chats did not reach the provider"
                time.sleep(0.05)
            supervisor, workers = supervisor_and_children(s)
            for pid in workers:
                os.kill(pid, signal.SIGTERM)   # the workers stop accepting; parked chats go on
            for th in ts:
                th.join(30)
            for (user, chat_id), o in zip(chats, out):
                assert isinstance(o, tuple) and o[0] == 200, o
                check_whole(s, chat_id, o[1], " ".join(f"w{i}" for i in range(6)))
        finally:
            s.stop()


@test
def event_loop_off_is_thread_per_chat():
    with FakeProvider() as p, Stack(env=model_env(p, EVENT_LOOP="0", WORKER_THREADS=THREADS)) as s:
        user, chat_id = new_user("noloop"), None
        chat_id = create_chat(s, user)["id"]
        message = f"no loop {tag()}"
        status, _, data = send(s, chat_id, user, message)
        assert status == 200, data
        check_reply(data, chat_id, "Echo: " + message)
        check_stored_reply(s, data)
        with stream_chat(s, chat_id, user, f"#words=3 {tag()}") as st:
            check_whole(s, chat_id, st.read_all(), "w0 w1 w2")
