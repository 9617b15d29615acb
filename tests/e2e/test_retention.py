"""Retention (issue 16): RETENTION_DAYS deletes chats not updated for that long, from a periodic task
in the worker (RETENTION_INTERVAL_S, 1 s here), one process at a time under a lease kept in the
database: two stacks (as two hosts, two worker processes each) on one database delete each old chat
once, log the counts, and only one process runs in each interval."""

import re
import time

from api import create_chat, expect, insert_messages, new_user, now_micros, qs
from harness import Stack, test
from provider import FakeProvider, model_env, send, tag
from test_user_limits import one_database, two_stacks

DAY_US = 86400 * 1000000
LINE = re.compile(r"retention: deleted (\d+) chats and (\d+) messages not updated for (\d+) days \((\S+)\)")


def retention_lines(*stacks):
    found = []
    for s in stacks:
        found += LINE.findall(s.log_path.read_text(errors="replace"))
    return found


def wait_for(what, cond, timeout=15):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


@test
def old_chats_are_deleted_once_by_one_process_at_a_time():
    with FakeProvider() as p, two_stacks(p, RETENTION_DAYS="2", RETENTION_INTERVAL_S="1") as (a, b):
        user = new_user("keep")
        t = tag()
        old, fresh = [], []
        for i in range(6):
            chat_id = create_chat(a, user, f"chat {i}")["id"]
            status, _, data = send(a, chat_id, user, f"hello findme{t}x{i}",
                                   headers={"Idempotency-Key": f"k{i}-{tag()}"})
            assert status == 200, data
            insert_messages(a, chat_id, [f"m{j}" for j in range(4)])
            (old if i % 2 == 0 else fresh).append(chat_id)
        now = now_micros()
        day = now // DAY_US
        # limit rows: one with nothing current (pruned), one with today's tokens, one mid-minute
        a.sql("INSERT INTO user_limits (user_id, rate_tat, token_day, tokens) VALUES ('idle', ?, ?, 5)",
              (now - DAY_US, day - 1))
        a.sql("INSERT INTO user_limits (user_id, rate_tat, token_day, tokens) VALUES ('today', 0, ?, 5)", (day,))
        a.sql("INSERT INTO user_limits (user_id, rate_tat, token_day, tokens) VALUES ('busy', ?, 0, 0)",
              (now + 3600 * 1000000,))
        a.sql("INSERT INTO generation_slots (user_id, until) VALUES ('dead', 1), ('alive', ?)", (now + DAY_US,))
        for chat_id in old:          # not updated for three days
            a.sql("UPDATE chats SET updated_at = ? WHERE id = ?", (now - 3 * DAY_US, chat_id))
        a.sql("UPDATE chats SET updated_at = ? WHERE id = ?", (now - 2 * DAY_US + 3600 * 1000000, fresh[0]))
        wait_for("the old chats deleted",
                 lambda: a.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user,))[0][0] == len(fresh))
        left = {r[0] for r in a.sql("SELECT id FROM chats WHERE user_id = ?", (user,))}
        assert left == set(fresh), left
        wait_for("the idle limit row pruned",
                 lambda: a.sql("SELECT count(*) FROM user_limits WHERE user_id = 'idle'") == [(0,)])
        assert sorted(r[0] for r in a.sql("SELECT user_id FROM user_limits WHERE user_id IN "
                                          "('idle', 'today', 'busy')")) == ["busy", "today"]
        assert [r[0] for r in a.sql("SELECT user_id FROM generation_slots WHERE user_id IN ('dead', 'alive')")] \
            == ["alive"]
        for chat_id in old:
            expect(b, "GET", f"/chats/{chat_id}" + qs(user_id=user), 404)
            assert a.sql("SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,)) == [(0,)]
            assert a.sql("SELECT count(*) FROM idempotency_keys WHERE chat_id = ?", (chat_id,)) == [(0,)]
        for chat_id in fresh:
            _, chat = expect(b, "GET", f"/chats/{chat_id}" + qs(user_id=user), 200)
            assert chat["message_count"] == 6, chat
        # nothing of the deleted chats is left in the search index
        for i in range(6):
            _, found = expect(b, "GET", "/search" + qs(user_id=user, q=f"findme{t}x{i}"), 200)
            assert bool(found["total"]) == (i % 2 == 1), (i, found)
        # each old chat deleted once, counted once (6 messages each)
        wait_for("the log lines", lambda: sum(int(c) for c, *_ in retention_lines(a, b)) == len(old))
        lines = retention_lines(a, b)
        assert sum(int(m) for _, m, *_ in lines) == 6 * len(old), lines
        assert all(d == "2" for *_, d, _ in lines), lines
        # one run an interval across the four processes of both hosts, not one each
        before = len(retention_lines(a, b))
        time.sleep(5)
        runs = len(retention_lines(a, b)) - before
        assert 2 <= runs <= 7, f"{runs} runs in 5 s of 1 s intervals over 4 processes"
        print(f"    {runs} retention runs in 5 s over 4 processes of 2 hosts (1 s interval)", flush=True)
        holder = a.sql("SELECT holder FROM ops_leases WHERE name = 'retention'")
        assert len(holder) == 1 and ":" in holder[0][0], holder


@test
def retention_off_keeps_everything():
    with one_database() as (url, db_file):
        with Stack(env={"RETENTION_DAYS": "0", "RETENTION_INTERVAL_S": "1"}, database_url=url, db_file=db_file) as s:
            user = new_user("keep")
            chat_id = create_chat(s, user)["id"]
            s.sql("UPDATE chats SET updated_at = 1 WHERE id = ?", (chat_id,))
            time.sleep(2.5)
            expect(s, "GET", f"/chats/{chat_id}" + qs(user_id=user), 200)
            assert retention_lines(s) == []
            assert s.sql("SELECT count(*) FROM ops_leases") == [(0,)]
