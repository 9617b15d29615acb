"""No reply is ever lost: one regression test per defect of the send path that a review found
(issue 9, items 1-8).  Each failed on the code before replies knew the message they answer."""

import contextlib
import http.client
import re
import threading
import time

from api import chat_path, db_chat, insert_messages
from harness import Stack, sqlite_only, test
from provider import (EventStream, FakeProvider, GENERATING, all_rows, check_failure, check_reply, check_stored_reply,
                      model_env, new_chat, rows, send, shared, stream_chat, tag)


def keyed(s, chat_id, user, message, key):
    return send(s, chat_id, user, message, headers={"Idempotency-Key": key})


def regenerate(s, chat_id, user, **body):
    return s.json("POST", chat_path(chat_id, "/regenerate", user_id=user), json=body)


def shown(s, chat_id, user):
    status, _, page = s.json("GET", chat_path(chat_id, "/messages", user_id=user))
    assert status == 200, f"{status} {page!r}"
    return page


@test
def idempotent_retry_keeps_the_reply_to_a_later_message():
    # Item 1: the retry took "the first assistant message after m1" to be m1's reply, and replaced
    # the answer to m2.
    p, s = shared("no_retry")
    user, chat_id = new_chat(s)
    t = tag()
    m1 = f"#fault=500 #fail_times=1 first {t}"
    check_failure(*keyed(s, chat_id, user, m1, "k-" + t), "the provider failed (500")
    status, _, r2 = send(s, chat_id, user, f"second {t}")
    assert status == 200, f"{status} {r2!r}"
    status, _, r1 = keyed(s, chat_id, user, m1, "k-" + t)
    assert status == 200, f"{status} {r1!r}"
    check_reply(r1, chat_id, "Echo: " + m1)
    check_stored_reply(s, r2)   # the answer to m2 is still there, unchanged
    check_stored_reply(s, r1)
    page = shown(s, chat_id, user)
    assert [(m["role"], m["content"]) for m in page] == [
        ("user", m1), ("assistant", r1["reply"]), ("user", f"second {t}"), ("assistant", r2["reply"])], page
    assert r1["message_id"] < r2["user_message_id"], "the retry's answer is not in its send's place"
    assert db_chat(s, chat_id)["message_count"] == 4


@test
def failed_regenerate_keeps_the_complete_reply_shown():
    # Item 2: a regenerate that failed mid-stream replaced the complete reply with the partial text.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"#words=12 keep me {t}"
    status, _, first = send(s, chat_id, user, message)
    assert status == 200, f"{status} {first!r}"
    p.plan(t, [{"fault": "midstream"}])
    st = EventStream(s, chat_path(chat_id, "/regenerate", user_id=user), {"stream": True})
    events = st.read_all()
    assert events[-1].name == "error", events
    check_stored_reply(s, first)
    page = shown(s, chat_id, user)
    assert [m["id"] for m in page] == [first["user_message_id"], first["message_id"]], page
    partial = [r for r in rows(s, chat_id) if r["incomplete"]]
    assert len(partial) == 1 and partial[0]["content"], f"the cut-short alternative was not kept: {rows(s, chat_id)}"
    assert page[1]["sibling_ids"] == [first["message_id"], partial[0]["id"]], page
    assert db_chat(s, chat_id)["message_count"] == 2


@test
def regenerate_whose_client_leaves_keeps_the_complete_reply_shown():
    # Item 2, the client leaving: the partial text replaced the complete reply.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, first = send(s, chat_id, user, f"#words=30 #chunk_delay=0.05 stay {t}")
    assert status == 200, f"{status} {first!r}"
    st = EventStream(s, chat_path(chat_id, "/regenerate", user_id=user), {"stream": True})
    for event in st.events():
        if event.name == "delta" and event.json()["content"]:
            break
    st.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(r["state"] == GENERATING for r in all_rows(s, chat_id)):
        time.sleep(0.1)
    page = shown(s, chat_id, user)
    assert [m["id"] for m in page] == [first["user_message_id"], first["message_id"]], page
    check_stored_reply(s, first)
    partial = [r for r in rows(s, chat_id) if r["incomplete"]]
    assert len(partial) == 1 and first["reply"].startswith(partial[0]["content"]), rows(s, chat_id)


