"""GET /chats/{id}/export (json, markdown), GET /export and POST /import (our export, a ChatGPT
conversations.json): downloads, branches kept, another user's chat a 404, a round trip that gives the
same chats, MAX_IMPORT_BYTES on that route only, malformed files named where (nothing written), and an
export of 100,000 messages streamed in constant memory."""

import http.client
import json
import subprocess
import threading
import time

from api import chat_path, create_chat, expect, expect_422, insert_messages, new_user, qs
from harness import ENGINE, WORKER, Stack, command_line, default_stack, test
from provider import send, shared, tag

EXPORT_KEYS = {"format", "version", "exported_at", "user_id", "chats"}
CHAT_KEYS = {"id", "title", "created_at", "updated_at", "system_prompt", "model", "pinned", "archived", "messages"}
MESSAGE_KEYS = {"id", "parent_id", "role", "content", "created_at", "model", "incomplete", "active"}


def download(s, path, content_type="application/json"):
    resp = s.request("GET", path)
    assert resp.status == 200, resp.describe()
    assert resp.headers.get("content-type", "").startswith(content_type), resp.headers
    disposition = resp.headers.get("content-disposition", "")
    assert disposition.startswith("attachment; filename="), resp.headers
    return resp, disposition


def export_json(s, path):
    resp, _ = download(s, path)
    doc = resp.data()
    assert set(doc) == EXPORT_KEYS and doc["format"] == "ai-chat-fcgi-export" and doc["version"] == 1, doc
    for chat in doc["chats"]:
        assert set(chat) == CHAT_KEYS, chat
        for m in chat["messages"]:
            assert set(m) == MESSAGE_KEYS, m
    return doc


def branched_chat(p, s, user):
    """A chat with a regenerated reply and an edited message (three branches), pinned, with settings."""
    chat = create_chat(s, user, "Branches")
    t = tag()
    status, _, first = send(s, chat["id"], user, f"first {t}")
    assert status == 200, first
    status, _, again = s.json("POST", chat_path(chat["id"], "/regenerate", user_id=user), json={})
    assert status == 200, again
    status, _, edited = s.json("POST", chat_path(chat["id"], f"/messages/{first['user_message_id']}/edit",
                                                 user_id=user), json={"content": f"edited {t}"})
    assert status == 200, edited
    expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200,
           json={"system_prompt": "Be brief.", "model": "smart", "pinned": True})
    return chat, first, again, edited


def normalized(doc):
    """The chats of an export without what an import renews: chat and message ids (messages by their
    place in the chat instead), and the export's own time."""
    out = []
    for chat in doc["chats"]:
        place = {m["id"]: i for i, m in enumerate(chat["messages"])}
        msgs = [dict(m, id=place[m["id"]], parent_id=None if m["parent_id"] is None else place[m["parent_id"]])
                for m in chat["messages"]]
        out.append(dict(chat, id=None, messages=msgs))
    return out


@test
def chat_export_keeps_every_branch_and_the_settings():
    p, s = shared()
    user = new_user("export")
    chat, first, again, edited = branched_chat(p, s, user)
    doc = export_json(s, chat_path(chat["id"], "/export", user_id=user, format="json"))
    assert doc["user_id"] == user and len(doc["chats"]) == 1, doc
    c = doc["chats"][0]
    assert (c["id"], c["title"], c["system_prompt"], c["model"], c["pinned"], c["archived"]) == \
        (chat["id"], "Branches", "Be brief.", "smart", True, False), c
    ids = [m["id"] for m in c["messages"]]
    assert ids == sorted([first["user_message_id"], first["message_id"], again["message_id"],
                          edited["user_message_id"], edited["message_id"]]), c["messages"]
    by_id = {m["id"]: m for m in c["messages"]}
    assert by_id[first["message_id"]]["parent_id"] == first["user_message_id"]
    assert by_id[again["message_id"]]["parent_id"] == first["user_message_id"]
    assert by_id[edited["user_message_id"]]["parent_id"] is None
    assert [m["id"] for m in c["messages"] if m["active"]] == [edited["user_message_id"], edited["message_id"]]
    assert by_id[first["message_id"]]["model"] == "openai/gpt-oss-20b" and \
        by_id[first["user_message_id"]]["model"] is None
    _, disposition = download(s, chat_path(chat["id"], "/export", user_id=user))   # json by default
    assert disposition == f'attachment; filename="chat-{chat["id"]}.json"', disposition


