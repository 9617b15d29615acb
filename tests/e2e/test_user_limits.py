"""Per-user send limits (issue 11): CHAT_RATE_PER_MINUTE, TOKENS_PER_DAY, CHAT_CONCURRENCY_PER_USER.

Each limit is passed, through the real stack: 429 {"detail"} with Retry-After, nothing stored and the
model not asked; the counts live in the database, so two stacks (two nginx, two workers: as two hosts)
on one database share them.  A generation slot is given back on every path of a send.
"""

import contextlib
import shutil
import signal
import os
import tempfile
import threading
import time
from pathlib import Path

from api import chat_path, create_chat, new_user
from harness import ENGINE, Stack, pg_database, test
from provider import FakeProvider, check_reply, model_env, rows, send, stream_chat, tag
from test_crash import supervisor_and_children

DAY = 86400


@contextlib.contextmanager
def one_database():
    """(database_url, db_file) of a database outlasting the stacks on it, of this run's engine."""
    if ENGINE == "postgres":
        with pg_database("limits") as (_, _, url):
            yield url, None
        return
    keep = Path(tempfile.mkdtemp(prefix="ai-chat-e2e-limits-"))
    try:
        yield f"sqlite:///{keep / 'shared.db'}", keep / "shared.db"
    finally:
        shutil.rmtree(keep, ignore_errors=True)


@contextlib.contextmanager
def two_stacks(provider, **settings):
    """Two stacks (each its nginx and its worker processes) on one database."""
    with one_database() as (url, db_file):
        env = model_env(provider, **settings)
        with Stack(env=env, database_url=url, db_file=db_file) as a, \
                Stack(env=env, database_url=url, db_file=db_file) as b:
            yield a, b


def check_refused(status, headers, data, what):
    assert status == 429, (status, data)
    assert set(data) == {"detail"} and what in data["detail"], data
    ra = headers.get("retry-after")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, headers
    return int(ra)


def slots(s, user):
    return s.sql("SELECT count(*) FROM generation_slots WHERE user_id = ?", (user,))[0][0]