@test
def regenerate_does_not_break_idempotent_replay():
    # Item 3: deleting the replaced reply set the key's reply to NULL, and the next repeat called
    # the provider again and replaced the regenerated reply.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"once {t}"
    status, _, first = keyed(s, chat_id, user, message, "k-" + t)
    assert status == 200, f"{status} {first!r}"
    status, _, again = regenerate(s, chat_id, user)
    assert status == 200, f"{status} {again!r}"
    status, headers, replay = keyed(s, chat_id, user, message, "k-" + t)
    assert status == 200 and headers.get("idempotent-replayed") == "true", f"{status} {headers} {replay!r}"
    assert replay == first, f"the repeat answered {replay!r}, not the first answer {first!r}"
    assert len(p.requests_for(t)) == 2, "the repeat reached the provider"
    page = shown(s, chat_id, user)
    assert page[-1]["id"] == again["message_id"], "the repeat changed the shown reply"
    check_stored_reply(s, first)
    check_stored_reply(s, again)


@test
def concurrent_regenerates_give_alternatives_and_one_shown_reply():
    # Item 4: two regenerates at once left two replies to one message.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, first = send(s, chat_id, user, f"twice {t}")
    assert status == 200
    p.plan(t, [{"fault": None, "delay": 0.6}, {"fault": None, "delay": 0.6}])
    results = [None, None]

    def one(i):
        results[i] = regenerate(s, chat_id, user)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(r[0] == 200 for r in results), results
    ids = {first["message_id"]} | {r[2]["message_id"] for r in results}
    assert len(ids) == 3, f"two regenerates did not give two alternatives: {results}"
    page = shown(s, chat_id, user)
    assert len(page) == 2 and page[1]["id"] in ids, page
    assert page[1]["sibling_ids"] == sorted(ids), page
    replies = [r for r in rows(s, chat_id) if r["role"] == "assistant"]
    assert len(replies) == 3 and sum(1 for r in rows(s, chat_id, path_only=True) if r["role"] == "assistant") == 1


@test
def regenerate_racing_a_send_keeps_both_in_place():
    # Item 4: a regenerate racing a POST /chat put a reply in the wrong place.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, first = send(s, chat_id, user, f"first {t}")
    assert status == 200
    p.plan(f"first {t}", [{"fault": None, "delay": 1.0}])
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("regen", regenerate(s, chat_id, user)))
    th.start()
    time.sleep(0.3)
    status, _, second = send(s, chat_id, user, f"second {t}")
    th.join()
    assert status == 200 and out["regen"][0] == 200, (status, out)
    page = shown(s, chat_id, user)
    assert [m["id"] for m in page] == [first["user_message_id"], first["message_id"], second["user_message_id"],
                                       second["message_id"]], page
    regen = out["regen"][2]
    assert page[1]["sibling_ids"] == [first["message_id"], regen["message_id"]], page
    check_stored_reply(s, regen)


@test
def key_is_released_when_storing_the_reply_fails():
    # Item 5: with the database locked past its busy timeout while the model answered, the key
    # stayed locked (409 for minutes), the provider's answer was thrown away, and the 503 lacked
    # Retry-After.
    with FakeProvider() as p:
        env = model_env(p, DB_BUSY_TIMEOUT_MS="200", WORKER_PROCESSES="1", WORKER_THREADS="4")
        with Stack(env=env) as s:
            user, chat_id = new_chat(s)
            t = tag()
            message = f"#delay=0.5 locked out {t}"
            out = {}
            th = threading.Thread(target=lambda: out.setdefault("r", keyed(s, chat_id, user, message, "k-" + t)))
            with contextlib.closing(s.db()) as lock:
                th.start()
                time.sleep(0.2)
                lock.execute("BEGIN IMMEDIATE")
                th.join(20)
                time.sleep(0.5)
                lock.execute("ROLLBACK")
            status, headers, data = out["r"]
            assert status == 503 and headers.get("retry-after") == "1", f"{status} {headers} {data!r}"
            assert data["detail"].startswith("Database unavailable"), data
            # the answer is stored once the database is back, and the repeat replays it
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not [r for r in rows(s, chat_id) if r["role"] == "assistant"]:
                time.sleep(0.1)
            status, headers, again = keyed(s, chat_id, user, message, "k-" + t)
            assert status == 200, f"the key stayed locked: {status} {again!r}"
            assert headers.get("idempotent-replayed") == "true", headers
            check_reply(again, chat_id, "Echo: " + message)
            assert len(p.requests_for(t)) == 1, "the provider's answer was thrown away and asked for again"


