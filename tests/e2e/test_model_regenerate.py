"""POST /chats/{id}/regenerate: the active path's last user message answered again, as an alternative
reply that is shown once complete; the earlier reply stays, as its sibling."""

from api import chat_not_found, chat_path, db_chat, expect
from harness import test
from provider import (SYSTEM_PROMPT, all_rows, check_failure, check_reply, check_stored_reply, new_chat, rows,
                      send, shared, tag)


def regenerate(s, chat_id, user, **body):
    path = chat_path(chat_id, "/regenerate", user_id=user)
    return s.json("POST", path, json=body) if body else s.json("POST", path)


@test
def regenerate_adds_an_alternative_and_shows_it():
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
    check_stored_reply(s, first)   # the first answer is kept
    assert [(r["id"], r["role"]) for r in rows(s, chat_id, path_only=True)] == \
        [(first["user_message_id"], "user"), (again["message_id"], "assistant")], rows(s, chat_id)
    assert len(rows(s, chat_id)) == 3
    assert db_chat(s, chat_id)["message_count"] == 2
    status, _, shown = s.json("GET", chat_path(chat_id, "/messages", user_id=user))
    assert status == 200 and [m["id"] for m in shown] == [first["user_message_id"], again["message_id"]], shown
    assert shown[1]["parent_id"] == first["user_message_id"], shown
    assert shown[1]["sibling_ids"] == [first["message_id"], again["message_id"]], shown
    assert shown[0]["parent_id"] is None and shown[0]["sibling_ids"] == [first["user_message_id"]], shown
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
    (failed_row,) = [r for r in all_rows(s, chat_id) if r["role"] == "assistant"]
    status, _, data = regenerate(s, chat_id, user)
    assert status == 200, f"{status} {data!r}"
    check_reply(data, chat_id, "Echo: " + message)
    assert data["user_message_id"] == user_row["id"], (user_row, data)
    assert data["message_id"] == failed_row["id"], "the failed send's place was not answered"
    check_stored_reply(s, data)
    assert [r["role"] for r in rows(s, chat_id)] == ["user", "assistant"], rows(s, chat_id)
    assert len(all_rows(s, chat_id)) == 2


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
