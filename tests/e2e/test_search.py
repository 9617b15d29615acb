"""GET /search: titles and messages of the user's own chats, best match first, words by prefix, quoted
phrases, diacritics removed, snippets with \\u0002/\\u0003 marks; the index kept in the writing
transaction (sends, renames, deletes) and built by the migration for the data from before."""

import sqlite3

from api import chat_path, create_chat, expect, expect_422, insert_messages, missing, new_user, not_ge, not_le, qs
from harness import ENGINE, ROOT, Stack, default_stack, pg_database, test
from provider import send, shared, tag

RESULT_KEYS = {"chat_id", "chat_title", "message_id", "role", "snippet", "created_at"}
OPEN, CLOSE = "\u0002", "\u0003"


def search(s, user, q, status=200, **params):
    _, data = expect(s, "GET", "/search" + qs(user_id=user, q=q, **params), status)
    if status == 200:
        assert set(data) == {"results", "total"}, data
        for r in data["results"]:
            assert set(r) == RESULT_KEYS, r
    return data


def marked(snippet):
    """The words between the marks."""
    out, rest = [], snippet
    while OPEN in rest:
        start = rest.index(OPEN) + 1
        end = rest.index(CLOSE, start)
        out.append(rest[start:end])
        rest = rest[end + 1:]
    return out


@test
def words_match_by_prefix_in_titles_and_messages():
    s = default_stack()
    user = new_user("search")
    t = tag()
    trip = create_chat(s, user, f"Trip to Zürich {t}")
    other = create_chat(s, user, "Groceries")
    ids = insert_messages(s, trip["id"], [f"Where should we eat in Zürich? {t}", "Try the café near the lake."])
    insert_messages(s, other["id"], ["milk, eggs, bread"])
    got = search(s, user, f"zur {t}")
    assert got["total"] == 2, got
    kinds = {(r["message_id"], r["role"]) for r in got["results"]}
    assert kinds == {(None, None), (ids[0], "user")}, got
    for r in got["results"]:
        assert r["chat_id"] == trip["id"] and r["chat_title"] == f"Trip to Zürich {t}", r
        assert [w.lower() for w in marked(r["snippet"])] == ["zürich", t], r["snippet"]
    title_hit = next(r for r in got["results"] if r["message_id"] is None)
    assert title_hit["created_at"] == trip["created_at"], title_hit
    # Diacritics removed both ways; a reply is found with its role.
    got = search(s, user, "cafe lake")
    assert [(r["message_id"], r["role"]) for r in got["results"]] == [(ids[1], "assistant")], got
    assert marked(got["results"][0]["snippet"]) == ["café", "lake"], got
    got = search(s, user, "CAFÉ")
    assert got["total"] == 1, got
    # No word at all finds nothing; a word not there neither.
    assert search(s, user, "?!") == {"results": [], "total": 0}
    assert search(s, user, "nothing-like-this") == {"results": [], "total": 0}


@test
def quoted_phrases_match_as_phrases():
    s = default_stack()
    user = new_user("search")
    chat = create_chat(s, user, "phrases")
    a, b = insert_messages(s, chat["id"], ["the quick brown fox", "brown and quick, the fox"])
    got = search(s, user, '"quick brown"')
    assert [r["message_id"] for r in got["results"]] == [a], got
    got = search(s, user, 'quick brown')
    assert sorted(r["message_id"] for r in got["results"]) == [a, b], got
    got = search(s, user, 'fox "brown and"')
    assert [r["message_id"] for r in got["results"]] == [b], got
    # A phrase is not a prefix; an unclosed quote runs to the end.
    assert search(s, user, '"quic brown"')["total"] == 0
    got = search(s, user, 'the "quick brown')
    assert [r["message_id"] for r in got["results"]] == [a], got