@test
def markdown_export_is_the_active_path():
    p, s = shared()
    user = new_user("export")
    chat, first, again, edited = branched_chat(p, s, user)
    resp, disposition = download(s, chat_path(chat["id"], "/export", user_id=user, format="markdown"),
                                 "text/markdown")
    assert disposition == f'attachment; filename="chat-{chat["id"]}.md"', disposition
    text = resp.body.decode("utf-8")
    assert text.startswith("# Branches\n"), text
    assert "- Model: smart" in text and "  > Be brief." in text, text
    assert text.count("### User") == 1 and text.count("### Assistant (openai/gpt-oss-20b)") == 1, text
    assert edited["reply"] in text and first["reply"] not in text, text


@test
def export_routes_of_another_users_chat_are_404():
    s = default_stack()
    owner, other = new_user("owner"), new_user("other")
    chat = create_chat(s, owner, "mine")
    insert_messages(s, chat["id"], ["private words"])
    for fmt in ("json", "markdown"):
        expect(s, "GET", chat_path(chat["id"], "/export", user_id=other, format=fmt), 404,
               {"detail": f"Chat with id '{chat['id']}' not found"})
    expect(s, "GET", chat_path("not-a-uuid", "/export", user_id=owner), 404,
           {"detail": "Chat with id 'not-a-uuid' not found"})
    doc = export_json(s, "/export" + qs(user_id=other))
    assert doc["chats"] == [], doc
    expect_422(s, "GET", chat_path(chat["id"], "/export", user_id=owner, format="pdf"),
               [{"loc": ["query", "format"], "msg": "value is not a valid enumeration member; permitted: "
                 "'json', 'markdown'", "type": "type_error.enum"}])
    expect_422(s, "GET", "/export" + qs(user_id=owner, format="markdown"),
               [{"loc": ["query", "format"], "msg": "value is not a valid enumeration member; permitted: 'json'",
                 "type": "type_error.enum"}])


@test
def export_import_export_gives_the_same_chats():
    p, s = shared()
    user, other = new_user("trip"), new_user("trip")
    branched_chat(p, s, user)
    plain = create_chat(s, user, None)
    insert_messages(s, plain["id"], ["a \u0000 nul, \"quotes\" and \u00e9\u00e8 \U0001F600", "reply"])
    expect(s, "PATCH", chat_path(plain["id"], user_id=user), 200, json={"archived": True})
    create_chat(s, user, "empty")
    before = export_json(s, "/export" + qs(user_id=user, format="json"))
    assert [c["title"] for c in before["chats"]] == ["Branches", None, "empty"], before
    resp, disposition = download(s, "/export" + qs(user_id=user))
    assert disposition == 'attachment; filename="chats.json"', disposition
    n_chats = s.sql("SELECT count(*) FROM chats")[0][0]
    status, _, got = s.json("POST", "/import" + qs(user_id=other), json=before)
    assert status == 201 and got["imported"] == 3 and len(got["chat_ids"]) == 3, (status, got)
    assert s.sql("SELECT count(*) FROM chats")[0][0] == n_chats + 3
    after = export_json(s, "/export" + qs(user_id=other))
    assert [c["id"] for c in after["chats"]] == got["chat_ids"], (after, got)
    assert normalized(after) == normalized(before), (normalized(after), normalized(before))
    # The imported chats work: listed (the archived one apart), counted, searchable, sendable.
    _, listed = expect(s, "GET", "/chats" + qs(user_id=other), 200)
    assert listed["total"] == 2 and listed["chats"][0]["title"] == "Branches", listed
    assert listed["chats"][0]["message_count"] == 2 and listed["chats"][0]["pinned"] is True
    _, found = expect(s, "GET", "/search" + qs(user_id=other, q="quotes"), 200)
    assert found["total"] == 1, found
    status, _, data = send(s, got["chat_ids"][0], other, "and now?")
    assert status == 200, data
    # A single chat's export imports too.
    one = export_json(s, chat_path(got["chat_ids"][1], "/export", user_id=other))
    status, _, again = s.json("POST", "/import" + qs(user_id=other), json=one)
    assert status == 201 and again["imported"] == 1, again


