"""POST /chat with an Idempotency-Key: a repeat returns the first answer instead of sending again."""

from api import create_chat
from harness import test
from provider import (check_failure, check_message_kept, check_reply, check_stored_reply, new_chat, rows,
                      send, shared, tag)


MISMATCH = {"detail": [{"loc": ["header", "idempotency-key"], "msg": "this key was used for another request",
                        "type": "value_error"}]}


def keyed_send(s, chat_id, user, message, key):
    return send(s, chat_id, user, message, headers={"Idempotency-Key": key})


@test
def repeat_returns_the_first_answer():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    message = f"only once {t}"
    status, headers, first = keyed_send(s, chat_id, user, message, "key-" + t)
    assert status == 200, f"{status} {first!r}"
    assert "idempotent-replayed" not in headers, headers
    check_reply(first, chat_id, "Echo: " + message)
    status, headers, again = keyed_send(s, chat_id, user, message, "key-" + t)
    assert status == 200, f"{status} {again!r}"
    assert headers.get("idempotent-replayed") == "true", headers
    assert again == first, f"the repeat answered\n  {again!r}\nnot the first answer\n  {first!r}"
    check_stored_reply(s, first)
    assert [r["role"] for r in rows(s, chat_id)] == ["user", "assistant"], rows(s, chat_id)
    assert len(p.requests_for(t)) == 1, "the repeat reached the provider"


@test
def same_key_with_another_message_is_422():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, first = keyed_send(s, chat_id, user, f"first {t}", "key-" + t)
    assert status == 200, f"{status} {first!r}"
    status, _, data = keyed_send(s, chat_id, user, f"second {t}", "key-" + t)
    assert status == 422, f"{status} {data!r}"
    assert data == MISMATCH, data
    other_chat = create_chat(s, user)["id"]
    status, _, data = keyed_send(s, other_chat, user, f"first {t}", "key-" + t)
    assert status == 422 and data == MISMATCH, \
        f"the key in another chat: {status} {data!r}"
    assert [r["content"] for r in rows(s, chat_id)] == [f"first {t}", first["reply"]], rows(s, chat_id)
    assert len(p.requests_for(t)) == 1


@test
def repeat_after_a_failure_answers_the_stored_message():
    p, s = shared("no_retry")
    user, chat_id = new_chat(s)
    t = tag()
    message = f"#fault=500 #fail_times=1 {t}"
    check_failure(*keyed_send(s, chat_id, user, message, "key-" + t), "the provider failed (500")
    check_message_kept(s, chat_id, message)
    (user_row,) = rows(s, chat_id)
    status, headers, data = keyed_send(s, chat_id, user, message, "key-" + t)
    assert status == 200, f"{status} {data!r}"
    assert "idempotent-replayed" not in headers, "a repeat after a failure replayed nothing"
    check_reply(data, chat_id, "Echo: " + message)
    assert data["user_message_id"] == user_row["id"], (user_row, data)
    check_stored_reply(s, data)
    assert [r["role"] for r in rows(s, chat_id)] == ["user", "assistant"], rows(s, chat_id)
    status, headers, replayed = keyed_send(s, chat_id, user, message, "key-" + t)
    assert status == 200 and headers.get("idempotent-replayed") == "true" and replayed == data, \
        f"{status} {headers} {replayed!r}"
    assert len(p.requests_for(t)) == 2