def wait_for(what, cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def regenerate(s, chat_id, user):
    return s.json("POST", chat_path(chat_id, "/regenerate", user_id=user), json={})


@test
def rate_per_minute_is_shared_by_two_hosts():
    with FakeProvider() as p, two_stacks(p, CHAT_RATE_PER_MINUTE="3") as (a, b):
        user, other = new_user("rate"), new_user("rate")
        chat_id = create_chat(a, user)["id"]
        t = tag()
        for s, i in ((a, 0), (b, 1)):
            status, _, data = send(s, chat_id, user, f"{t} {i}")
            assert status == 200, data
        status, _, data = regenerate(b, chat_id, user)   # a regenerate counts too
        assert status == 200, data
        stored = rows(a, chat_id)
        assert len(stored) == 5, stored
        for s in (b, a):
            status, headers, data = send(s, chat_id, user, f"{t} over")
            ra = check_refused(status, headers, data, "at most 3 a minute (CHAT_RATE_PER_MINUTE)")
            assert ra <= 20, ra     # one send's share of the minute
        status, headers, data = regenerate(a, chat_id, user)
        check_refused(status, headers, data, "CHAT_RATE_PER_MINUTE")
        # nothing of the refused sends stored, and the model never asked
        assert rows(a, chat_id) == stored
        assert p.requests_for(f"{t} over") == []
        assert len(p.requests_for(t)) == 3
        # another user is not held back
        other_chat = create_chat(b, other)["id"]
        status, _, data = send(a, other_chat, other, f"{t} other")
        assert status == 200, data


@test
def tokens_per_day_counted_from_the_providers_usage():
    with FakeProvider() as p, two_stacks(p, TOKENS_PER_DAY="40") as (a, b):
        user = new_user("tokens")
        chat_id = create_chat(a, user)["id"]
        t = tag()
        status, _, data = send(a, chat_id, user, f"{t} first #words=30")
        assert status == 200, data
        used = data["usage"]["total_tokens"]
        assert used >= 40, data["usage"]
        day = int(time.time()) // DAY
        assert a.sql("SELECT token_day, tokens FROM user_limits WHERE user_id = ?", (user,)) == [(day, used)]
        stored = rows(a, chat_id)
        for s in (a, b):
            status, headers, data = send(s, chat_id, user, f"{t} second")
            ra = check_refused(status, headers, data, "40 tokens a day (TOKENS_PER_DAY)")
            to_midnight = (day + 1) * DAY - time.time()
            assert abs(ra - to_midnight) < 5, (ra, to_midnight)
        assert rows(a, chat_id) == stored
        assert p.requests_for(f"{t} second") == []
        # a streamed reply's usage counts as well (another user, under the limit at first)
        other = new_user("tokens")
        other_chat = create_chat(b, other)["id"]
        with stream_chat(b, other_chat, other, f"{t} streamed #words=5") as st:
            done = [e for e in st.read_all() if e.name == "done"]
        total = done[0].json()["usage"]["total_tokens"]
        assert a.sql("SELECT tokens FROM user_limits WHERE user_id = ?", (other,)) == [(total,)]
        # yesterday's count does not hold today back
        a.sql("UPDATE user_limits SET token_day = token_day - 1 WHERE user_id = ?", (user,))
        status, _, data = send(b, chat_id, user, f"{t} next day")
        assert status == 200, data
        assert a.sql("SELECT token_day, tokens FROM user_limits WHERE user_id = ?", (user,)) == \
            [(day, data["usage"]["total_tokens"])]


@test
def concurrency_per_user_across_two_hosts():
    with FakeProvider() as p, two_stacks(p, CHAT_CONCURRENCY_PER_USER="2") as (a, b):
        user = new_user("conc")
        chats = [create_chat(a, user)["id"] for _ in range(3)]
        t = tag()
        out = {}

        def slow(s, i):
            out[i] = send(s, chats[i], user, f"{t} slow {i} #delay=3")

        threads = [threading.Thread(target=slow, args=(s, i)) for i, s in ((0, a), (1, b))]
        for th in threads:
            th.start()
        wait_for("both sends at the provider", lambda: len(p.requests_for(f"{t} slow")) == 2)
        assert slots(a, user) == 2
        for s in (a, b):
            status, headers, data = send(s, chats[2], user, f"{t} third")
            ra = check_refused(status, headers, data, "at most 2 generations per user (CHAT_CONCURRENCY_PER_USER)")
            assert ra == 1, ra
        assert rows(a, chats[2]) == [] and p.requests_for(f"{t} third") == []
        # another user has slots of their own
        other = new_user("conc")
        status, _, data = send(b, create_chat(b, other)["id"], other, f"{t} other")
        assert status == 200, data
        for th in threads:
            th.join(20)
        for i in (0, 1):
            assert out[i][0] == 200, out[i]
        assert slots(a, user) == 0
        status, _, data = send(b, chats[2], user, f"{t} third again")
        assert status == 200, data
        check_reply(data, chats[2], f"Echo: {t} third again")


@test
def a_slot_is_given_back_on_every_path():
    """CHAT_CONCURRENCY_PER_USER=1: a slot kept by any path would refuse the next send."""
    with FakeProvider() as p, one_database() as (url, db_file):
        env = model_env(p, CHAT_CONCURRENCY_PER_USER="1", PROVIDER_RETRIES="0")
        with Stack(env=env, database_url=url, db_file=db_file) as s:
            user = new_user("slot")
            chat_id = create_chat(s, user)["id"]
            t = tag()

            def next_send_passes(what):
                assert slots(s, user) == 0, what
                status, _, data = send(s, chat_id, user, f"{t} after {what}")
                assert status == 200, (what, data)

            # the provider failing
            status, _, data = send(s, chat_id, user, f"{t} #fault=500")
            assert status == 503, data
            next_send_passes("a provider failure")
            # the client leaving mid-stream
            with stream_chat(s, chat_id, user, f"{t} leave #words=40 #chunk_delay=0.2") as st:
                for e in st.events():
                    if e.name == "delta":
                        break
            wait_for("the slot of a client that left", lambda: slots(s, user) == 0)
            next_send_passes("a client that left")
            # a chat that is not the user's, an idempotent repeat, a message too long
            status, _, _ = send(s, create_chat(s, new_user("slot"))["id"], user, f"{t} not mine")
            assert status == 404
            next_send_passes("a 404")
            key = {"Idempotency-Key": f"k-{t}"}
            for _ in range(2):
                status, _, data = send(s, chat_id, user, f"{t} keyed", headers=key)
                assert status == 200, data
            next_send_passes("an idempotent repeat")
            status, _, _ = send(s, chat_id, user, "x" * 900000)
            assert status == 413
            next_send_passes("a message too long")
            # a regenerate and an edit
            status, _, data = regenerate(s, chat_id, user)
            assert status == 200, data
            status, _, data = s.json("POST", chat_path(chat_id, f"/messages/{data['user_message_id']}/edit",
                                                       user_id=user), json={"content": f"{t} edited"})
            assert status == 200, data
            next_send_passes("a regenerate and an edit")
            # slots of a worker that died are not counted once their lock has run out
            s.sql("INSERT INTO generation_slots (user_id, until) VALUES (?, ?)", (user, 1))
            status, _, data = send(s, chat_id, user, f"{t} past a dead slot")
            assert status == 200, data
            assert slots(s, user) == 0
            # a send still running when the workers are told to stop finishes, and gives its slot back
            holder = {}
            th = threading.Thread(target=lambda: holder.update(r=send(s, chat_id, user, f"{t} stop #delay=2")))
            th.start()
            wait_for("the send at the provider", lambda: p.requests_for(f"{t} stop"))
            assert slots(s, user) == 1
            _, workers = supervisor_and_children(s)
            for pid in workers:
                os.kill(pid, signal.SIGTERM)
            th.join(20)
            assert holder["r"][0] == 200, holder
        with Stack(env=env, database_url=url, db_file=db_file) as s:
            assert slots(s, user) == 0


@test
def limits_follow_the_token_account_and_go_with_it():
    """AUTH=token: the user is the bearer token's account (a user_id in the body changes nothing); a
    refused POST /chat without chat_id makes no chat; deleting the account deletes its counts."""
    from auth_util import PASSWORD, TOKEN_ENV, account, bearer
    with FakeProvider() as p, Stack(env=model_env(p, CHAT_RATE_PER_MINUTE="2", **TOKEN_ENV)) as s:
        user, _, token = account(s, "limits")
        other, _, other_token = account(s, "limits")
        t = tag()
        for i in range(2):
            status, _, data = s.json("POST", "/chat", json={"message": f"{t} {i}", "user_id": other["id"]},
                                     headers=bearer(token))
            assert status == 200, data
        chats = s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user["id"],))[0][0]
        assert chats == 2
        status, headers, data = s.json("POST", "/chat", json={"message": f"{t} over"}, headers=bearer(token))
        check_refused(status, headers, data, "CHAT_RATE_PER_MINUTE")
        assert s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user["id"],))[0][0] == chats
        assert p.requests_for(f"{t} over") == []
        # the other account's own budget is whole
        status, _, data = s.json("POST", "/chat", json={"message": f"{t} other"}, headers=bearer(other_token))
        assert status == 200, data
        assert s.sql("SELECT count(*) FROM user_limits WHERE user_id = ?", (user["id"],)) == [(1,)]
        resp = s.request("DELETE", "/auth/me", json={"password": PASSWORD}, headers=bearer(token))
        assert resp.status == 204, resp.describe()
        assert s.sql("SELECT count(*) FROM user_limits WHERE user_id = ?", (user["id"],)) == [(0,)]
        assert s.sql("SELECT count(*) FROM user_limits WHERE user_id = ?", (other["id"],)) == [(1,)]


