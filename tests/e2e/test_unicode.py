"""Any Unicode, \\u0000 included, round-trips byte for byte through the API and the database."""

from api import (chat_path, check_chat_stored, create_chat, db_messages, expect, insert_messages, new_user,
                 qs)
from harness import default_stack, test

SAMPLES = [
    "nul \u0000 inside",
    "\u0000",
    "emoji 😀👍🏽👨‍👩‍👧 flags 🇫🇷",
    "CJK 中文 日本語 한국어",
    'quotes " and \\ backslash / slash',
    "controls \t\n\r\b\f \u0001\u001f\u007f",
    "separators \u2028\u2029 bom \ufeff",
    "combining e\u0301 rtl \u05e9\u05dc\u05d5\u05dd",
    "astral 𝄞 𐍈 \U0010fffd",
]


@test
def user_id_and_title_round_trip():
    s = default_stack()
    for sample in SAMPLES:
        user = new_user() + " " + sample
        chat = create_chat(s, user, sample)
        assert chat["user_id"] == user and chat["title"] == sample
        row = check_chat_stored(s, chat)
        assert row["user_id"].encode() == user.encode() and row["title"].encode() == sample.encode()
        expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
        expect(s, "GET", "/chats" + qs(user_id=user), 200, {"chats": [chat], "total": 1})


@test
def user_id_differing_after_nul_is_another_user():
    s = default_stack()
    base = new_user()
    a = create_chat(s, base + "\u0000a")
    b = create_chat(s, base + "\u0000b")
    expect(s, "GET", "/chats" + qs(user_id=base + "\u0000a"), 200, {"chats": [a], "total": 1})
    expect(s, "GET", "/chats" + qs(user_id=base), 200, {"chats": [], "total": 0})
    expect(s, "GET", chat_path(b["id"], user_id=base + "\u0000a"), 404)


@test
def patched_title_round_trips():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    for sample in SAMPLES:
        _, chat = expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200, json={"title": sample})
        assert chat["title"] == sample, f"{chat['title']!r} != {sample!r}"
        check_chat_stored(s, chat)


@test
def escaped_json_input_is_decoded():
    s = default_stack()
    user = new_user()
    body = ('{"user_id": "%s", "title": "nul \\u0000 \\ud83d\\ude00 \\u00e9 \\"q\\" \\/"}' % user).encode()
    _, chat = expect(s, "POST", "/chats", 201, body=body)
    assert chat["title"] == 'nul \u0000 😀 é "q" /', f"{chat['title']!r}"
    check_chat_stored(s, chat)


@test
def message_content_round_trips():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    ids = insert_messages(s, chat["id"], SAMPLES + ["x" * 100_000])
    stored = db_messages(s, chat["id"])
    assert [r[2].decode() for r in stored] == SAMPLES + ["x" * 100_000], "the test's own insert lost bytes"
    _, data = expect(s, "GET", chat_path(chat["id"], "/messages", user_id=user), 200)
    assert [m["id"] for m in data] == ids
    for message, sample in zip(data, SAMPLES):
        assert message["content"] == sample, f"{message['content']!r} != {sample!r}"
