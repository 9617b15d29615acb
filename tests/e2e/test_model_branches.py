"""Editing and branches: messages form a tree, the active path is what is shown and sent to the model.

POST /chats/{id}/messages/{message_id}/edit stores a sibling of a user message and answers it;
PUT /chats/{id}/active switches the active path to the newest leaf under a message."""

import sqlite3

from api import chat_not_found, chat_path, db_chat, expect, expect_422
from harness import ROOT, Stack, sqlite_only, test
from provider import (SYSTEM_PROMPT, EventStream, all_rows, check_reply, check_stored_reply, new_chat, rows,
                      send, shared, tag)


def edit(s, chat_id, user, message_id, content, **fields):
    return s.json("POST", chat_path(chat_id, f"/messages/{message_id}/edit", user_id=user),
                  json={"content": content, **fields})


def activate(s, chat_id, user, message_id):
    return s.json("PUT", chat_path(chat_id, "/active", user_id=user), json={"message_id": message_id})


def page(s, chat_id, user, **params):
    status, _, data = s.json("GET", chat_path(chat_id, "/messages", user_id=user, **params))
    assert status == 200, f"{status} {data!r}"
    return data


def contents(messages):
    return [m["content"] for m in messages]


@test
def edit_makes_a_new_branch_and_answers_it():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, a = send(s, chat_id, user, f"one {t}")
    assert status == 200
    status, _, b = send(s, chat_id, user, f"two {t}")
    assert status == 200
    status, _, e = edit(s, chat_id, user, b["user_message_id"], f"two, edited {t}", model="balanced")
    assert status == 200, f"{status} {e!r}"
    check_reply(e, chat_id, f"Echo: two, edited {t}", model="openai/gpt-oss-120b")
    check_stored_reply(s, e)
    shown = page(s, chat_id, user)
    assert contents(shown) == [f"one {t}", a["reply"], f"two, edited {t}", e["reply"]], shown
    assert shown[2]["parent_id"] == a["message_id"], shown
    assert shown[2]["sibling_ids"] == [b["user_message_id"], e["user_message_id"]], shown
    assert db_chat(s, chat_id)["message_count"] == 4
    # the model got the path up to the edited message's parent, then the new text
    sent = p.requests_for(f"two, edited {t}")
    assert sent[-1]["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"one {t}"},
        {"role": "assistant", "content": a["reply"]}, {"role": "user", "content": f"two, edited {t}"}], sent[-1]
    # the old branch stays, and switching back shows it whole
    status, _, chat = activate(s, chat_id, user, b["user_message_id"])
    assert status == 200 and chat["message_count"] == 4, f"{status} {chat!r}"
    assert contents(page(s, chat_id, user)) == [f"one {t}", a["reply"], f"two {t}", b["reply"]]
    # and the next send continues the branch shown
    status, _, c = send(s, chat_id, user, f"three {t}")
    assert status == 200
    assert contents(page(s, chat_id, user)) == [f"one {t}", a["reply"], f"two {t}", b["reply"], f"three {t}",
                                                c["reply"]]
    assert p.requests_for(f"three {t}")[-1]["messages"][-3]["content"] == f"two {t}"
    assert len(rows(s, chat_id)) == 8


@test
def edit_of_the_first_message_and_streaming():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, a = send(s, chat_id, user, f"first {t}")
    assert status == 200
    st = EventStream(s, chat_path(chat_id, f"/messages/{a['user_message_id']}/edit", user_id=user),
                     {"content": f"first again {t}", "stream": True})
    events = st.read_all()
    assert st.status == 200 and events[-1].name == "done", events
    done = events[-1].json()
    shown = page(s, chat_id, user)
    assert contents(shown) == [f"first again {t}", done["reply"]], shown
    assert shown[0]["parent_id"] is None and shown[0]["sibling_ids"] == [a["user_message_id"], done["user_message_id"]]
    # the newest leaf under the old root is its reply
    status, _, chat = activate(s, chat_id, user, a["user_message_id"])
    assert status == 200
    assert [m["id"] for m in page(s, chat_id, user)] == [a["user_message_id"], a["message_id"]]


@test
def active_goes_to_the_newest_leaf_under_a_message():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, a = send(s, chat_id, user, f"root {t}")
    status, _, b = send(s, chat_id, user, f"left {t}")
    status, _, c = edit(s, chat_id, user, b["user_message_id"], f"right {t}")
    status, _, d = send(s, chat_id, user, f"right deeper {t}")
    assert status == 200
    # through the root, the newest leaf is the right branch's end
    status, _, _ = activate(s, chat_id, user, b["user_message_id"])
    assert contents(page(s, chat_id, user))[-1] == b["reply"]
    status, _, chat = activate(s, chat_id, user, a["user_message_id"])
    assert status == 200 and chat["message_count"] == 6, chat
    assert contents(page(s, chat_id, user))[-1] == d["reply"]
    # a reply's sibling: regenerate, then flip between the two
    status, _, r = s.json("POST", chat_path(chat_id, "/regenerate", user_id=user))
    assert status == 200
    shown = page(s, chat_id, user)
    assert shown[-1]["id"] == r["message_id"] and shown[-1]["sibling_ids"] == [d["message_id"], r["message_id"]]
    activate(s, chat_id, user, d["message_id"])
    assert page(s, chat_id, user)[-1]["id"] == d["message_id"]
    # paging the active path with cursors
    first = page(s, chat_id, user, limit=2)
    rest = page(s, chat_id, user, after=first[-1]["id"])
    assert [m["id"] for m in first + rest] == [m["id"] for m in page(s, chat_id, user)]
    back = page(s, chat_id, user, newest="true", limit=3)
    assert [m["id"] for m in back] == [m["id"] for m in page(s, chat_id, user)][-3:]


