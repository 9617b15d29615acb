"""GET /chats: the user's chats, newest updated_at first, limit/offset paging, exact total."""

from api import (check_chat_stored, create_chat, expect, expect_422, insert_messages, missing, new_user,
                 not_ge, not_integer, not_le, qs, too_long, too_short)
from harness import default_stack, test


def list_chats(s, user, **params):
    _, data = expect(s, "GET", "/chats" + qs(user_id=user, **params), 200)
    assert isinstance(data, dict) and set(data) == {"chats", "total"}, f"not {{chats, total}}: {data!r}"
    return data


def create_chats(s, user, n):
    """n chats, created in order; returns them newest first (the listing order)."""
    return [create_chat(s, user, f"chat {i}") for i in range(n)][::-1]


@test
def newest_first_and_patch_moves_to_front():
    s = default_stack()
    user = new_user()
    a, b, c = create_chats(s, user, 3)[::-1]
    assert list_chats(s, user) == {"chats": [c, b, a], "total": 3}
    _, patched = expect(s, "PATCH", f"/chats/{a['id']}" + qs(user_id=user), 200, json={"title": "moved"})
    assert list_chats(s, user) == {"chats": [patched, c, b], "total": 3}


@test
def limit_and_offset_page_with_exact_total():
    s = default_stack()
    user = new_user()
    chats = create_chats(s, user, 7)
    for limit, offset in [(3, 0), (3, 3), (3, 6), (3, 7), (1, 6), (100, 0), (5, 100)]:
        data = list_chats(s, user, limit=limit, offset=offset)
        assert data == {"chats": chats[offset:offset + limit], "total": 7}, \
            f"limit={limit} offset={offset}: {[c['title'] for c in data['chats']]}"


@test
def default_limit_is_50():
    s = default_stack()
    user = new_user()
    chats = create_chats(s, user, 52)
    assert list_chats(s, user) == {"chats": chats[:50], "total": 52}
    assert list_chats(s, user, offset=50) == {"chats": chats[50:], "total": 52}


@test
def unknown_user_has_no_chats():
    assert list_chats(default_stack(), new_user()) == {"chats": [], "total": 0}


@test
def other_users_chats_are_never_listed():
    s = default_stack()
    alice, bob = new_user("alice"), new_user("bob")
    mine = create_chats(s, alice, 2)
    theirs = create_chats(s, bob, 3)
    assert list_chats(s, alice) == {"chats": mine, "total": 2}
    assert list_chats(s, bob) == {"chats": theirs, "total": 3}
    # a user id that is a prefix of another's, or differs in case, is another user
    assert list_chats(s, alice[:-1]) == {"chats": [], "total": 0}
    assert list_chats(s, alice.upper()) == {"chats": [], "total": 0}


@test
def message_count_is_listed():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "counted")
    insert_messages(s, chat["id"], ["a", "b", "c"])
    listed = list_chats(s, user)["chats"][0]
    assert listed == dict(chat, message_count=3), f"{listed!r}"
    check_chat_stored(s, listed)


@test
def query_is_form_decoded():
    s = default_stack()
    user = new_user() + " with space+plus&amp=é"
    chat = create_chat(s, user)
    for query in [qs(user_id=user), "?user_id=" + user.replace("%", "%25").replace(" ", "%20")
                  .replace("+", "%2B").replace("&", "%26").replace("=", "%3D").replace("é", "%C3%A9")]:
        _, data = expect(s, "GET", "/chats" + query, 200)
        assert data == {"chats": [chat], "total": 1}, f"{query}: {data!r}"


@test
def limit_100_is_allowed():
    s = default_stack()
    user = new_user()
    chats = create_chats(s, user, 2)
    assert list_chats(s, user, limit=100) == {"chats": chats, "total": 2}
    assert list_chats(s, user, limit=1) == {"chats": chats[:1], "total": 2}


@test
def bad_paging_parameters_are_422():
    s = default_stack()
    user = new_user()
    cases = [
        ({"limit": 0}, [not_ge(1, "query", "limit")]),
        ({"limit": -1}, [not_ge(1, "query", "limit")]),
        ({"limit": 101}, [not_le(100, "query", "limit")]),
        ({"limit": "abc"}, [not_integer("query", "limit")]),
        ({"limit": "1.5"}, [not_integer("query", "limit")]),
        ({"limit": ""}, [not_integer("query", "limit")]),
        ({"limit": "99999999999999999999999"}, [not_le(100, "query", "limit")]),
        ({"offset": -1}, [not_ge(0, "query", "offset")]),
        ({"offset": "x"}, [not_integer("query", "offset")]),
        ({"limit": 0, "offset": -1}, [not_ge(1, "query", "limit"), not_ge(0, "query", "offset")]),
    ]
    for params, entries in cases:
        expect_422(s, "GET", "/chats" + qs(user_id=user, **params), entries)


@test
def user_id_is_required_and_bounded():
    s = default_stack()
    expect_422(s, "GET", "/chats", [missing("query", "user_id")])
    expect_422(s, "GET", "/chats?limit=5", [missing("query", "user_id")])
    expect_422(s, "GET", "/chats" + qs(user_id=""), [too_short(1, "query", "user_id")])
    expect_422(s, "GET", "/chats" + qs(user_id="é" * 256), [too_long(255, "query", "user_id")])
    expect(s, "GET", "/chats" + qs(user_id="é" * 255), 200, {"chats": [], "total": 0})
    expect_422(s, "GET", "/chats" + qs(limit=0, offset="z"),
               [missing("query", "user_id"), not_ge(1, "query", "limit"), not_integer("query", "offset")])
