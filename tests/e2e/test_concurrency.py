"""Many clients at once: every request answered, nothing lost or duplicated."""

from concurrent.futures import ThreadPoolExecutor

from api import chat_path, check_chat, check_chat_stored, count_chats, create_chat, db_chat, expect, new_user, qs
from harness import Stack, default_stack, test


def in_parallel(fn, args, threads=50):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, args))


def concurrent_creates(s, n=200, threads=50):
    user = new_user()

    def create(i):
        status, _, chat = s.json("POST", "/chats", json={"user_id": user, "title": f"chat {i}"})
        assert status == 201, f"POST {i}: {status} {chat!r}"
        check_chat(chat, user, f"chat {i}")
        return chat

    chats = in_parallel(create, range(n), threads)
    assert len({c["id"] for c in chats}) == n, "duplicate ids"
    assert count_chats(s, user) == n, f"{count_chats(s, user)} rows, wanted {n}"
    for chat in chats[::20]:
        check_chat_stored(s, chat)
    _, listed = expect(s, "GET", "/chats" + qs(user_id=user, limit=100), 200)
    assert listed["total"] == n


def concurrent_patches(s, n=100, threads=50):
    user = new_user()
    chat = create_chat(s, user, "start")
    titles = [f"title {i}" for i in range(n)]

    def patch(title):
        status, _, patched = s.json("PATCH", chat_path(chat["id"], user_id=user), json={"title": title})
        assert status == 200 and patched["title"] == title, f"PATCH {title}: {status} {patched!r}"
        return patched

    results = {c["title"]: c for c in in_parallel(patch, titles, threads)}
    final = results[db_chat(s, chat["id"])["title"]]  # the last write
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, final)
    check_chat_stored(s, final)
    newest = max(c["updated_at"] for c in results.values())
    assert final["updated_at"] == newest, \
        f"the last write has updated_at {final['updated_at']}, older than another write's {newest}"


def concurrent_mixed_reads(s, threads=50):
    user = new_user()
    chat = create_chat(s, user)
    paths = ["/health", "/", "/chats" + qs(user_id=user), chat_path(chat["id"], user_id=user),
             chat_path(chat["id"], "/messages", user_id=user)] * 40

    def get(path):
        status, _, _ = s.json("GET", path)
        assert status == 200, f"GET {path}: {status}"

    in_parallel(get, paths, threads)


@test
def four_processes_200_creates_from_50_threads():
    with Stack(env={"WORKER_PROCESSES": "4"}) as s:
        concurrent_creates(s)
        concurrent_patches(s)
        concurrent_mixed_reads(s)


@test
def default_stack_under_concurrency():
    s = default_stack()
    concurrent_creates(s, n=100, threads=30)
    concurrent_patches(s, n=50, threads=30)


@test
def single_thread_worker_serves_many_clients():
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "1"}) as s:
        concurrent_creates(s, n=40, threads=10)