@test
def branch_routes_refuse_bad_input():
    _, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, a = send(s, chat_id, user, f"only {t}")
    assert status == 200
    path = chat_path(chat_id, "/messages/abc/edit", user_id=user)
    expect_422(s, "POST", path, [{"loc": ["path", "message_id"], "msg": "value is not a valid integer",
                                  "type": "type_error.integer"}], json={"content": "x"})
    path = chat_path(chat_id, f"/messages/{a['user_message_id']}/edit", user_id=user)
    expect_422(s, "POST", path, [{"loc": ["body", "content"], "msg": "field required",
                                  "type": "value_error.missing"}], json={})
    expect_422(s, "POST", path, [{"loc": ["body", "content"], "msg": "ensure this value has at least 1 characters",
                                  "type": "value_error.any_str.min_length", "ctx": {"limit_value": 1}}],
               json={"content": ""})
    expect(s, "POST", chat_path(chat_id, f"/messages/{a['message_id']}/edit", user_id=user), 400,
           {"detail": "Only a user message can be edited"}, json={"content": "x"})
    expect(s, "POST", chat_path(chat_id, "/messages/999999999/edit", user_id=user), 404,
           {"detail": "Message with id '999999999' not found"}, json={"content": "x"})
    # another chat's message is not this chat's
    user2, other = new_chat(s)
    expect(s, "POST", chat_path(other, f"/messages/{a['user_message_id']}/edit", user_id=user2), 404,
           {"detail": f"Message with id '{a['user_message_id']}' not found"}, json={"content": "x"})
    expect(s, "PUT", chat_path(chat_id, "/active", user_id=user), 404,
           {"detail": "Message with id '999999999' not found"}, json={"message_id": 999999999})
    for bad in ("1", 0, -3, None, 1.5, True):
        expect_422(s, "PUT", chat_path(chat_id, "/active", user_id=user),
                   [{"loc": ["body", "message_id"], "msg": "value is not a valid integer",
                     "type": "type_error.integer"}], json={"message_id": bad})
    expect_422(s, "PUT", chat_path(chat_id, "/active", user_id=user),
               [{"loc": ["body", "message_id"], "msg": "field required", "type": "value_error.missing"}], json={})
    assert len(rows(s, chat_id)) == 2


@test
def branch_routes_in_another_users_chat_are_404():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    status, _, a = send(s, chat_id, user, f"mine {t}")
    before = all_rows(s, chat_id)
    other = user + "-other"
    expect(s, "POST", chat_path(chat_id, f"/messages/{a['user_message_id']}/edit", user_id=other), 404,
           chat_not_found(chat_id), json={"content": "hijack"})
    expect(s, "PUT", chat_path(chat_id, "/active", user_id=other), 404, chat_not_found(chat_id),
           json={"message_id": a["user_message_id"]})
    assert all_rows(s, chat_id) == before
    assert len(p.requests_for(t)) == 1
    missing = "00000000-0000-4000-8000-000000000000"
    expect(s, "PUT", chat_path(missing, "/active", user_id=user), 404, chat_not_found(missing),
           json={"message_id": 1})


@test
def chats_from_before_migrate_to_one_path():
    # A database made by the schema before the tree (migrations 001 and 002) opens and reads as a
    # single path, each message following the one before.  (PostgreSQL: test_pg_schema.py)
    sqlite_only("a database file made by the older schema")
    stack = Stack(env={"WORKER_PROCESSES": "1"})
    conn = sqlite3.connect(stack.db_path)
    for f in sorted((ROOT / "sql" / "sqlite").glob("00[12]_*.sql")):
        conn.executescript(f.read_text())
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO chats (id, user_id, title, created_at, updated_at) VALUES "
                 "('11111111-1111-4111-8111-111111111111', 'old', 'kept', 1, 2)")
    for i, (role, text) in enumerate([("user", "hi"), ("assistant", "hello"), ("user", "more"),
                                      ("assistant", "cut")]):
        conn.execute("INSERT INTO messages (chat_id, role, content, created_at, incomplete) VALUES (?, ?, ?, ?, ?)",
                     ("11111111-1111-4111-8111-111111111111", role, text, 10 + i, int(text == "cut")))
    conn.execute("INSERT INTO idempotency_keys (user_id, key, chat_id, user_message_id, reply_message_id, "
                 "locked_until, created_at) VALUES ('old', 'k', '11111111-1111-4111-8111-111111111111', 1, 2, 0, ?)",
                 (10**16,))
    conn.commit()
    conn.close()
    with stack:
        chat_id = "11111111-1111-4111-8111-111111111111"
        shown = page(stack, chat_id, "old")
        assert [(m["id"], m["parent_id"], m["sibling_ids"]) for m in shown] == \
            [(1, None, [1]), (2, 1, [2]), (3, 2, [3]), (4, 3, [4])], shown
        assert shown[3].get("incomplete") is True
        assert db_chat(stack, chat_id)["message_count"] == 4
        assert stack.sql("PRAGMA user_version")[0][0] >= 3
