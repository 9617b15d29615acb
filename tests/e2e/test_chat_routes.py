"""GET, PATCH and DELETE /chats/{id}: ownership on every route, title lengths, timestamps, cascade."""

import uuid

from api import (chat_not_found, chat_path, check_chat, check_chat_stored, create_chat, db_chat, db_messages,
                 expect, expect_422, insert_messages, missing, new_user, timestamp_to_micros, too_long,
                 too_short)
from harness import default_stack, test

# method, path suffix, JSON body: every route that names a chat
CHAT_ROUTES = [
    ("GET", "", None),
    ("HEAD", "", None),
    ("PATCH", "", {"title": "stolen"}),
    ("DELETE", "", None),
    ("GET", "/messages", None),
]


def expect_chat_404(s, method, chat_id, suffix, user, body=None):
    kwargs = {} if body is None else {"json": body}
    resp = s.request(method, chat_path(chat_id, suffix, user_id=user), **kwargs)
    if method == "HEAD":
        assert resp.status == 404 and resp.body == b"", f"HEAD: {resp.describe()}"
        return
    expect(s, method, chat_path(chat_id, suffix, user_id=user), 404, chat_not_found(chat_id), **kwargs)


@test
def get_returns_the_chat():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "hello")
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)


@test
def another_users_chat_is_404_everywhere_and_unchanged():
    s = default_stack()
    owner, intruder = new_user("owner"), new_user("intruder")
    chat = create_chat(s, owner, "private")
    insert_messages(s, chat["id"], ["secret 1", "secret 2"])
    stored = db_chat(s, chat["id"])
    messages = db_messages(s, chat["id"])
    for method, suffix, body in CHAT_ROUTES:
        expect_chat_404(s, method, chat["id"], suffix, intruder, body)
    assert db_chat(s, chat["id"]) == stored, "another user's request changed the chat"
    assert db_messages(s, chat["id"]) == messages, "another user's request changed the messages"
    expect(s, "GET", chat_path(chat["id"], user_id=owner), 200, dict(chat, message_count=2))


@test
def unknown_chat_is_404_everywhere():
    s = default_stack()
    user = new_user()
    for chat_id in (str(uuid.uuid4()), "not-a-uuid"):
        for method, suffix, body in CHAT_ROUTES:
            expect_chat_404(s, method, chat_id, suffix, user, body)


@test
def user_id_is_required_on_every_route():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    for method, suffix, body in CHAT_ROUTES:
        if method == "HEAD":
            continue
        kwargs = {} if body is None else {"json": body}
        expect_422(s, method, chat_path(chat["id"], suffix), [missing("query", "user_id")], **kwargs)
        expect_422(s, method, chat_path(chat["id"], suffix, user_id=""), [too_short(1, "query", "user_id")],
                   **kwargs)
    check_chat_stored(s, chat)


def patch(s, chat, user, title):
    _, patched = expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200, json={"title": title})
    check_chat(patched, user, title, chat["message_count"])
    assert patched["id"] == chat["id"] and patched["created_at"] == chat["created_at"], \
        f"PATCH changed id or created_at: {chat!r} -> {patched!r}"
    assert timestamp_to_micros(patched["updated_at"]) > timestamp_to_micros(chat["updated_at"]), \
        f"updated_at did not move forward: {chat['updated_at']} -> {patched['updated_at']}"
    check_chat_stored(s, patched)
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, patched)
    return patched


@test
def patch_sets_title_and_moves_updated_at():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    chat = patch(s, chat, user, "first")
    chat = patch(s, chat, user, "second")
    patch(s, chat, user, "second")  # the same title again still counts as an update


@test
def patch_title_lengths_in_characters():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "original")
    for title in ("x", "x" * 200, "é" * 200, "😀" * 200, "中" * 199 + "😀"):
        chat = patch(s, chat, user, title)
    for title in ("x" * 201, "é" * 201, "😀" * 201):
        expect_422(s, "PATCH", chat_path(chat["id"], user_id=user), [too_long(200, "body", "title")],
                   json={"title": title})
    expect_422(s, "PATCH", chat_path(chat["id"], user_id=user), [too_short(1, "body", "title")],
               json={"title": ""})
    check_chat_stored(s, chat)


@test
def patch_ignores_other_fields():
    s = default_stack()
    user, other = new_user(), new_user()
    chat = create_chat(s, user, "before")
    _, patched = expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200,
                        json={"title": "after", "user_id": other, "id": "x", "message_count": 9,
                              "created_at": "2000-01-01T00:00:00.000000Z"})
    check_chat(patched, user, "after")
    assert patched["id"] == chat["id"] and patched["created_at"] == chat["created_at"]
    check_chat_stored(s, patched)


@test
def delete_is_204_and_cascades():
    s = default_stack()
    user = new_user()
    chat, kept = create_chat(s, user, "doomed"), create_chat(s, user, "kept")
    insert_messages(s, chat["id"], [f"m{i}" for i in range(5)])
    kept_messages = insert_messages(s, kept["id"], ["stays"])
    resp = s.request("DELETE", chat_path(chat["id"], user_id=user))
    assert resp.status == 204 and resp.body == b"", f"DELETE: {resp.describe()}"
    assert db_chat(s, chat["id"]) is None, "the chat row is still there"
    assert db_messages(s, chat["id"]) == [], "its messages were not deleted"
    assert [m[0] for m in db_messages(s, kept["id"])] == kept_messages, "another chat's messages changed"
    for method, suffix, body in CHAT_ROUTES:
        expect_chat_404(s, method, chat["id"], suffix, user, body)
    expect(s, "GET", f"/chats?user_id={user}", 200, {"chats": [dict(kept, message_count=1)], "total": 1})
