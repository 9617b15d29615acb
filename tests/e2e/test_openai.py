"""The OpenAI-compatible routes (/v1): answers, streams and errors in OpenAI's shapes, what reaches the
provider, the exchange stored with X-Chat-Id; and the official openai npm package against them."""

import json
import os
import shutil
import subprocess
import threading
import time

from harness import ROOT, Stack, test
from api import expect
from auth_util import TOKEN_ENV, account, bearer
from provider import all_rows, model_env, new_chat, shared, shared_provider, tag

SDK_DIR = ROOT / "tests" / "openai"


def complete(s, body, headers=None, query=""):
    resp = s.request("POST", "/v1/chat/completions" + query, json=body, headers=headers)
    return resp


def error_of(resp, status, code=None, param=None, type_=None):
    assert resp.status == status, resp.describe()
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    e = resp.data()["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert e["code"] == code and e["param"] == param, e
    if type_ is not None:
        assert e["type"] == type_, e
    return e


def sse_data(body):
    """The data of each event of a stream, in order; the stream must use unnamed events only."""
    text = body.decode()
    assert "event:" not in text, text[:500]
    events = [e for e in text.split("\n\n") if e.strip()]
    out = []
    for e in events:
        lines = [line for line in e.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), e
        out.append(lines[0][len("data: "):])
    assert text.endswith("data: [DONE]\n\n"), text[-300:]
    return out


@test
def openai_models_lists_the_registry():
    _, s = shared()
    resp = s.request("GET", "/v1/models")
    assert resp.status == 200, resp.describe()
    data = resp.data()
    assert data["object"] == "list"
    ids = [m["id"] for m in data["data"]]
    assert ids == ["fast", "balanced", "smart", "openai/gpt-oss-20b", "openai/gpt-oss-120b"], ids
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in data["data"]), data
    assert [m["owned_by"] for m in data["data"]] == ["ai-chat-fcgi"] * 3 + ["openai"] * 2, data


@test
def openai_completion_sends_the_clients_messages_and_settings():
    p, s = shared()
    t = tag()
    body = {"model": "fast", "temperature": 0.25, "top_p": 0.5, "max_tokens": 99, "stop": ["\n\n"], "seed": 7,
            "user": "end-user-1", "n": 1, "reasoning_effort": "high",
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "first "}, {"type": "text", "text": t}]},
                         {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": f"again {t}"}]}
    resp = complete(s, body)
    assert resp.status == 200, resp.describe()
    c = resp.data()
    assert c["object"] == "chat.completion" and c["id"] == "chatcmpl-" + resp.headers["x-request-id"], c
    assert c["choices"] == [{"index": 0, "message": {"role": "assistant", "content": f"Echo: again {t}"},
                             "finish_reason": "stop"}], c
    assert c["usage"]["total_tokens"] == c["usage"]["prompt_tokens"] + c["usage"]["completion_tokens"], c
    sent = p.requests_for(f"again {t}")
    assert len(sent) == 1, sent
    sent = sent[0]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"first {t}"},
                                {"role": "assistant", "content": "ok"}, {"role": "user", "content": f"again {t}"}], sent
    assert (sent["model"], sent["temperature"], sent["max_completion_tokens"], sent["top_p"], sent["stop"],
            sent["seed"], sent["user"], sent["reasoning_effort"], sent["stream"]) == \
        ("openai/gpt-oss-20b", 0.25, 99, 0.5, ["\n\n"], 7, "end-user-1", "high", False), sent
    # The model's own settings when the client gives none; a provider id works as the model.
    resp = complete(s, {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": f"bare {t}"}]})
    assert resp.status == 200, resp.describe()
    sent = p.requests_for(f"bare {t}")[0]
    assert (sent["model"], sent["temperature"], sent["max_completion_tokens"], sent["reasoning_effort"]) == \
        ("openai/gpt-oss-120b", 0.7, 8192, "medium"), sent
    assert "top_p" not in sent and "user" not in sent, sent


@test
def openai_stream_is_unnamed_chunks_then_done():
    _, s = shared()
    t = tag()
    resp = complete(s, {"model": "fast", "stream": True, "stream_options": {"include_usage": True},
                        "messages": [{"role": "user", "content": f"stream {t}"}]})
    assert resp.status == 200 and resp.headers["content-type"] == "text/event-stream", resp.describe()
    data = sse_data(resp.body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks), chunks
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}, chunks[0]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == f"Echo: stream {t}"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop", chunks
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2]), chunks
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3, chunks[-1]
    # Without include_usage: no usage chunk.
    resp = complete(s, {"model": "fast", "stream": True, "messages": [{"role": "user", "content": f"plain {t}"}]})
    chunks = [json.loads(d) for d in sse_data(resp.body)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1], chunks