@test
def key_of_a_send_whose_worker_died_is_answered_after_its_lock():
    # Item 5's other end: a send whose worker died (here: its reply row left generating, its lock
    # run out) is answered by the repeat in that row, not refused as still running.
    with FakeProvider() as p:
        env = model_env(p, DB_BUSY_TIMEOUT_MS="200", WORKER_PROCESSES="1", WORKER_THREADS="4")
        with Stack(env=env) as s:
            user, chat_id = new_chat(s)
            t = tag()
            message = f"never answered {t}"
            status, _, first = keyed(s, chat_id, user, message, "k-" + t)
            assert status == 200
            # the same send as a worker that died mid-send would have left it
            s.sql("UPDATE messages SET state = 2, content = '', locked_until = ? WHERE id = ?",
                  (int(time.time() * 1e6) + 60_000_000, first["message_id"]))
            expect_busy = keyed(s, chat_id, user, message, "k-" + t)
            assert expect_busy[0] == 409, expect_busy
            s.sql("UPDATE messages SET locked_until = 1 WHERE id = ?", (first["message_id"],))
            status, _, again = keyed(s, chat_id, user, message, "k-" + t)
            assert status == 200, f"{status} {again!r}"
            check_reply(again, chat_id, "Echo: " + message)
            assert again["message_id"] == first["message_id"], "not answered in the send's own place"
            assert [r["role"] for r in rows(s, chat_id)] == ["user", "assistant"]


@test
def streamed_replay_says_idempotent_replayed():
    # Item 6: the header was added after the head had gone out.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"stream once {t}"
    st = stream_chat(s, chat_id, user, message, headers={"Idempotency-Key": "k-" + t})
    first = st.read_all()
    assert first[-1].name == "done", first
    st = stream_chat(s, chat_id, user, message, headers={"Idempotency-Key": "k-" + t})
    assert st.headers.get("idempotent-replayed") == "true", st.headers
    again = st.read_all()
    assert again[-1].name == "done" and again[-1].json() == first[-1].json(), (first, again)
    assert len(p.requests_for(t)) == 1


@test
def chat_deleted_while_the_model_answers_is_404():
    # Item 7: the foreign-key failure was mapped to a database error, a 503.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", send(s, chat_id, user, f"#delay=0.8 gone {t}")))
    th.start()
    time.sleep(0.3)
    assert s.request("DELETE", chat_path(chat_id, user_id=user)).status == 204
    th.join()
    status, _, data = out["r"]
    assert status == 404, f"{status} {data!r}"
    assert data == {"detail": "The chat was deleted while the model answered"}, data
    assert s.sql("SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,)) == [(0,)]


@test
def a_failure_after_the_head_cuts_the_page_short():
    # Item 8: a {"detail": ...} was appended into the middle of a 200 message array larger than
    # 256 KiB.  The database file is damaged under a long page; the answer must end abnormally.
    sqlite_only("damages a page of the database file")
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user, chat_id = new_chat(s)
        filler = "x" * 900
        marker = "MARKER-" + tag()
        insert_messages(s, chat_id, [f"{i} {filler}" for i in range(400)] + [marker] +
                        [f"{i} {filler}" for i in range(99)])
        s.sql("PRAGMA wal_checkpoint(TRUNCATE)")
        data = s.db_path.read_bytes()
        # every page holding the marker (the messages' b-tree, and the search index's copy of it since
        # migration 006): garbage
        page = 4096
        starts = {m.start() // page * page for m in re.finditer(re.escape(marker.encode()), data)}
        assert starts, "the marker is not in the database file"
        with open(s.db_path, "r+b") as f:
            for start in sorted(starts):
                f.seek(start)
                f.write(b"\xff" * page)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("GET", chat_path(chat_id, "/messages", user_id=user, limit=500))
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        try:
            body = resp.read()
        except http.client.IncompleteRead as e:
            body = None
            partial = e.partial
        conn.close()
        assert body is None, f"a complete answer came ({len(body)} bytes, ends {body[-120:]!r})"
        assert b'{"detail"' not in partial, "an error was written into the page"


@test
def an_oversize_event_does_not_empty_the_later_events():
    # Item 8: after one event too large for the event buffer, its sticky error made the later
    # events go out with an empty data: line (and the send counted as a client gone).
    with FakeProvider() as p:
        with Stack(env=model_env(p, PROVIDER_MAX_RESPONSE_BYTES="65536")) as s:
            user, chat_id = new_chat(s)
            t = tag()
            text = "\u0001" * 30000   # 30 kB that JSON-escape to 180 kB
            p.plan(t, [{"fault": None, "reply": text}])
            st = stream_chat(s, chat_id, user, f"control {t}")
            events = st.read_all()
            names = [e.name for e in events]
            assert names[-1] == "done", names
            assert all(e.data for e in events), [e for e in events if not e.data]
            assert "".join(e.json()["content"] for e in events if e.name == "delta") == text
            assert events[-1].json()["reply"] == text
            (reply,) = [r for r in rows(s, chat_id) if r["role"] == "assistant"]
            assert reply["content"] == text and not reply["incomplete"]
