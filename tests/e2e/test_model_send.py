"""POST /chat answered by the model: the reply, what is stored, what the provider is sent; GET /models;
requests refused before the provider is asked."""

import uuid

from api import (DEFAULT_MAX_BODY, UNSUPPORTED_MEDIA_TYPE, chat_not_found, db_chat, expect, expect_422,
                 missing, not_bool, too_large, too_short)
from harness import test
from provider import (SYSTEM_PROMPT, check_reply, check_stored_reply, new_chat, rows, send, shared, tag)

# conf/models.conf, as GET /models lists it.
MODELS = [
    {"alias": "fast", "model": "openai/gpt-oss-20b", "temperature": 0.7, "max_completion_tokens": 4096,
     "context_window": 131072, "reasoning_effort": "low"},
    {"alias": "balanced", "model": "openai/gpt-oss-120b", "temperature": 0.7, "max_completion_tokens": 8192,
     "context_window": 131072, "reasoning_effort": "medium"},
    {"alias": "smart", "model": "openai/gpt-oss-120b", "temperature": 0.7, "max_completion_tokens": 16384,
     "context_window": 131072, "reasoning_effort": "high"},
]
NULL_MODEL = {"loc": ["body", "model"], "msg": "none is not an allowed value", "type": "type_error.none.not_allowed"}
NULL_STREAM = {"loc": ["body", "stream"], "msg": "none is not an allowed value",
               "type": "type_error.none.not_allowed"}
BAD_ALIAS = {"loc": ["body", "model"], "msg": "value is not a valid enumeration member; permitted: "
             "'fast', 'balanced', 'smart'", "type": "type_error.enum"}


@test
def reply_is_answered_and_stored():
    _, s = shared()
    user, chat_id = new_chat(s)
    before = db_chat(s, chat_id)
    message = f"Hello, AI! {tag()}"
    status, _, data = send(s, chat_id, user, message)
    assert status == 200, f"{status} {data!r}"
    check_reply(data, chat_id, "Echo: " + message)
    check_stored_reply(s, data)
    stored = rows(s, chat_id)
    assert [(r["role"], r["content"]) for r in stored] == [("user", message), ("assistant", "Echo: " + message)]
    after = db_chat(s, chat_id)
    assert after["message_count"] == 2, after
    assert after["updated_at"] > before["updated_at"], f"updated_at did not move: {before!r} -> {after!r}"


@test
def provider_gets_system_prompt_and_model_settings():
    p, s = shared()
    for spec in [None] + MODELS:   # None: no "model" field, the registry's first
        want = spec or MODELS[0]
        user, chat_id = new_chat(s)
        t = tag()
        message = f"which model? {t}"
        fields = {"model": spec["alias"]} if spec else {}
        status, _, data = send(s, chat_id, user, message, **fields)
        assert status == 200, f"{fields}: {status} {data!r}"
        check_reply(data, chat_id, "Echo: " + message, model=want["model"])
        sent = p.requests_for(t)
        assert len(sent) == 1, f"{fields}: the provider got {len(sent)} requests"
        req = sent[0]
        assert req["messages"] == [{"role": "system", "content": SYSTEM_PROMPT},
                                   {"role": "user", "content": message}], req["messages"]
        got = {k: req.get(k) for k in ("model", "temperature", "max_completion_tokens", "reasoning_effort")}
        assert got == {"model": want["model"], "temperature": 0.7,
                       "max_completion_tokens": want["max_completion_tokens"],
                       "reasoning_effort": want["reasoning_effort"]}, f"{fields}: sent {got!r}"
        assert not req.get("stream"), f"a plain send asked for a stream: {req!r}"


@test
def models_are_listed():
    _, s = shared()
    expect(s, "GET", "/models", 200, {"default": "fast", "models": MODELS})


def check_refused(s, chat_id, t):
    """Nothing stored in the chat, nothing with the tag anywhere, nothing sent to the provider."""
    p, _ = shared()
    assert rows(s, chat_id) == [], f"a refused send stored {rows(s, chat_id)!r}"
    assert s.sql("SELECT count(*) FROM messages WHERE content LIKE ?", (f"%{t}%",))[0][0] == 0
    assert p.requests_for(t) == [], "a refused send reached the provider"


@test
def invalid_sends_are_422():
    _, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    good = {"chat_id": chat_id, "user_id": user, "message": f"hi {t}"}
    cases = [
        ({}, [missing("body", "chat_id"), missing("body", "user_id"), missing("body", "message")]),
        ({"chat_id": chat_id, "message": f"hi {t}"}, [missing("body", "user_id")]),
        ({"user_id": user, "message": f"hi {t}"}, [missing("body", "chat_id")]),
        ({"chat_id": chat_id, "user_id": user}, [missing("body", "message")]),
        (dict(good, message=""), [too_short(1, "body", "message")]),
        (dict(good, model="gpt-4"), [BAD_ALIAS]),
        (dict(good, stream="yes"), [not_bool("body", "stream")]),
        # null is not "use the default" (as FastAPI would refuse it too)
        (dict(good, model=None, stream=None), [NULL_MODEL, NULL_STREAM]),
    ]
    for body, entries in cases:
        expect_422(s, "POST", "/chat", entries, json=body)
    check_refused(s, chat_id, t)


@test
def other_users_and_missing_chats_are_404():
    _, s = shared()
    owner, chat_id = new_chat(s)
    t = tag()
    expect(s, "POST", "/chat", 404, chat_not_found(chat_id),
           json={"chat_id": chat_id, "user_id": owner + "-other", "message": f"mine now {t}"})
    missing_id = str(uuid.uuid4())
    expect(s, "POST", "/chat", 404, chat_not_found(missing_id),
           json={"chat_id": missing_id, "user_id": owner, "message": f"anyone? {t}"})
    check_refused(s, chat_id, t)


@test
def non_json_and_oversized_bodies_are_refused():
    _, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    body = f'{{"chat_id": "{chat_id}", "user_id": "{user}", "message": "plain {t}"}}'
    expect(s, "POST", "/chat", 415, UNSUPPORTED_MEDIA_TYPE, body=body, headers={"Content-Type": "text/plain"})
    head = (f"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {DEFAULT_MAX_BODY + 1}\r\nConnection: close\r\n\r\n")
    resp = s.raw(head.encode())
    assert resp.status == 413 and resp.data() == too_large(DEFAULT_MAX_BODY), resp.describe()
    check_refused(s, chat_id, t)