@test
def openai_errors_are_openais_shape():
    _, s = shared()
    user_msg = [{"role": "user", "content": "hi"}]
    error_of(complete(s, {"model": "fast", "messages": user_msg, "foo": 1}), 400, param="foo",
             type_="invalid_request_error")
    error_of(complete(s, {"model": "fast", "messages": user_msg, "tools": []}), 400, param="tools")
    error_of(complete(s, {"model": "fast", "messages": user_msg, "n": 2}), 400, param="n")
    error_of(complete(s, {"model": "fast", "messages": user_msg, "temperature": 3}), 400, param="temperature")
    error_of(complete(s, {"model": "fast", "messages": []}), 400, param="messages")
    error_of(complete(s, {"model": "fast", "messages": [{"role": "tool", "content": "x"}]}), 400,
             param="messages[0].role")
    error_of(complete(s, {"messages": user_msg}), 400, param="model")
    error_of(complete(s, {"model": "gpt-4", "messages": user_msg}), 404, code="model_not_found", param="model")
    error_of(complete(s, {"model": "fast", "messages": [{"role": "user", "content": "x" * 300000}]}), 400,
             code="context_length_exceeded", param="messages")
    resp = s.request("POST", "/v1/chat/completions", body="{not json", headers={"Content-Type": "application/json"})
    error_of(resp, 400)
    resp = s.request("POST", "/v1/chat/completions", body="x", headers={"Content-Type": "text/plain"})
    error_of(resp, 415)


@test
def openai_provider_failures_have_their_status():
    p, s = shared("no_retry")
    t = tag()
    for stream in (False, True):
        resp = complete(s, {"model": "fast", "stream": stream,
                            "messages": [{"role": "user", "content": f"limited {stream} {t} #fault=429 #retry_after=3"}]})
        e = error_of(resp, 429, code="rate_limit_exceeded", type_="rate_limit_error")
        assert resp.headers.get("retry-after") == "3", resp.headers
        assert "test-key" not in e["message"], e
        resp = complete(s, {"model": "fast", "stream": stream,
                            "messages": [{"role": "user", "content": f"broken {stream} {t} #fault=500"}]})
        error_of(resp, 503, code="provider_unavailable", type_="api_error")
    # Mid-stream: an error event, no [DONE].
    resp = complete(s, {"model": "fast", "stream": True,
                        "messages": [{"role": "user", "content": f"mid {t} #fault=error_event"}]})
    assert resp.status == 200, resp.describe()
    text = resp.body.decode()
    assert "[DONE]" not in text and text.rstrip().split("\n")[-1].startswith('data: {"error":'), text
    with Stack(env=model_env(p, GROQ_API_KEY=None, WORKER_PROCESSES="1", WORKER_THREADS="2")) as nokey:
        error_of(complete(nokey, {"model": "fast", "messages": [{"role": "user", "content": "x"}]}), 503,
                 code="no_api_key")


