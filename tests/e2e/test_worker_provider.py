"""The provider call as the client sees it: heartbeats count what reaches the client (a model that is
reasoning is silent to it), REASONING=stream passes the reasoning on, PROVIDER_TIMEOUT_S bounds the
whole call with its retries, and the provider's own error text never reaches the client."""

import http.client
import json
import time

from harness import Stack, encode_json, test
from provider import (FAILED, check_failure, check_message_kept, check_reply, check_stored_reply, model_env,
                      new_chat, rows, send, shared, shared_provider, stream_chat, tag)


@test
def heartbeats_go_on_while_the_model_reasons():
    # Regression: any byte from the provider counted as activity, reasoning deltas too, so a long
    # reasoning phase sent no ping (1 in 4 s instead of 4) and a proxy's idle timeout cut it.
    _, s = shared()   # SSE_HEARTBEAT_S=1, REASONING hidden (the default)
    user, chat_id = new_chat(s)
    message = f"#reasoning=20 #reasoning_delay=0.2 {tag()}"
    with stream_chat(s, chat_id, user, message) as st:
        events = st.read_all()
    first = next(e for e in st.seen if e.name != "comment")
    pings = [e for e in st.seen if e.name == "comment" and e.at < first.at]
    assert first.name == "delta" and first.at > 3.5, f"the reply began at {first.at:.2f} s: {st.seen!r}"
    assert len(pings) >= 3, f"{len(pings)} pings in the {first.at:.1f} s of reasoning: {st.seen!r}"
    assert all(e.name in ("delta", "done") for e in events), f"the reasoning leaked out: {events!r}"
    done = events[-1].json()
    check_reply(done, chat_id, "Echo: " + message)
    check_stored_reply(s, done)


def read_stream(stack, body):
    """The raw events of a streamed POST /chat: [(name, data)], comments included as ("comment", text).
    (Not checked against the OpenAPI document, which does not list the reasoning event yet.)"""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("POST", "/chat", body=encode_json(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        text = resp.read().decode()
    finally:
        conn.close()
    events = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith(":"):
                events.append(("comment", line[1:].strip()))
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


@test
def reasoning_is_streamed_with_reasoning_stream():
    with Stack(env=model_env(shared_provider(), REASONING="stream", WORKER_PROCESSES="1",
                             WORKER_THREADS="4", SSE_HEARTBEAT_S="1")) as s:
        user, chat_id = new_chat(s)
        message = f"#reasoning=3 #reasoning_delay=0.5 {tag()}"
        events = read_stream(s, {"chat_id": chat_id, "user_id": user, "message": message, "stream": True})
        names = [n for n, _ in events if n != "comment"]
        assert names[:3] == ["reasoning"] * 3 and names[-1] == "done", events
        assert [d["content"] for n, d in events if n == "reasoning"] == ["thought 0. ", "thought 1. ", "thought 2. "]
        assert set(names[3:-1]) == {"delta"}, events
        # Reasoning that reaches the client is activity: no ping needed between pieces 0.5 s apart.
        assert not any(n == "comment" for n, _ in events[:3]), events
        done = events[-1][1]
        check_reply(done, chat_id, "Echo: " + message)
        assert [r["content"] for r in rows(s, chat_id)] == [message, "Echo: " + message], "reasoning was stored"
    bad = Stack(env=model_env(None, REASONING="loud"))
    try:
        bad.start()
        raise AssertionError("REASONING=loud was accepted")
    except Exception as e:  # noqa: BLE001 - the stack refuses to start
        assert "REASONING" in str(e), e
    finally:
        bad.stop()


@test
def provider_timeout_bounds_the_whole_call():
    # Regression: PROVIDER_TIMEOUT_S bounded each attempt, so with retries and backoff a call could
    # outlast the front end's read timeout (nginx answered 504 while the worker went on).
    env = model_env(shared_provider(), PROVIDER_TIMEOUT_S="2", PROVIDER_RETRIES="5", WORKER_PROCESSES="1",
                    WORKER_THREADS="4")
    with Stack(env=env) as s:
        user, chat_id = new_chat(s)
        message = f"#fault=500 #delay=0.8 {tag()}"
        started = time.monotonic()
        status, headers, data = send(s, chat_id, user, message)
        took = time.monotonic() - started
        check_failure(status, headers, data, "")
        assert took < 2.8, f"answered after {took:.2f} s with PROVIDER_TIMEOUT_S=2"
        check_message_kept(s, chat_id, message)
        # A hung provider: the one deadline, and a timeout is said as one.
        started = time.monotonic()
        status, headers, data = send(s, chat_id, user, f"#fault=hang {tag()}")
        took = time.monotonic() - started
        check_failure(status, headers, data, "did not answer within 2 s")
        assert 1.8 < took < 2.8, f"answered after {took:.2f} s"


@test
def provider_error_text_never_reaches_the_client():
    # Regression: the provider's error message was copied into the 503, and the key scrubber only
    # removed whole copies of the key: a masked key (OpenAI's "sk-abc***wxyz") leaked a fragment.
    p, s = shared("no_retry")
    user, chat_id = new_chat(s)
    status, headers, data = send(s, chat_id, user, f"#fault=echo_key {tag()}")
    check_failure(status, headers, data, "")
    assert data["detail"] == FAILED + "the provider refused the request (400)", data
    with Stack(env=model_env(p, GROQ_API_KEY="wrong-key-1234", PROVIDER_RETRIES="0")) as bad:
        user, chat_id = new_chat(bad)
        status, headers, data = send(bad, chat_id, user, f"hello {tag()}")
        check_failure(status, headers, data, "", key="wrong-key-1234")
        assert data["detail"] == FAILED + "the provider refused the API key (401)", data
        assert "1234" not in data["detail"] and "***" not in data["detail"], data


@test
def a_key_that_is_a_prefix_of_the_redaction_mark_does_not_hang():
    # Regression: scrubbing a key that "[redacted]" starts with looped forever.
    with Stack(env=model_env(shared_provider(), GROQ_API_KEY="[red", PROVIDER_RETRIES="0",
                             WORKER_PROCESSES="1", WORKER_THREADS="2")) as s:
        user, chat_id = new_chat(s)
        for _ in range(2):
            status, headers, data = send(s, chat_id, user, f"#fault=echo_key {tag()}")
            check_failure(status, headers, data, "", key="[red")
        assert s.request("GET", "/health", timeout=5).status == 200
