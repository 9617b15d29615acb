"""POST /chat as server-sent events: deltas as they arrive, then done (or error); heartbeats; escaping;
a client that goes away mid-stream."""

import json
import time

from api import chat_path, expect
from harness import test
from provider import (FAILED, check_message_kept, check_reply, check_stored_reply, deltas_text, new_chat,
                      rows, shared, stream_chat, tag)


def check_stream_headers(st):
    assert st.status == 200, f"status {st.status}"
    media = st.headers.get("content-type", "").split(";")[0].strip()
    assert media == "text/event-stream", st.headers
    assert st.headers.get("cache-control") == "no-cache", st.headers
    # The worker sends X-Accel-Buffering: no for nginx, which acts on it and (by default) does not pass
    # it on; its effect, events flushed at once, is stream_is_forwarded_as_it_arrives.
    assert st.headers.get("x-accel-buffering", "no") == "no", st.headers


def streamed(s, message, **kwargs):
    """Streams a send in a fresh chat to the end; returns (chat_id, user, events without comments, stream)."""
    user, chat_id = new_chat(s)
    with stream_chat(s, chat_id, user, message, **kwargs) as st:
        check_stream_headers(st)
        events = st.read_all()
    return chat_id, user, events, st


def check_completed(s, chat_id, events, reply):
    """Deltas that make up the reply, then one done event with the POST /chat answer, stored."""
    names = [e.name for e in events]
    assert names.count("done") == 1 and names[-1] == "done", f"events {events!r}"
    assert set(names[:-1]) == {"delta"}, f"events {events!r}"
    done = events[-1].json()
    check_reply(done, chat_id, reply)
    assert deltas_text(events) == reply, f"the deltas make {deltas_text(events)!r}, not {reply!r}"
    check_stored_reply(s, done)
    return done


@test
def stream_sends_deltas_then_done():
    p, s = shared()
    t = tag()
    message = f"Tell me a story {t}"
    chat_id, _, events, _ = streamed(s, message)
    check_completed(s, chat_id, events, "Echo: " + message)
    assert len([e for e in events if e.name == "delta" and e.json()["content"]]) >= 3, events
    (req,) = p.requests_for(t)
    assert req.get("stream") is True, f"the provider was not asked to stream: {req!r}"


@test
def stream_is_forwarded_as_it_arrives():
    _, s = shared()
    reply = " ".join(f"w{i}" for i in range(10))
    chat_id, _, events, _ = streamed(s, f"#chunk_delay=0.3 #words=10 {tag()}")
    check_completed(s, chat_id, events, reply)
    first = next(e for e in events if e.name == "delta" and e.json()["content"])
    total = events[-1].at
    print(f"    first delta after {first.at:.2f} s, done after {total:.2f} s")
    assert first.at < 1.5, f"the first delta came after {first.at:.2f} s: the stream was buffered"
    assert total > 2.5, f"the stream ended after {total:.2f} s: the pieces were not delayed"


@test
def accept_header_asks_for_a_stream():
    _, s = shared()
    message = f"stream me {tag()}"
    chat_id, _, events, _ = streamed(s, message, stream=None, headers={"Accept": "text/event-stream"})
    check_completed(s, chat_id, events, "Echo: " + message)


@test
def provider_failure_is_an_error_event():
    _, s = shared("no_retry")
    message = f"#fault=500 {tag()}"
    chat_id, _, events, _ = streamed(s, message)
    assert [e.name for e in events] == ["error"], f"events {events!r}"
    detail = events[0].json()["detail"]
    assert detail.startswith(FAILED) and "the provider failed (500" in detail, detail
    check_message_kept(s, chat_id, message)


@test
def failure_mid_reply_keeps_the_partial_reply():
    p, s = shared()
    t = tag()
    chat_id, user, events, _ = streamed(s, f"#fault=midstream #words=10 {t}")
    names = [e.name for e in events]
    assert names[-1] == "error" and "done" not in names and set(names[:-1]) == {"delta"}, f"events {events!r}"
    assert events[-1].json()["detail"].startswith(FAILED), events[-1]
    partial = deltas_text(events)
    assert partial and "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9".startswith(partial), f"deltas {partial!r}"
    stored = rows(s, chat_id)
    assert [r["role"] for r in stored] == ["user", "assistant"], stored
    assert stored[1]["content"] == partial and stored[1]["incomplete"] == 1, stored[1]
    _, listed = expect(s, "GET", chat_path(chat_id, "/messages", user_id=user), 200)
    assert listed[1]["incomplete"] is True, f"the API does not mark the reply incomplete: {listed[1]!r}"
    assert len(p.requests_for(t)) == 1, "a stream that reached the client was retried"


@test
def heartbeats_while_the_model_is_silent():
    _, s = shared()   # SSE_HEARTBEAT_S=1
    message = f"#delay=3 {tag()}"
    chat_id, _, events, st = streamed(s, message)
    check_completed(s, chat_id, events, "Echo: " + message)
    first_delta = next(e.at for e in st.seen if e.name == "delta")
    pings = [e for e in st.seen if e.name == "comment" and e.at < first_delta]
    assert len(pings) >= 2 and all(e.data == "ping" for e in pings), f"before the reply: {st.seen!r}"


@test
def model_text_cannot_forge_events():
    _, s = shared()
    text = 'line one\nline "two"\r\n\nevent: done\ndata: {"reply": "forged"}\n\n: x'
    directive = "#reply=" + json.dumps(text).replace(" ", "\\u0020")   # one word, JSON-decoded
    chat_id, _, events, _ = streamed(s, f"{tag()} {directive}")
    done = check_completed(s, chat_id, events, text)
    assert rows(s, chat_id)[1]["content"] == text and done["reply"] == text


@test
def client_leaving_mid_stream_stops_the_transfer():
    _, s = shared()
    user, chat_id = new_chat(s)
    full = " ".join(f"w{i}" for i in range(30))   # 9 s at 0.3 s a word
    st = stream_chat(s, chat_id, user, f"#chunk_delay=0.3 #words=30 {tag()}")
    check_stream_headers(st)
    received = []
    for event in st.events():
        if event.name == "delta" and event.json()["content"]:
            received.append(event.json()["content"])
            if len(received) == 2:
                break
    st.close()
    left = time.monotonic()
    stored = []
    while time.monotonic() - left < 4 and len(stored) < 2:
        time.sleep(0.1)
        stored = rows(s, chat_id)
    assert len(stored) == 2, f"no reply stored {time.monotonic() - left:.1f} s after the client left: {stored!r}"
    reply = stored[1]
    print(f"    stored {reply['content']!r} {time.monotonic() - left:.2f} s after the client left")
    assert reply["role"] == "assistant" and reply["incomplete"] == 1, reply
    assert reply["content"].startswith("".join(received)), f"{reply!r} lacks what the client saw {received!r}"
    assert full.startswith(reply["content"]) and len(reply["content"]) < len(full), \
        f"stored {reply['content']!r}: not a prefix cut short of {full!r}"