@test
def openai_x_chat_id_stores_the_exchange():
    _, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    before = all_rows(s, chat_id)
    resp = complete(s, {"model": "fast", "messages": [{"role": "user", "content": f"not stored {t}"}]})
    assert resp.status == 200 and all_rows(s, chat_id) == before
    for stream in (False, True):
        resp = complete(s, {"model": "fast", "stream": stream,
                            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "earlier"},
                                         {"role": "user", "content": f"kept {stream} {t}"}]},
                        headers={"X-Chat-Id": chat_id}, query=f"?user_id={user}")
        assert resp.status == 200, resp.describe()
        rows = all_rows(s, chat_id)[-2:]
        assert [(r["role"], r["content"]) for r in rows] == \
            [("user", f"kept {stream} {t}"), ("assistant", f"Echo: kept {stream} {t}")], rows
        assert rows[1]["model"] == "openai/gpt-oss-20b" and rows[1]["completion_tokens"] > 0, rows
    n = len(all_rows(s, chat_id))
    status, _, chat = s.json("GET", f"/chats/{chat_id}?user_id={user}")
    assert chat["message_count"] == n, chat
    # Another user's chat, or none: a 404, nothing stored; no user: a 400.
    error_of(complete(s, {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
                      headers={"X-Chat-Id": chat_id}, query="?user_id=someone-else"), 404, code="chat_not_found",
             param="X-Chat-Id")
    error_of(complete(s, {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
                      headers={"X-Chat-Id": chat_id}), 400, param="user_id")
    assert len(all_rows(s, chat_id)) == n


@test
def openai_streams_wait_on_the_event_loop_not_on_threads():
    # Two threads per process, eight completions waiting 2 s each at once: all done in about 2 s.
    p = shared_provider()
    with Stack(env=model_env(p, WORKER_PROCESSES="1", WORKER_THREADS="2", PROVIDER_TIMEOUT_S="20")) as s:
        t = tag()
        results = []

        def one(i):
            r = complete(s, {"model": "fast", "stream": i % 2 == 0,
                             "messages": [{"role": "user", "content": f"slow {i} {t} #delay=2"}]})
            results.append(r.status)

        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        took = time.monotonic() - started
        assert results == [200] * 8, results
        assert took < 6, f"8 completions of 2 s on 2 threads took {took:.1f} s: they held threads (8 s)"


def run_sdk(s, user, chat_id, api_key=None, bad_key=False, extra_env=None):
    """tests/openai/sdk_check.mjs against s: (what it saw, the chat's rows after)."""
    node = shutil.which("node")
    assert node, "node is not installed (make deps)"
    assert (SDK_DIR / "node_modules" / "openai").is_dir(), \
        f"{SDK_DIR}/node_modules is missing: run npm ci in tests/openai (make sdk; make test does)"
    t = tag()
    env = {**os.environ, "BASE_URL": s.url + "/v1", "TAG": t, "USER_ID": user, "CHAT_ID": chat_id,
           "API_KEY": api_key or "", "BAD_KEY": "1" if bad_key else "0", **(extra_env or {})}
    out = subprocess.run([node, str(SDK_DIR / "sdk_check.mjs")], capture_output=True, text=True, timeout=120,
                         cwd=SDK_DIR, env=env)
    assert out.returncode == 0, f"node exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rows = all_rows(s, chat_id)
    assert [m["id"] for m in r["models"]][:3] == ["fast", "balanced", "smart"], r["models"]
    assert r["plain"]["content"] == f"Echo: plain {t}" and r["plain"]["role"] == "assistant", r["plain"]
    assert r["plain"]["finish"] == "stop" and r["plain"]["usage"]["total_tokens"] > 0, r["plain"]
    st = r["stream"]
    assert st["objects"] == ["chat.completion.chunk"] and st["firstRole"] == "assistant", st
    assert st["text"] == f"Echo: streamed {t}" and st["finishes"] == ["stop"], st
    assert st["lastChoices"] == 0 and st["usage"]["completion_tokens"] == 3, st
    assert r["helper"]["content"] == f"Echo: helper {t}", r["helper"]
    for key in ("rateLimited", "rateLimitedStream"):
        e = r[key]
        assert e["thrown"] == "RateLimitError" and e["rateLimit"] and e["status"] == 429, e
        assert e["code"] == "rate_limit_exceeded", e
    e = r["unknownModel"]
    assert e["thrown"] == "NotFoundError" and e["code"] == "model_not_found" and e["param"] == "model", e
    e = r["tools"]
    assert e["thrown"] == "BadRequestError" and e["param"] == "tools", e
    e = r["midStream"]
    assert e["apiError"] and "mid-reply" in e["message"], e
    assert r["stored"]["content"] == f"Echo: stored {t}", r["stored"]
    assert [(x["role"], x["content"]) for x in rows[-2:]] == [("user", f"stored {t}"), ("assistant", f"Echo: stored {t}")]
    return r


@test
def openai_sdk_runs_against_the_stack():
    p = shared_provider()
    with Stack(env=model_env(p, PROVIDER_RETRIES="0")) as s:
        user, chat_id = new_chat(s)
        run_sdk(s, user, chat_id)


@test
def openai_sdk_with_accounts_uses_the_token_as_its_key():
    p = shared_provider()
    with Stack(env=model_env(p, PROVIDER_RETRIES="0", **TOKEN_ENV)) as s:
        user, _, token = account(s, "sdk")
        _, chat = expect(s, "POST", "/chats", 201, json={"title": "SDK"}, headers=bearer(token))
        r = run_sdk(s, "ignored-in-token-mode", chat["id"], api_key=token, bad_key=True)
        for key in ("badKeyModels", "badKeyChat"):
            e = r[key]
            assert e["authentication"] and e["status"] == 401 and e["code"] == "invalid_api_key", e
        # The chat stored into is the token's user's: no user_id needed, another's chat refused.
        _, _, other = account(s, "other")
        resp = s.request("POST", "/v1/chat/completions", json={"model": "fast", "messages": [
            {"role": "user", "content": "x"}]}, headers={**bearer(other), "X-Chat-Id": chat["id"]})
        error_of(resp, 404, code="chat_not_found", param="X-Chat-Id")
        resp = s.request("GET", "/v1/models")
        e = error_of(resp, 401, code="invalid_api_key", type_="authentication_error")
        assert resp.headers.get("www-authenticate") == "Bearer", resp.headers


@test
def openai_without_the_event_loop_answers_the_same():
    # EVENT_LOOP=0 (and CGI): the thread makes the call and writes the stream itself.
    p = shared_provider()
    with Stack(env=model_env(p, EVENT_LOOP="0", PROVIDER_RETRIES="0", WORKER_PROCESSES="1",
                             WORKER_THREADS="4")) as s:
        t = tag()
        resp = complete(s, {"model": "fast", "messages": [{"role": "user", "content": f"plain {t}"}]})
        assert resp.status == 200 and resp.data()["choices"][0]["message"]["content"] == f"Echo: plain {t}"
        resp = complete(s, {"model": "fast", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": f"stream {t}"}]})
        stream_id = resp.headers["x-request-id"]
        chunks = [json.loads(d) for d in sse_data(resp.body)[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant", chunks
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == \
            f"Echo: stream {t}"
        assert chunks[-1]["usage"]["completion_tokens"] == 3, chunks
        resp = complete(s, {"model": "fast", "stream": True,
                            "messages": [{"role": "user", "content": f"limited {t} #fault=429 #retry_after=0"}]})
        error_of(resp, 429, code="rate_limit_exceeded")
        assert p.request_ids_for(f"stream {t}") == [stream_id]   # the thread's call sends the id too