@test
def chatgpt_conversations_import_the_current_branch():
    s = default_stack()
    user = new_user("gpt")
    conv = {
        "title": "Planning a trip", "create_time": 1700000000.5, "update_time": 1700000100.25,
        "current_node": "n4",
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["sys"]},
            "sys": {"id": "sys", "parent": "root", "children": ["n1"],
                    "message": {"author": {"role": "system"}, "content": {"content_type": "text", "parts": [""]},
                                "create_time": None}},
            "n1": {"id": "n1", "parent": "sys", "children": ["n2", "n3"],
                   "message": {"author": {"role": "user"}, "create_time": 1700000010.0,
                               "content": {"content_type": "text", "parts": ["Where to go in May?"]}}},
            "n2": {"id": "n2", "parent": "n1", "children": [],
                   "message": {"author": {"role": "assistant"}, "create_time": 1700000020.0,
                               "content": {"content_type": "text", "parts": ["An old answer"]}}},
            "n3": {"id": "n3", "parent": "n1", "children": ["n4"],
                   "message": {"author": {"role": "assistant"}, "create_time": 1700000030.0,
                               "metadata": {"model_slug": "gpt-4o"},
                               "content": {"content_type": "text", "parts": ["Lisbon.", "Or Porto."]}}},
            "n4": {"id": "n4", "parent": "n3", "children": [],
                   "message": {"author": {"role": "user"}, "create_time": None,
                               "content": {"content_type": "text", "parts": ["Thanks!"]}}},
        },
    }
    untitled = {"title": None, "create_time": 1600000000, "update_time": None, "current_node": "a",
                "mapping": {"a": {"id": "a", "parent": None, "children": [],
                                  "message": {"author": {"role": "user"}, "create_time": 1600000001,
                                              "content": {"content_type": "text", "parts": ["hi"]}}}}}
    status, _, got = s.json("POST", "/import" + qs(user_id=user), json=[conv, untitled])
    assert status == 201 and got["imported"] == 2, (status, got)
    doc = export_json(s, chat_path(got["chat_ids"][0], "/export", user_id=user))
    c = doc["chats"][0]
    assert (c["title"], c["created_at"], c["updated_at"]) == \
        ("Planning a trip", "2023-11-14T22:13:20.500000Z", "2023-11-14T22:15:00.250000Z"), c
    assert [(m["role"], m["content"], m["created_at"], m["model"]) for m in c["messages"]] == [
        ("user", "Where to go in May?", "2023-11-14T22:13:30.000000Z", None),
        ("assistant", "Lisbon.\n\nOr Porto.", "2023-11-14T22:13:50.000000Z", "gpt-4o"),
        ("user", "Thanks!", "2023-11-14T22:13:20.500000Z", None)], c["messages"]
    assert [m["parent_id"] for m in c["messages"]] == [None] + [m["id"] for m in c["messages"][:2]]
    assert all(m["active"] for m in c["messages"])
    _, chat = expect(s, "GET", chat_path(got["chat_ids"][0], user_id=user), 200)
    assert chat["message_count"] == 3, chat
    _, chat = expect(s, "GET", chat_path(got["chat_ids"][1], user_id=user), 200)
    assert chat["title"] is None and chat["created_at"] == "2020-09-13T12:26:40.000000Z", chat


