"""Per-chat settings (PATCH /chats/{id}: system_prompt, model, pinned, archived), GET /chats?archived=,
pinned chats first, and the send path using the chat's system prompt and model."""

from api import (chat_not_found, chat_path, check_chat_stored, create_chat, db_chat, expect, expect_422, missing,
                 new_user, none_not_allowed, not_bool, qs, too_long, too_short)
from harness import default_stack, test
from provider import SYSTEM_PROMPT, check_reply, new_chat, send, shared, tag

BAD_ALIAS = {"loc": ["body", "model"], "msg": "value is not a valid enumeration member; permitted: "
             "'fast', 'balanced', 'smart'", "type": "type_error.enum"}


def patch(s, chat, user, status=200, **body):
    _, data = expect(s, "PATCH", chat_path(chat["id"], user_id=user), status, json=body)
    return data


@test
def settings_are_set_shown_and_stored():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "settings")
    assert (chat["system_prompt"], chat["model"], chat["pinned"], chat["archived"]) == (None, None, False, False)
    got = patch(s, chat, user, system_prompt="Answer in French.", model="smart", pinned=True)
    assert (got["title"], got["system_prompt"], got["model"], got["pinned"], got["archived"]) == \
        ("settings", "Answer in French.", "smart", True, False), got
    assert got["updated_at"] > chat["updated_at"], "updated_at did not move"
    check_chat_stored(s, got)
    _, shown = expect(s, "GET", chat_path(chat["id"], user_id=user), 200)
    assert shown == got, (shown, got)
    # Left out: unchanged; null: back to the default.
    got2 = patch(s, chat, user, archived=True)
    assert (got2["system_prompt"], got2["model"], got2["pinned"], got2["archived"]) == \
        ("Answer in French.", "smart", True, True), got2
    got3 = patch(s, chat, user, system_prompt=None, model=None, title="renamed")
    assert (got3["title"], got3["system_prompt"], got3["model"], got3["pinned"], got3["archived"]) == \
        ("renamed", None, None, True, True), got3
    check_chat_stored(s, got3)


@test
def settings_are_validated():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "strict")
    path = chat_path(chat["id"], user_id=user)
    expect_422(s, "PATCH", path, [missing("body", "title")], json={})
    expect_422(s, "PATCH", path, [too_long(8000, "body", "system_prompt")], json={"system_prompt": "é" * 8001})
    expect_422(s, "PATCH", path, [too_short(1, "body", "system_prompt")], json={"system_prompt": ""})
    expect_422(s, "PATCH", path, [BAD_ALIAS], json={"model": "gpt-5"})
    expect_422(s, "PATCH", path, [not_bool("body", "pinned"), none_not_allowed("body", "archived")],
               json={"pinned": "yes", "archived": None})
    expect_422(s, "PATCH", path, [none_not_allowed("body", "title")], json={"title": None, "pinned": True})
    # 8,000 characters (not bytes) are allowed; nothing above changed the chat.
    assert db_chat(s, chat["id"])["pinned"] is False
    got = patch(s, chat, user, system_prompt="é" * 8000)
    assert got["system_prompt"] == "é" * 8000
    check_chat_stored(s, got)


@test
def settings_of_another_users_chat_are_404():
    s = default_stack()
    owner, other = new_user("owner"), new_user("other")
    chat = create_chat(s, owner, "mine")
    expect(s, "PATCH", chat_path(chat["id"], user_id=other), 404, chat_not_found(chat["id"]),
           json={"pinned": True, "system_prompt": "stolen", "model": "smart"})
    check_chat_stored(s, chat)


@test
def archived_chats_are_listed_apart_and_pinned_first():
    s = default_stack()
    user = new_user()
    a, b, c, d = (create_chat(s, user, n) for n in "abcd")
    patch(s, a, user, pinned=True)          # oldest, but pinned
    patch(s, d, user, archived=True)
    patch(s, c, user, title="c2")           # c now newest of the others
    _, listed = expect(s, "GET", "/chats" + qs(user_id=user), 200)
    assert [x["title"] for x in listed["chats"]] == ["a", "c2", "b"], listed
    assert listed["total"] == 3
    _, listed = expect(s, "GET", "/chats" + qs(user_id=user, archived="false", limit=1, offset=1), 200)
    assert [x["title"] for x in listed["chats"]] == ["c2"] and listed["total"] == 3, listed
    _, arch = expect(s, "GET", "/chats" + qs(user_id=user, archived="true"), 200)
    assert [x["id"] for x in arch["chats"]] == [d["id"]] and arch["total"] == 1, arch
    assert arch["chats"][0]["archived"] is True
    expect_422(s, "GET", "/chats" + qs(user_id=user, archived="maybe"), [not_bool("query", "archived")])
    patch(s, d, user, archived=False)
    _, listed = expect(s, "GET", "/chats" + qs(user_id=user), 200)
    assert listed["total"] == 4 and listed["chats"][0]["title"] == "a", listed


@test
def sends_use_the_chats_system_prompt_and_model():
    p, s = shared()
    user, chat_id = new_chat(s)
    chat = {"id": chat_id}
    patch(s, chat, user, system_prompt="You are terse.", model="balanced")
    t = tag()
    status, _, data = send(s, chat_id, user, f"hi {t}")
    assert status == 200, data
    check_reply(data, chat_id, f"Echo: hi {t}", model="openai/gpt-oss-120b")
    req = p.requests_for(t)[0]
    assert req["messages"][0] == {"role": "system", "content": "You are terse."}, req["messages"]
    assert req["model"] == "openai/gpt-oss-120b" and req["reasoning_effort"] == "medium", req
    # A model named in the request wins over the chat's.
    t = tag()
    status, _, data = send(s, chat_id, user, f"fast {t}", model="fast")
    assert status == 200, data
    req = p.requests_for(t)[0]
    assert req["model"] == "openai/gpt-oss-20b" and req["messages"][0]["content"] == "You are terse.", req
    # Regenerate and edit too.
    status, data = s.json("POST", chat_path(chat_id, "/regenerate", user_id=user), json={})[::2]
    assert status == 200, data
    sent = p.requests_for(t)
    assert len(sent) == 2, sent
    last = sent[-1]
    assert last["model"] == "openai/gpt-oss-120b" and last["messages"][0]["content"] == "You are terse.", last
    t = tag()
    status, data = s.json("POST", chat_path(chat_id, f"/messages/{data['user_message_id']}/edit", user_id=user),
                          json={"content": f"edited {t}"})[::2]
    assert status == 200, data
    req = p.requests_for(t)[0]
    assert req["model"] == "openai/gpt-oss-120b" and req["messages"][0]["content"] == "You are terse.", req
    # Back to the defaults.
    patch(s, chat, user, system_prompt=None, model=None)
    t = tag()
    status, _, data = send(s, chat_id, user, f"default {t}")
    assert status == 200, data
    req = p.requests_for(t)[0]
    assert req["model"] == "openai/gpt-oss-20b" and req["messages"][0] == \
        {"role": "system", "content": SYSTEM_PROMPT}, req