@test
def best_match_first_and_paged():
    s = default_stack()
    user = new_user("search")
    chat = create_chat(s, user, "ranking")
    filler = " ".join(f"word{i}" for i in range(60))
    weak, strong = insert_messages(s, chat["id"], [f"{filler} kiwi {filler}", "kiwi kiwi kiwi"])
    got = search(s, user, "kiwi")
    assert [r["message_id"] for r in got["results"]] == [strong, weak], got
    # A long message's snippet is a part of it around the match.
    long_snippet = got["results"][1]["snippet"]
    assert marked(long_snippet) == ["kiwi"] and len(long_snippet) < len(filler), long_snippet
    more = insert_messages(s, chat["id"], [f"kiwi number {i}" for i in range(5)])
    got = search(s, user, "kiwi", limit=3, offset=0)
    assert got["total"] == 7 and len(got["results"]) == 3, got
    page2 = search(s, user, "kiwi", limit=3, offset=3)
    page3 = search(s, user, "kiwi", limit=3, offset=6)
    seen = [r["message_id"] for r in got["results"] + page2["results"] + page3["results"]]
    assert sorted(seen) == sorted([weak, strong] + more), seen
    assert search(s, user, "kiwi", offset=7) == {"results": [], "total": 7}


@test
def only_the_users_own_chats_are_searched():
    s = default_stack()
    alice, bob = new_user("alice"), new_user("bob")
    t = tag()
    chat = create_chat(s, alice, f"secret {t}")
    insert_messages(s, chat["id"], [f"my secret plan {t}"])
    assert search(s, alice, t)["total"] == 2
    assert search(s, bob, t) == {"results": [], "total": 0}
    assert search(s, bob, f"secret {t}") == {"results": [], "total": 0}
    # What the index keeps to tell users apart is never found itself.
    for q in ("u" + alice.encode().hex()[:8], "u" + alice.encode().hex().upper(), alice):
        assert search(s, alice, q)["total"] == 0, q


@test
def index_follows_sends_renames_and_deletes():
    p, s = shared()
    user = new_user("search")
    chat = create_chat(s, user)
    t = tag()
    status, _, data = send(s, chat["id"], user, f"pineapple {t}")
    assert status == 200, data
    got = search(s, user, t)
    assert {(r["message_id"], r["role"]) for r in got["results"]} == \
        {(data["user_message_id"], "user"), (data["message_id"], "assistant")}, got
    assert all(r["chat_title"] is None for r in got["results"]), got
    # A rename: the old title is gone from the index, the new one is in it.
    expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200, json={"title": f"fruit salad {t}"})
    assert search(s, user, "fruit")["total"] >= 1
    expect(s, "PATCH", chat_path(chat["id"], user_id=user), 200, json={"title": "renamed again"})
    assert search(s, user, "fruit") == {"results": [], "total": 0}
    assert {r["chat_title"] for r in search(s, user, t)["results"]} == {"renamed again"}
    # A delete takes the chat's entries with it.
    status, _, _ = s.request("DELETE", chat_path(chat["id"], user_id=user))
    assert status == 204, status
    assert search(s, user, t) == {"results": [], "total": 0}
    assert search(s, user, "renamed") == {"results": [], "total": 0}
    if ENGINE == "sqlite":
        assert s.sql("SELECT count(*) FROM search_index WHERE chat_id = ?", (chat["id"],))[0][0] == 0
        assert s.sql("SELECT count(*) FROM search_titles WHERE chat_id = ?", (chat["id"],))[0][0] == 0


@test
def search_is_validated():
    s = default_stack()
    user = new_user("search")
    expect_422(s, "GET", "/search" + qs(user_id=user), [missing("query", "q")])
    expect_422(s, "GET", "/search" + qs(q="x"), [missing("query", "user_id")])
    expect_422(s, "GET", "/search" + qs(user_id=user, q="x", limit=0), [not_ge(1, "query", "limit")])
    expect_422(s, "GET", "/search" + qs(user_id=user, q="x", limit=101), [not_le(100, "query", "limit")])
    expect_422(s, "GET", "/search" + qs(user_id=user, q="x", offset=-1), [not_ge(0, "query", "offset")])
    # Query syntax of the engines is only text here.
    for q in ['"', 'a OR b', 'NEAR(a b)', "a:* & !b", "'); DROP TABLE chats; --", "*", "a\\b"]:
        assert search(s, user, q)["total"] == 0, q


