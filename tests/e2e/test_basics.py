"""GET /, GET /health, routing: 404, 405 with Allow, HEAD, percent-encoding in paths."""

from api import (MALFORMED_PATH, METHOD_NOT_ALLOWED, NOT_FOUND, chat_not_found, chat_path, create_chat,
                 expect, new_user, qs)
from harness import default_stack, test


@test
def root():
    expect(default_stack(), "GET", "/", 200,
           {"message": "AI Chat Backend API", "version": "1.0.0", "docs": "/docs"})


@test
def health():
    expect(default_stack(), "GET", "/health", 200, {"status": "healthy"})


@test
def unknown_paths_are_404():
    s = default_stack()
    for method, path in [("GET", "/nope"), ("GET", "/chats/a/b/c"), ("POST", "/nope"),
                         ("DELETE", "/health/x"), ("GET", "/chatsx"), ("GET", "/chats/x/messagesx")]:
        expect(s, method, path, 404, NOT_FOUND)


def allow_set(headers):
    return {m.strip().upper() for m in headers.get("allow", "").split(",") if m.strip()}


@test
def wrong_method_is_405_with_allow():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    routes = [  # path, methods the route answers, a method it must refuse
        ("/", {"GET"}, ["POST", "DELETE"]),
        ("/health", {"GET"}, ["POST", "PUT"]),
        ("/chats" + qs(user_id=user), {"GET", "POST"}, ["DELETE", "PATCH", "PUT"]),
        (chat_path(chat["id"], user_id=user), {"GET", "PATCH", "DELETE"}, ["POST", "PUT"]),
        (chat_path(chat["id"], "/messages", user_id=user), {"GET"}, ["POST", "DELETE", "PATCH"]),
    ]
    for path, methods, refused in routes:
        for method in refused:
            headers, _ = expect(s, method, path, 405, METHOD_NOT_ALLOWED, json={"title": "x"})
            allowed = allow_set(headers)
            assert methods <= allowed <= methods | {"HEAD", "OPTIONS"}, \
                f"{method} {path}: Allow {headers.get('allow')!r}, wanted {sorted(methods)} (+HEAD, OPTIONS)"
    # the 405 changed nothing
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)


@test
def head_answers_like_get_without_body():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    for path in ["/", "/health", "/chats" + qs(user_id=user), chat_path(chat["id"], user_id=user),
                 chat_path(chat["id"], "/messages", user_id=user)]:
        resp = s.request("HEAD", path)
        assert resp.status == 200 and resp.body == b"", f"HEAD {path}: {resp.describe()}"
        assert resp.headers.get("content-type", "").startswith("application/json"), f"HEAD {path}: {resp.describe()}"
    resp = s.request("HEAD", chat_path(chat["id"], user_id=new_user()))
    assert resp.status == 404 and resp.body == b"", f"HEAD of another user's chat: {resp.describe()}"


@test
def bad_percent_encoding_is_400():
    s = default_stack()
    user = new_user()
    wrong = []
    for path in ["/chats/%zz", "/chats/%4", "/chats/abc%", "/chats/%g0/messages", "/%zz"]:
        resp = s.request("GET", path + qs(user_id=user))
        if resp.status != 400 or not resp.headers.get("content-type", "").startswith("application/json") \
                or resp.data() != MALFORMED_PATH:
            wrong.append(f"GET {path}: {resp.describe()}")
    assert not wrong, "\n".join(wrong)


@test
def path_is_percent_decoded():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user, "decoded")
    encoded = "".join(f"%{b:02X}" for b in chat["id"].encode())
    expect(s, "GET", f"/chats/{encoded}{qs(user_id=user)}", 200, chat)
    expect(s, "GET", f"/chats/{encoded}/messages{qs(user_id=user)}", 200, [])


@test
def chat_id_is_escaped_in_404_detail():
    s = default_stack()
    user = new_user()
    for chat_id in ['not-a-uuid', 'quote"back\\slash', "tick'é✓😀", "tab\there", "a b"]:
        expect(s, "GET", chat_path(chat_id, user_id=user), 404, chat_not_found(chat_id))
