"""Conditional GETs: GET /chats/{id} and its message pages carry an ETag (the chat's version), and
If-None-Match with it is a 304 with no body; every write to the chat or its messages changes it."""

from api import chat_path, create_chat, insert_messages, new_user
from harness import default_stack, test
from provider import send, shared, stream_chat, tag


def get(s, path, tag_=None, method="GET"):
    headers = {"If-None-Match": tag_} if tag_ is not None else {}
    return s.request(method, path, headers=headers)


def etag(resp):
    value = resp.headers.get("etag")
    assert value and value.startswith('"') and value.endswith('"'), f"no strong ETag: {resp.describe()}"
    assert resp.headers.get("cache-control") == "private, no-cache", resp.describe()
    return value


def check_304(resp, want_tag):
    assert resp.status == 304, f"wanted a 304: {resp.describe()}"
    assert resp.body == b"", f"a 304 with a body: {resp.body[:200]!r}"
    assert resp.headers.get("etag") == want_tag, resp.describe()
    assert "content-length" not in resp.headers or resp.headers["content-length"] == "0", resp.describe()


def routes(chat_id, user):
    return (chat_path(chat_id, user_id=user), chat_path(chat_id, "/messages", user_id=user, limit=50))


@test
def chat_and_message_pages_answer_304_to_their_tag():
    s = default_stack()
    user = new_user("etag")
    chat = create_chat(s, user, "tagged")
    insert_messages(s, chat["id"], ["one", "two"])
    s.request("PATCH", chat_path(chat["id"], user_id=user), json={"title": "tagged"})   # moves the version
    for path in routes(chat["id"], user):
        first = get(s, path)
        assert first.status == 200, first.describe()
        t = etag(first)
        check_304(get(s, path, t), t)
        check_304(get(s, path, t, method="HEAD"), t)
        check_304(get(s, path, f'"other", W/{t}'), t)     # a list; weak comparison
        check_304(get(s, path, "*"), t)
        again = get(s, path, '"c0"')                        # a tag it does not have: the whole answer
        assert again.status == 200 and again.body == first.body and etag(again) == t, again.describe()
        assert get(s, path, "not a tag").status == 200


@test
def every_write_changes_the_tag():
    _, s = shared()
    user = new_user("etag")
    chat = create_chat(s, user, "versions")
    chat_route, page_route = routes(chat["id"], user)
    seen = {chat_route: [], page_route: []}

    def tags_now(what):
        for path in (chat_route, page_route):
            t = etag(get(s, path))
            assert t not in seen[path], f"{what} did not change the tag of {path}"
            old = seen[path][-1] if seen[path] else None
            if old is not None:   # the old tag gets the new page, not a 304
                r = get(s, path, old)
                assert r.status == 200, f"after {what}, the old tag still got {r.status}"
            seen[path].append(t)

    tags_now("creating the chat")
    s.request("PATCH", chat_route, json={"title": "renamed"})
    tags_now("a rename")
    ms, chat2, user2 = s, chat, user
    status, _, data = send(ms, chat2["id"], user2, f"hello {tag()}")
    assert status == 200, data
    tags_now("a send")
    r = ms.request("POST", chat_path(chat2["id"], "/regenerate", user_id=user2), json={})
    assert r.status == 200, r.describe()
    tags_now("a regenerate")
    r = ms.request("POST", chat_path(chat2["id"], f"/messages/{data['user_message_id']}/edit", user_id=user2),
                   json={"content": "edited"})
    assert r.status == 200, r.describe()
    tags_now("an edit")
    r = ms.request("PUT", chat_path(chat2["id"], "/active", user_id=user2), json={"message_id": data["user_message_id"]})
    assert r.status == 200, r.describe()
    tags_now("switching the active path")


@test
def a_reply_being_written_then_stored_changes_the_tag():
    p, s = shared()
    user = new_user("etag")
    chat_id = create_chat(s, user)["id"]
    _, page_route = routes(chat_id, user)
    with stream_chat(s, chat_id, user, f"#words=6 #chunk_delay=0.3 {tag()}") as st:
        events = st.events()
        next(e for e in events if e.name == "delta")
        during = etag(get(s, page_route))   # the message is stored, the reply still being written
        for _ in events:
            pass
    after = get(s, page_route, during)
    assert after.status == 200 and etag(after) != during, f"the stored reply did not change the tag: {after.describe()}"
    assert len(after.data()) == 2, after.data()


@test
def the_304_reads_no_message():
    # A row put in behind the API's back (the chat's version unmoved): the tag still matches, and the
    # 304 proves the page was not read; without the tag the page shows the row.
    s = default_stack()
    user = new_user("etag")
    chat = create_chat(s, user)
    _, page_route = routes(chat["id"], user)
    t = etag(get(s, page_route))
    s.sql("INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, 'user', 'sneaked in', 1)",
          (chat["id"],))
    check_304(get(s, page_route, t), t)
    # (the page itself is kept too, for the same version: only a write that moves it shows the row)
    s.request("PATCH", chat_path(chat["id"], user_id=user), json={"title": "moved"})
    assert [m["content"] for m in get(s, page_route).data()] == ["sneaked in"]


@test
def another_users_tag_is_a_404():
    s = default_stack()
    user = new_user("etag")
    chat = create_chat(s, user)
    for path in routes(chat["id"], user):
        t = etag(get(s, path))
        stranger = path.replace(f"user_id={user}", f"user_id={new_user('etag')}")
        r = get(s, stranger, t)
        assert r.status == 404 and "etag" not in r.headers, r.describe()
        r = get(s, stranger, "*")
        assert r.status == 404, r.describe()
