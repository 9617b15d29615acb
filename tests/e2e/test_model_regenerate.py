"""POST /chats/{id}/regenerate: the chat's last user message answered again, the earlier reply replaced."""

from api import chat_not_found, chat_path, db_chat, expect
from harness import test
from provider import (SYSTEM_PROMPT, check_failure, check_reply, check_stored_reply, new_chat, rows, send,
                      shared, tag)


def regenerate(s, chat_id, user, **body):
    path = chat_path(chat_id, "/regenerate", user_id=user)
    return s.json("POST", path, json=body) if body else s.json("POST", path)


@test
def regenerate_replaces_the_reply():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"say it again {t}"
    status, _, first = send(s, chat_id, user, message)
    assert status == 200, f"{status} {first!r}"
    status, _, again = regenerate(s, chat_id, user, model="balanced")
    assert status == 200, f"{status} {again!r}"
    check_reply(again, chat_id, "Echo: " + message, model="openai/gpt-oss-120b")
    assert again["user_message_id"] == first["user_message_id"], (first, again)
    assert again["message_id"] != first["message_id"], "the reply kept its id"
    check_stored_reply(s, again)
    assert [(r["id"], r["role"]) for r in rows(s, chat_id)] == \
        [(first["user_message_id"], "user"), (again["message_id"], "assistant")], rows(s, chat_id)
    assert db_chat(s, chat_id)["message_count"] == 2
    sent = p.requests_for(t)
    assert len(sent) == 2 and sent[1]["model"] == "openai/gpt-oss-120b", sent
    assert sent[1]["messages"] == [{"role": "system", "content": SYSTEM_PROMPT},
                                   {"role": "user", "content": message}], "the old reply was sent as context"


@test
def regenerate_answers_a_failed_send():
    _, s = shared()   # one retry: the send's two attempts fail, the regenerate's succeeds
    user, chat_id = new_chat(s)
    message = f"#fault=500 #fail_times=2 {tag()}"
    check_failure(*send(s, chat_id, user, message), "the provider failed (500")
    (user_row,) = rows(s, chat_id)
    status, _, data = regenerate(s, chat_id, user)
    assert status == 200, f"{status} {data!r}"
    check_reply(data, chat_id, "Echo: " + message)
    assert data["user_message_id"] == user_row["id"], (user_row, data)
    check_stored_reply(s, data)
    assert [r["role"] for r in rows(s, chat_id)] == ["user", "assistant"], rows(s, chat_id)


@test
def regenerate_without_a_user_message_is_409():
    _, s = shared()
    user, chat_id = new_chat(s)
    expect(s, "POST", chat_path(chat_id, "/regenerate", user_id=user), 409,
           {"detail": "The chat has no user message to answer"})
    assert rows(s, chat_id) == []


@test
def regenerate_in_another_users_chat_is_404():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, first = send(s, chat_id, user, f"mine {t}")
    assert status == 200, f"{status} {first!r}"
    before = rows(s, chat_id)
    expect(s, "POST", chat_path(chat_id, "/regenerate", user_id=user + "-other"), 404, chat_not_found(chat_id))
    assert rows(s, chat_id) == before
    assert len(p.requests_for(t)) == 1
