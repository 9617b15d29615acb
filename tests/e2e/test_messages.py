"""GET /chats/{id}/messages: oldest first, limit, before/after/newest cursors and X-Has-More."""

from api import (MESSAGE_KEYS, chat_path, create_chat, expect, expect_422, insert_messages, message_json,
                 new_user, not_bool, not_ge, not_integer, not_le)
from harness import default_stack, test

CURSOR_CONFLICT = {"msg": "only one of before, after and newest may be given", "type": "value_error"}


def long_chat(s, n=60):
    """A chat with n messages whose ids are interleaved with another chat's (so ids are not contiguous).
    Returns (user, chat, message ids oldest first)."""
    user = new_user()
    chat = create_chat(s, user, "long")
    other = create_chat(s, new_user(), "interleaved")
    ids = []
    for i in range(n):
        ids += insert_messages(s, chat["id"], [f"message {i}"])
        insert_messages(s, other["id"], [f"noise {i}"])
    return user, chat, ids


def page(s, user, chat, **params):
    """The ids of one page and its X-Has-More; checks every message against the database."""
    headers, data = expect(s, "GET", chat_path(chat["id"], "/messages", user_id=user, **params), 200)
    assert isinstance(data, list), f"not a list: {data!r}"
    for message in data:
        assert set(message) == MESSAGE_KEYS, f"not a Message: {message!r}"
        assert message == message_json(s, message["id"]), f"message differs from the database: {message!r}"
        assert message["chat_id"] == chat["id"], f"message of another chat: {message!r}"
    has_more = headers.get("x-has-more")
    assert has_more in ("true", "false"), f"X-Has-More is {has_more!r} for {params}"
    return [m["id"] for m in data], has_more == "true"


def expect_page(s, user, chat, want_ids, want_more, **params):
    got_ids, more = page(s, user, chat, **params)
    assert got_ids == want_ids, f"{params}: ids {got_ids}, wanted {want_ids}"
    assert more == want_more, f"{params}: X-Has-More {more}, wanted {want_more}"


@test
def empty_chat_has_no_messages():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    expect_page(s, user, chat, [], False)
    expect_page(s, user, chat, [], False, newest="true")
    expect_page(s, user, chat, [], False, before=10)
    expect_page(s, user, chat, [], False, after=0)


@test
def oldest_first_with_default_limit_100():
    s = default_stack()
    user, chat, ids = long_chat(s, 105)
    expect_page(s, user, chat, ids[:100], True)
    expect_page(s, user, chat, ids, False, limit=500)
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, dict(chat, message_count=105))


@test
def first_pages_without_cursor():
    s = default_stack()
    user, chat, ids = long_chat(s)
    expect_page(s, user, chat, ids, False)
    expect_page(s, user, chat, ids[:20], True, limit=20)
    expect_page(s, user, chat, ids[:59], True, limit=59)
    expect_page(s, user, chat, ids, False, limit=60)
    expect_page(s, user, chat, ids[:1], True, limit=1)
    expect_page(s, user, chat, ids[:20], True, limit=20, newest="false")


@test
def newest_then_before_pages_backwards():
    s = default_stack()
    user, chat, ids = long_chat(s)
    expect_page(s, user, chat, ids[40:], True, newest="true", limit=20)
    expect_page(s, user, chat, ids[20:40], True, before=ids[40], limit=20)
    expect_page(s, user, chat, ids[:20], False, before=ids[20], limit=20)
    expect_page(s, user, chat, [], False, before=ids[0], limit=20)
    expect_page(s, user, chat, ids[:5], False, before=ids[5], limit=20)
    expect_page(s, user, chat, ids, False, newest="true", limit=60)
    expect_page(s, user, chat, ids[1:], True, newest="true", limit=59)
    expect_page(s, user, chat, ids, False, newest="true")
    expect_page(s, user, chat, ids[-1:], True, newest="true", limit=1)
    # a cursor between two of this chat's ids (another chat's message) works too
    expect_page(s, user, chat, ids[30:40], True, before=ids[40] - 1, limit=10)
    expect_page(s, user, chat, ids[50:], True, before=ids[-1] + 1000, limit=10)


@test
def after_pages_forwards():
    s = default_stack()
    user, chat, ids = long_chat(s)
    expect_page(s, user, chat, ids[:20], True, after=0, limit=20)
    expect_page(s, user, chat, ids[20:40], True, after=ids[19], limit=20)
    expect_page(s, user, chat, ids[40:], False, after=ids[39], limit=20)
    expect_page(s, user, chat, [], False, after=ids[-1], limit=20)
    expect_page(s, user, chat, ids[55:], False, after=ids[54], limit=20)
    expect_page(s, user, chat, ids[31:41], True, after=ids[30] + 1, limit=10)
    expect_page(s, user, chat, ids[1:], False, after=ids[0])


@test
def limit_bounds_and_cursor_types():
    s = default_stack()
    user, chat, _ = long_chat(s, 2)
    path = lambda **p: chat_path(chat["id"], "/messages", user_id=user, **p)  # noqa: E731
    expect(s, "GET", path(limit=500), 200)
    cases = [
        ({"limit": 0}, [not_ge(1, "query", "limit")]),
        ({"limit": 501}, [not_le(500, "query", "limit")]),
        ({"limit": "ten"}, [not_integer("query", "limit")]),
        ({"before": "abc"}, [not_integer("query", "before")]),
        ({"after": "1.5"}, [not_integer("query", "after")]),
        ({"before": -1}, [not_ge(0, "query", "before")]),
        ({"after": -1}, [not_ge(0, "query", "after")]),
        ({"newest": "maybe"}, [not_bool("query", "newest")]),
        ({"limit": 0, "before": "x"}, [not_ge(1, "query", "limit"), not_integer("query", "before")]),
    ]
    for params, entries in cases:
        expect_422(s, "GET", path(**params), entries)


@test
def combining_cursors_is_422():
    s = default_stack()
    user, chat, ids = long_chat(s, 3)
    for params in ({"before": ids[2], "after": ids[0]}, {"before": ids[2], "newest": "true"},
                   {"after": ids[0], "newest": "true"}, {"before": 1, "after": 1, "newest": "true"}):
        _, data = expect(s, "GET", chat_path(chat["id"], "/messages", user_id=user, **params), 422)
        detail = data["detail"]
        assert len(detail) == 1 and {k: detail[0].get(k) for k in CURSOR_CONFLICT} == CURSOR_CONFLICT \
            and detail[0]["loc"][0] == "query", f"{params}: {data!r}"