@test
def openai_completions_count_against_the_same_limits():
    # /v1/chat/completions is a send like POST /chat: it takes the user's rate and tokens, and a refusal
    # is OpenAI's 429 rate_limit_exceeded (the SDK's RateLimitError), the model not asked.
    with FakeProvider() as p, two_stacks(p, CHAT_RATE_PER_MINUTE="2") as (a, b):
        user = new_user("v1rate")
        chat_id = create_chat(a, user)["id"]
        t = tag()
        status, _, data = send(a, chat_id, user, f"{t} chat")
        assert status == 200, data
        body = {"model": "fast", "messages": [{"role": "user", "content": f"{t} v1"}]}
        resp = b.request("POST", f"/v1/chat/completions?user_id={user}", json=body)
        assert resp.status == 200, resp.describe()
        resp = a.request("POST", f"/v1/chat/completions?user_id={user}",
                         json={"model": "fast", "messages": [{"role": "user", "content": f"{t} over"}]})
        assert resp.status == 429, resp.describe()
        err = resp.data()["error"]
        assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded", err
        assert resp.headers.get("retry-after", "").isdigit(), resp.headers
        assert not p.requests_for(f"{t} over"), "the model was asked past the limit"
        status, headers, data = send(b, chat_id, user, f"{t} chat again")
        check_refused(status, headers, data, "")
        assert slots(a, user) == 0, "a /v1 completion kept its generation slot"
    with FakeProvider() as p, two_stacks(p, TOKENS_PER_DAY="1") as (a, b):
        user = new_user("v1tokens")
        t = tag()
        body = {"model": "fast", "messages": [{"role": "user", "content": f"{t} first"}]}
        resp = a.request("POST", f"/v1/chat/completions?user_id={user}", json=body)
        assert resp.status == 200, resp.describe()
        used = a.sql("SELECT tokens FROM user_limits WHERE user_id = ?", (user,))
        assert used and used[0][0] >= 1, used
        resp = b.request("POST", f"/v1/chat/completions?user_id={user}",
                         json={"model": "fast", "messages": [{"role": "user", "content": f"{t} second"}]})
        assert resp.status == 429 and resp.data()["error"]["code"] == "rate_limit_exceeded", resp.describe()
