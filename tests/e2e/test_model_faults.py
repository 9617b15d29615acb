"""Provider failures: a 503 "Failed to get AI response: ..." that says what went wrong, never shows the
key, keeps the user's message (and stores no reply); retries of what is worth retrying; no API key."""

import time

from api import chat_path, create_chat, expect, new_user
from harness import Stack, free_port, test
from provider import (API_KEY, check_failure, check_message_kept, check_reply, check_stored_reply,
                      model_env, new_chat, registry_file, roles, send, shared, shared_provider, tag)

RETRIES = int(model_env()["PROVIDER_RETRIES"])   # the shared stack's


def failed_send(s, directives, what, key=API_KEY, **fields):
    """A send that fails with what in its detail; returns (headers, the provider's requests for it)."""
    user, chat_id = new_chat(s)
    t = tag()
    message = f"{directives} {t}"
    status, headers, data = send(s, chat_id, user, message, **fields)
    check_failure(status, headers, data, what, key)
    check_message_kept(s, chat_id, message)
    return headers, shared_provider().requests_for(t)


@test
def rate_limit_is_retried_then_503_with_retry_after():
    _, s = shared()
    headers, sent = failed_send(s, "#fault=429 #retry_after=1", "rate limited by the provider (retry after 1 s)")
    assert headers.get("retry-after") == "1", f"Retry-After: {headers.get('retry-after')!r}"
    assert len(sent) == 1 + RETRIES, f"the provider got {len(sent)} attempts, wanted {1 + RETRIES}"


@test
def provider_error_once_is_retried():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"#fault=500 #fail_times=1 {t}"
    status, _, data = send(s, chat_id, user, message)
    assert status == 200, f"{status} {data!r}"
    check_reply(data, chat_id, "Echo: " + message)
    check_stored_reply(s, data)
    assert roles(s, chat_id) == ["user", "assistant"], roles(s, chat_id)
    assert len(p.requests_for(t)) == 2


@test
def provider_error_is_503():
    _, s = shared()
    headers, sent = failed_send(s, "#fault=500", "the provider failed (500")
    assert "retry-after" not in headers, headers
    assert len(sent) == 1 + RETRIES, f"the provider got {len(sent)} attempts, wanted {1 + RETRIES}"


@test
def dropped_connection_is_503():
    _, s = shared()
    _, sent = failed_send(s, "#fault=drop", "the connection to the provider dropped")
    # libcurl itself resends once when a kept-alive connection turns out to be closed, so the first
    # attempt may reach the provider twice.
    assert 1 + RETRIES <= len(sent) <= 2 + RETRIES, \
        f"the provider got {len(sent)} attempts, wanted {1 + RETRIES} (or one more)"


@test
def malformed_answer_is_503():
    _, s = shared()
    failed_send(s, "#fault=malformed", "the provider's answer is not JSON")


@test
def silent_provider_on_a_kept_alive_connection_times_out():
    # Regression: on a reused connection libcurl reports no connect time, and a provider that went
    # silent was taken for one that could not be reached ("could not connect", and a retry).
    provider = shared_provider()
    env = model_env(provider, PROVIDER_RETRIES="1", PROVIDER_TIMEOUT_S="2", WORKER_PROCESSES="1",
                    WORKER_THREADS="1")
    with Stack(env=env) as s:
        user, chat_id = new_chat(s)
        status, _, data = send(s, chat_id, user, f"warm the connection {tag()}")
        assert status == 200, f"{status} {data!r}"
        t = tag()
        started = time.monotonic()
        status, headers, data = send(s, chat_id, user, f"#fault=hang {t}")
        elapsed = time.monotonic() - started
        check_failure(status, headers, data, "did not answer within 2 s")
        assert elapsed < 4, f"answered after {elapsed:.2f} s: the timeout was retried"
        assert len(provider.requests_for(t)) == 1, "a timeout was retried"


@test
def silent_provider_times_out():
    _, s = shared("no_retry")   # PROVIDER_TIMEOUT_S=2, PROVIDER_RETRIES=0
    started = time.monotonic()
    _, sent = failed_send(s, "#fault=hang", "did not answer within 2 s")
    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 5, f"answered after {elapsed:.2f} s, wanted about 2 s"
    assert len(sent) == 1, f"the provider got {len(sent)} attempts"


@test
def refused_key_is_503_and_not_retried():
    p = shared_provider()
    with Stack(env=model_env(p, GROQ_API_KEY="wrong", PROVIDER_RETRIES="2")) as s:
        _, sent = failed_send(s, "hello", "the provider refused the API key", key="wrong")
        assert len(sent) == 1, f"the provider got {len(sent)} attempts: a 401 was retried"


@test
def unknown_model_is_503():
    p = shared_provider()
    models = registry_file("fast openai/gpt-oss-20b\nghost unknown-model\n")
    with Stack(env=model_env(p, MODELS_FILE=models)) as s:
        _, sent = failed_send(s, "hello", "the model is unavailable", model="ghost")
        assert len(sent) == 1 and sent[0]["model"] == "unknown-model", sent


@test
def unreachable_provider_is_503():
    closed = free_port()   # nothing listens there
    env = model_env(GROQ_BASE_URL=f"http://127.0.0.1:{closed}/v1", PROVIDER_RETRIES="0")
    with Stack(env=env) as s:
        user, chat_id = new_chat(s)
        message = f"anyone there? {tag()}"
        status, headers, data = send(s, chat_id, user, message)
        check_failure(status, headers, data, "")
        assert "could not reach" in data["detail"] or "connect" in data["detail"], data
        check_message_kept(s, chat_id, message)


@test
def without_api_key_chats_work_and_sends_are_503():
    with Stack(env=model_env(GROQ_API_KEY="")) as s:
        user = new_user("nokey")
        chat = create_chat(s, user, "no key")
        path = chat_path(chat["id"], user_id=user)
        expect(s, "GET", path, 200, chat)
        _, patched = expect(s, "PATCH", path, 200, json={"title": "still no key"})
        assert patched["title"] == "still no key"
        _, listed = expect(s, "GET", "/chats?user_id=" + user, 200)
        assert listed["total"] == 1 and listed["chats"][0]["id"] == chat["id"], listed
        no_key = {"detail": "GROQ_API_KEY is not set"}
        expect(s, "POST", "/chat", 503, no_key, json={"chat_id": chat["id"], "user_id": user, "message": "hi"})
        expect(s, "POST", chat_path(chat["id"], "/regenerate", user_id=user), 503, no_key)
        assert roles(s, chat["id"]) == [], "a send without a key stored the message"
        expect(s, "GET", "/models", 200)
        assert s.request("DELETE", path).status == 204
        expect(s, "GET", path, 404)