@test
def malformed_imports_are_422_naming_where_and_write_nothing():
    s = default_stack()
    user = new_user("bad")
    good = {"title": "ok", "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": "2026-01-01T00:00:00Z",
            "messages": [{"id": 1, "parent_id": None, "role": "user", "content": "hi",
                          "created_at": "2026-01-01T00:00:00Z"}]}

    def chat(**changes):
        return dict(good, **changes)

    def msg(**changes):
        return dict(good["messages"][0], **changes)

    cases = [
        ({"chats": [good, chat(created_at="yesterday")]}, "chats[1].created_at", "invalid datetime format"),
        ({"chats": [chat(messages=[msg(role="system")])]}, "chats[0].messages[0].role",
         "value is not a valid enumeration member; permitted: 'user', 'assistant'"),
        ({"chats": [chat(messages=[msg(), msg(id=2, parent_id=7)])]}, "chats[0].messages[1].parent_id",
         "not the id of a message before it in this chat"),
        ({"chats": [chat(messages=[msg(), msg()])]}, "chats[0].messages[1].id",
         "the id of another message of this chat"),
        ({"chats": [chat(title="x" * 201)]}, "chats[0].title", "ensure this value has at most 200 characters"),
        ({"chats": [chat(messages=[msg(content=None)])]}, "chats[0].messages[0].content",
         "none is not an allowed value"),
        ({"chats": [chat(messages="none")]}, "chats[0].messages", "value is not a valid list"),
        ({"chats": [chat(pinned="yes")]}, "chats[0].pinned", "value could not be parsed to a boolean"),
        ([{"title": "t", "mapping": {}, "current_node": "x"}], "[0].mapping.x", "current_node names no node of mapping"),
        ([{"title": "t", "current_node": "a", "mapping": {"a": {"parent": "b"}, "b": {"parent": "a"}}}],
         "[0].mapping", "the parents of current_node run in a circle"),
    ]
    before = s.sql("SELECT count(*) FROM chats")[0][0]
    for body, where, msg_text in cases:
        _, data = expect(s, "POST", "/import" + qs(user_id=user), 422, json=body)
        assert {"loc": ["body", where], "msg": msg_text, "type": "value_error"} in data["detail"], (where, data)
    expect_422(s, "POST", "/import" + qs(user_id=user),
               [{"loc": ["body"], "msg": "neither our export (an object with a \"chats\" list) nor a ChatGPT "
                 "conversations.json (a list of conversations)", "type": "value_error"}], json={"chats": 3})
    assert s.sql("SELECT count(*) FROM chats")[0][0] == before, "a refused import wrote something"
    status, _, got = s.json("POST", "/import" + qs(user_id=user), json={"chats": [good]})
    assert status == 201 and got["imported"] == 1, got


