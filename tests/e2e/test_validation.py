"""Request bodies that are refused with a 422, one test per case of README's table; nothing is stored."""

from api import (chat_path, check_chat_stored, count_chats, create_chat, expect, expect_422,
                 expect_jsondecode_422, missing, new_user, none_not_allowed, not_a_dict, str_expected,
                 too_long, too_short)
from harness import add_test, default_stack, encode_json, test

USER = "__USER__"  # replaced by a fresh user id in each case


def nested(depth):
    """A chat body with an ignored field whose value nests containers so that the body's depth is depth
    (the body object counts as 1; the innermost array is empty)."""
    return ('{"user_id": "__USER__", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()


# name, raw body, the 422 entries (None: a JSON decoding error)
POST_CASES = [
    ("missing_user_id", {"title": "t"}, [missing("body", "user_id")]),
    ("null_user_id", {"user_id": None}, [none_not_allowed("body", "user_id")]),
    ("number_user_id", {"user_id": 12}, [str_expected("body", "user_id")]),
    ("float_user_id", {"user_id": 1.5}, [str_expected("body", "user_id")]),
    ("boolean_user_id", {"user_id": True}, [str_expected("body", "user_id")]),
    ("array_user_id", {"user_id": ["a"]}, [str_expected("body", "user_id")]),
    ("object_user_id", {"user_id": {"a": "b"}}, [str_expected("body", "user_id")]),
    ("object_title", {"user_id": USER, "title": {}}, [str_expected("body", "title")]),
    ("number_title", {"user_id": USER, "title": 0}, [str_expected("body", "title")]),
    ("every_problem_listed", {"user_id": None, "title": [1]},
     [none_not_allowed("body", "user_id"), str_expected("body", "title")]),
    ("body_is_array", [], [not_a_dict("body")]),
    ("body_is_string", "x", [not_a_dict("body")]),
    ("body_is_number", 3, [not_a_dict("body")]),
    ("empty_object", {}, [missing("body", "user_id")]),
    ("empty_body", b"", [missing("body")]),
    ("malformed_json", b'{"user_id": "u"', None),
    ("trailing_garbage", b'{"user_id": "u"} x', None),
    ("single_quotes", b"{'user_id': 'u'}", None),
    ("trailing_comma", b'{"user_id": "u",}', None),
    ("raw_control_character", b'{"user_id": "u\x01v"}', None),
    ("raw_newline_in_string", b'{"user_id": "u\nv"}', None),
    ("invalid_utf8", b'{"user_id": "\xff\xfe"}', None),
    ("overlong_utf8", b'{"user_id": "\xc0\xaf"}', None),
    ("utf16_surrogate_in_utf8", b'{"user_id": "\xed\xa0\x80"}', None),
    ("nesting_65_deep", nested(65), None),
]


def body_bytes(body, user):
    raw = body if isinstance(body, bytes) else encode_json(body)
    return raw.replace(USER.encode(), user.encode())


def make_post_case(body, entries):
    def case():
        s = default_stack()
        user = new_user()
        kwargs = {"body": body_bytes(body, user), "headers": {"Content-Type": "application/json"}}
        if entries is None:
            expect_jsondecode_422(s, "POST", "/chats", **kwargs)
        else:
            expect_422(s, "POST", "/chats", entries, **kwargs)
        assert count_chats(s, user) == 0, "a refused body created a chat"
    return case


for _name, _body, _entries in POST_CASES:
    add_test(f"validation.post_{_name}", make_post_case(_body, _entries))


@test
def nesting_64_deep_is_accepted():
    s = default_stack()
    user = new_user()
    _, chat = expect(s, "POST", "/chats", 201, body=body_bytes(nested(64), user),
                     headers={"Content-Type": "application/json"})
    check_chat_stored(s, chat)


@test
def jsondecode_offset_points_into_the_body():
    s = default_stack()
    body = b'{"user_id": "u", "title": tru}'
    entry = expect_jsondecode_422(s, "POST", "/chats", body=body)
    assert 0 <= entry["loc"][1] <= len(body), f"offset outside the body: {entry!r}"


# PATCH bodies: name, body, entries
PATCH_CASES = [
    ("missing_title", {}, [missing("body", "title")]),
    ("null_title", {"title": None}, [none_not_allowed("body", "title")]),
    ("number_title", {"title": 5}, [str_expected("body", "title")]),
    ("empty_title", {"title": ""}, [too_short(1, "body", "title")]),
    ("title_201_chars", {"title": "x" * 201}, [too_long(200, "body", "title")]),
    ("title_201_emoji", {"title": "😀" * 201}, [too_long(200, "body", "title")]),
    ("body_is_array", ["title"], [not_a_dict("body")]),
    ("empty_body", b"", [missing("body")]),
    ("malformed_json", b'{"title": ', None),
]


def make_patch_case(body, entries):
    def case():
        s = default_stack()
        user = new_user()
        chat = create_chat(s, user, "unchanged")
        path = chat_path(chat["id"], user_id=user)
        kwargs = {"body": body_bytes(body, user), "headers": {"Content-Type": "application/json"}}
        if entries is None:
            expect_jsondecode_422(s, "PATCH", path, **kwargs)
        else:
            expect_422(s, "PATCH", path, entries, **kwargs)
        check_chat_stored(s, chat)
    return case


for _name, _body, _entries in PATCH_CASES:
    add_test(f"validation.patch_{_name}", make_patch_case(_body, _entries))