@test
def migration_builds_the_index_of_existing_data():
    chat_id = "11111111-1111-4111-8111-111111111111"
    rows = [("user", "an old question about zebras"), ("assistant", "an old answer")]
    if ENGINE == "sqlite":
        stack = Stack(env={"WORKER_PROCESSES": "1"})
        conn = sqlite3.connect(stack.db_path)
        for f in sorted((ROOT / "sql" / "sqlite").glob("00[123]_*.sql")):
            conn.executescript(f.read_text())
        conn.execute("PRAGMA user_version = 3")
        conn.execute("INSERT INTO chats (id, user_id, title, created_at, updated_at) VALUES (?, 'old', 'Zoo trip', 1, 2)",
                     (chat_id,))
        for i, (role, text) in enumerate(rows):
            conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                         (chat_id, role, text, 10 + i))
        conn.commit()
        conn.close()
        with stack:
            check_migrated(stack, chat_id)
        return
    with pg_database("presearch") as (cluster, name, url):
        cluster.psql(name, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for f in sorted((ROOT / "sql" / "postgres").glob("00[123]_*.sql")):
            cluster.psql(name, f.read_text())
        cluster.psql(name, "INSERT INTO schema_migrations (version) VALUES (1), (2), (3)")
        cluster.psql(name, f"INSERT INTO chats (id, user_id, title, created_at, updated_at) VALUES "
                           f"('{chat_id}', 'old', 'Zoo trip', 1, 2)")
        for i, (role, text) in enumerate(rows):
            cluster.psql(name, f"INSERT INTO messages (chat_id, role, content, created_at) VALUES "
                               f"('{chat_id}', '{role}', '{text}', {10 + i})")
        with Stack(env={"WORKER_PROCESSES": "1"}, database_url=url) as stack:
            check_migrated(stack, chat_id)


@test
def postgres_without_unaccent_still_searches():
    """A database user who may not create the unaccent extension: migration 006 goes through with
    'simple' alone, and the search works, diacritics kept (é is not e)."""
    from harness import postgres_only
    postgres_only("PostgreSQL's extensions")
    with pg_database("plain") as (cluster, name, url):
        role = f"plain_{name[-12:]}"
        cluster.psql(name, f'CREATE ROLE "{role}" LOGIN')
        cluster.psql(name, f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{role}"; '
                           f'GRANT ALL ON SCHEMA public TO "{role}"')
        plain_url = url.replace("postgresql://ai@", f"postgresql://{role}@")
        with Stack(env={"WORKER_PROCESSES": "1"}, database_url=plain_url) as stack:
            assert cluster.psql(name, "SELECT count(*) FROM pg_extension WHERE extname = 'unaccent'").strip() == "0"
            user = new_user("plain")
            chat = create_chat(stack, user, "Café plans")
            insert_messages(stack, chat["id"], ["we meet at the café"])
            assert search(stack, user, "café")["total"] == 2
            assert search(stack, user, "cafe")["total"] == 0
            assert search(stack, user, "plan")["total"] == 1


def check_migrated(stack, chat_id):
    got = search(stack, "old", "zebra")
    assert [(r["chat_id"], r["message_id"], r["role"]) for r in got["results"]] == [(chat_id, 1, "user")], got
    got = search(stack, "old", "zoo")
    assert [(r["message_id"], r["chat_title"]) for r in got["results"]] == [(None, "Zoo trip")], got
    _, chat = expect(stack, "GET", chat_path(chat_id, user_id="old"), 200)
    assert (chat["system_prompt"], chat["model"], chat["pinned"], chat["archived"]) == (None, None, False, False)
