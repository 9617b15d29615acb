"""POST /chats: 201 and the stored row; content types; lengths; extra and duplicate fields."""

from api import (UNSUPPORTED_MEDIA_TYPE, chat_path, check_chat, check_chat_stored, count_chats, create_chat,
                 expect, expect_422, new_user, now_micros, timestamp_to_micros, too_long, too_short)
from harness import default_stack, encode_json, test


@test
def created_with_title():
    s = default_stack()
    user = new_user()
    before = now_micros()
    chat = create_chat(s, user, "My First Chat")
    after = now_micros()
    created = timestamp_to_micros(chat["created_at"])
    assert chat["created_at"] == chat["updated_at"], f"created_at != updated_at: {chat!r}"
    assert before - 2_000_000 <= created <= after + 2_000_000, f"created_at is not now: {chat!r}"
    check_chat_stored(s, chat)


@test
def created_with_null_or_omitted_title():
    s = default_stack()
    user = new_user()
    for body in ({"user_id": user, "title": None}, {"user_id": user}):
        _, chat = expect(s, "POST", "/chats", 201, json=body)
        check_chat(chat, user, None)
        check_chat_stored(s, chat)
    assert count_chats(s, user) == 2


@test
def ids_are_unique_v4_uuids():
    s = default_stack()
    user = new_user()
    ids = {create_chat(s, user)["id"] for _ in range(20)}
    assert len(ids) == 20, "duplicate chat ids"


@test
def extra_fields_are_ignored():
    s = default_stack()
    user = new_user()
    body = {"user_id": user, "title": "t", "id": "forced", "message_count": 7, "created_at": "x",
            "nested": {"a": [1, 2, {"b": None}]}}
    _, chat = expect(s, "POST", "/chats", 201, json=body)
    check_chat(chat, user, "t")
    check_chat_stored(s, chat)


@test
def duplicate_keys_last_wins():
    s = default_stack()
    first, last = new_user(), new_user()
    body = f'{{"user_id": "{first}", "title": "a", "user_id": "{last}", "title": null}}'
    _, chat = expect(s, "POST", "/chats", 201, body=body, headers={"Content-Type": "application/json"})
    check_chat(chat, last, None)
    check_chat_stored(s, chat)
    assert count_chats(s, first) == 0


@test
def user_id_length_limits():
    s = default_stack()
    for unit in ("u", "é", "😀"):
        ok = unit * 254 + "-"
        check_chat_stored(s, create_chat(s, ok, "fits"))
        long = unit * 256
        expect_422(s, "POST", "/chats", [too_long(255, "body", "user_id")], json={"user_id": long})
        assert count_chats(s, long) == 0
    expect_422(s, "POST", "/chats", [too_short(1, "body", "user_id")], json={"user_id": ""})


@test
def json_content_types_are_accepted():
    s = default_stack()
    user = new_user()
    for ctype in ("application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
                  "application/vnd.api+json", None):
        headers = {"Content-Type": ctype} if ctype else {}
        _, chat = expect(s, "POST", "/chats", 201, body=encode_json({"user_id": user, "title": ctype}),
                         headers=headers)
        check_chat(chat, user, ctype)
        check_chat_stored(s, chat)
    assert count_chats(s, user) == 5


@test
def other_content_types_are_415():
    s = default_stack()
    user = new_user()
    body = encode_json({"user_id": user})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "text/json-ish"):
        expect(s, "POST", "/chats", 415, UNSUPPORTED_MEDIA_TYPE, body=body, headers={"Content-Type": ctype})
    expect(s, "POST", "/chats", 415, UNSUPPORTED_MEDIA_TYPE, body=f"user_id={user}",
           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert count_chats(s, user) == 0


@test
def patch_with_other_content_type_is_415():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "before")
    expect(s, "PATCH", chat_path(chat["id"], user_id=user), 415, UNSUPPORTED_MEDIA_TYPE,
           body=encode_json({"title": "after"}), headers={"Content-Type": "text/plain"})
    check_chat_stored(s, chat)