@test
def import_takes_max_import_bytes_on_its_route_only():
    with Stack(env={"MAX_BODY_BYTES": "4096", "MAX_IMPORT_BYTES": "65536"}) as s:
        user = new_user("big")
        big = {"chats": [{"title": "big", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                          "messages": [{"id": i + 1, "parent_id": i or None, "role": ("user", "assistant")[i % 2],
                                        "content": "x" * 900, "created_at": "2026-01-01T00:00:00Z"}
                                       for i in range(40)]}]}
        body = json.dumps(big)
        assert 4096 < len(body) < 65536
        status, _, got = s.json("POST", "/import" + qs(user_id=user), body=body,
                                headers={"Content-Type": "application/json"})
        assert status == 201 and got["imported"] == 1, (status, got)
        _, chat = expect(s, "GET", chat_path(got["chat_ids"][0], user_id=user), 200)
        assert chat["message_count"] == 40, chat
        # Elsewhere the limit stays MAX_BODY_BYTES.
        expect(s, "POST", "/chats", 413, {"detail": "Request body too large: the limit is 4096 bytes"},
               body=json.dumps({"user_id": user, "title": "y" * 5000}), headers={"Content-Type": "application/json"})
        too_big = json.dumps({"chats": [], "pad": "z" * 70000})
        expect(s, "POST", "/import" + qs(user_id=user), 413,
               {"detail": "Request body too large: the limit is 65536 bytes"}, body=too_big,
               headers={"Content-Type": "application/json"})


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@test
def export_of_100000_messages_streams_in_constant_memory():
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as s:
        user = new_user("huge")
        chat = create_chat(s, user, "huge")
        text = "A message of some length, to make the export large enough to matter: " + "lorem ipsum " * 10
        if ENGINE == "postgres":
            content = f"convert_to('{text} ' || i, 'UTF8')"
        else:
            content = f"'{text} ' || i"
        s.sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
              f"INSERT INTO messages (chat_id, role, content, created_at) SELECT ?, "
              f"CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END, {content}, 1700000000000000 + i FROM n",
              (chat["id"],))
        workers = [pid for pid in s.leftover_processes() if "ai-chat-fcgi" in command_line(pid)]
        assert workers, "no worker process"
        baseline = sum(rss_kib(pid) for pid in workers)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        conn.request("GET", chat_path(chat["id"], "/export", user_id=user))
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        total, peak, tail = 0, baseline, b""
        last = time.monotonic()
        while True:
            piece = resp.read(256 * 1024)
            if not piece:
                break
            total += len(piece)
            tail = (tail + piece)[-200:]
            if time.monotonic() - last > 0.05:
                peak = max(peak, sum(rss_kib(pid) for pid in workers))
                last = time.monotonic()
                time.sleep(0.02)   # a slow reader: the worker must wait, not buffer
        conn.close()
        assert total > 15_000_000, f"the export is only {total} bytes"
        assert tail.endswith(b'"active":true}]}]}'), tail
        grown = peak - baseline
        print(f"    export of 100,000 messages: {total / 1e6:.1f} MB; the worker's RSS {baseline / 1024:.1f} MiB "
              f"before, at most {peak / 1024:.1f} MiB during (+{grown / 1024:.1f} MiB)")
        # AddressSanitizer's allocator keeps freed memory in quarantine: there RSS says nothing.
        asan = "libasan" in subprocess.run(["ldd", str(WORKER)], capture_output=True, text=True).stdout
        assert asan or grown < 16 * 1024, f"the worker grew by {grown} KiB while exporting {total} bytes"

        # That export imports back (one transaction); meanwhile another import in this worker
        # process is told to come back (the parsed file takes a few times its size in memory).
        body = s.request("GET", chat_path(chat["id"], "/export", user_id=user), validate=False).body
        result = {}

        def big():
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=300)
            c.request("POST", "/import" + qs(user_id=user), body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            result["big"] = (r.status, json.loads(r.read()))
            c.close()
        t = threading.Thread(target=big)
        t.start()
        small = {"chats": [{"title": "small", "created_at": "2026-01-01T00:00:00Z",
                            "updated_at": "2026-01-01T00:00:00Z", "messages": []}]}
        refused = 0
        while t.is_alive():
            resp = s.request("POST", "/import" + qs(user_id=new_user("small")), json=small)
            if resp.status == 503:
                assert resp.data() == {"detail": "Another import is running in this worker process: try again "
                                       "shortly"} and resp.headers.get("retry-after") == "5", resp.describe()
                refused += 1
            else:
                assert resp.status == 201, resp.describe()
            time.sleep(0.2)
        t.join()
        assert result["big"][0] == 201 and result["big"][1]["imported"] == 1, result
        assert refused > 0, "no import was refused while the big one ran"
        _, copy = expect(s, "GET", chat_path(result["big"][1]["chat_ids"][0], user_id=user), 200)
        assert copy["message_count"] == 100000, copy
        print(f"    and imported back ({refused} small imports told to wait meanwhile)")


@test
def new_routes_act_for_the_tokens_account():
    """AUTH=token: search, export, import and the settings act for the bearer's account; another
    account's chat is a 404 on every one of them, and no token is a 401."""
    from auth_util import account, bearer, token_stack, unauthorized
    _, s = token_stack()
    alice, _, ta = account(s, "alice")
    _, _, tb = account(s, "bob")
    _, chat = expect(s, "POST", "/chats", 201, json={"title": "alice's zanzibar plans"}, headers=bearer(ta))
    cid = chat["id"]
    assert chat["user_id"] == alice["id"], chat
    _, found = expect(s, "GET", "/search?q=zanzibar", 200, headers=bearer(ta))
    assert [r["chat_id"] for r in found["results"]] == [cid], found
    expect(s, "GET", "/search?q=zanzibar", 200, {"results": [], "total": 0}, headers=bearer(tb))
    gone = {"detail": f"Chat with id '{cid}' not found"}
    for fmt in ("json", "markdown"):
        expect(s, "GET", f"/chats/{cid}/export?format={fmt}", 404, gone, headers=bearer(tb))
    expect(s, "PATCH", f"/chats/{cid}", 404, gone, json={"pinned": True, "system_prompt": "x"}, headers=bearer(tb))
    resp = s.request("GET", "/export", headers=bearer(tb))
    assert resp.status == 200 and resp.data()["chats"] == [], resp.describe()
    resp = s.request("GET", "/export", headers=bearer(ta))
    mine = resp.data()
    assert [c["id"] for c in mine["chats"]] == [cid], mine
    _, got = expect(s, "POST", "/import", 201, json=mine, headers=bearer(tb))
    _, copied = expect(s, "GET", f"/chats/{got['chat_ids'][0]}", 200, headers=bearer(tb))
    assert copied["title"] == "alice's zanzibar plans", copied
    expect(s, "GET", f"/chats/{got['chat_ids'][0]}", 404, headers=bearer(ta))
    for method, path in (("GET", "/search?q=x"), ("GET", f"/chats/{cid}/export"), ("GET", "/export"),
                         ("POST", "/import")):
        unauthorized(s, method, path, "Not authenticated")
