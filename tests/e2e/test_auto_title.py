"""Automatic titles (issue 11, AUTO_TITLE): after the first exchange of an untitled chat the fast model
is asked for a title in a request of its own, after the answer has gone (the client never waits); a
failure leaves the chat untitled, a title set meanwhile stays, AUTO_TITLE=0 turns it off."""

import time

from api import chat_path, create_chat, expect, new_user
from harness import Stack, test
from provider import FAST_MODEL, FakeProvider, check_reply, model_env, send, stream_chat, tag

TITLE_PROMPT = "You name conversations."


def title_requests(p, t):
    return [r for r in p.requests() if r["messages"][0]["content"].startswith(TITLE_PROMPT)
            and t in r["messages"][-1]["content"]]


def title_of(s, chat_id, user):
    _, chat = expect(s, "GET", chat_path(chat_id, user_id=user), 200)
    return chat["title"]


def wait_title(s, chat_id, user, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = title_of(s, chat_id, user)
        if got == want:
            return
        assert time.monotonic() < deadline, f"title {got!r}, wanted {want!r}"
        time.sleep(0.05)


def stack(p, **settings):
    return Stack(env=model_env(p, AUTO_TITLE="1", **settings))


@test
def first_exchange_names_the_chat_after_the_answer():
    for loop in ("1", "0"):   # a parked send, and one whose thread makes the call
        with FakeProvider() as p, stack(p, EVENT_LOOP=loop) as s:
            named_after_the_answer(p, s)


def named_after_the_answer(p, s):
    user = new_user("title")
    chat_id = create_chat(s, user)["id"]
    t = tag()
    # the reply at once, the title (with marks the worker takes off) 3 s later
    p.plan(t, [{"reply": "Kyoto in spring: temples first."},
               {"reply": "\"**Kyoto Trip Planning Guide.**\"", "delay": 3}])
    started = time.monotonic()
    status, _, data = send(s, chat_id, user, f"Plan a trip to Kyoto {t}")
    took = time.monotonic() - started
    assert status == 200, data
    check_reply(data, chat_id, "Kyoto in spring: temples first.")
    assert took < 2, f"the client waited {took:.1f} s for the title"
    _, before = expect(s, "GET", chat_path(chat_id, user_id=user), 200)
    assert before["title"] is None
    wait_title(s, chat_id, user, "Kyoto Trip Planning Guide")
    asked, = title_requests(p, t)
    assert asked["model"] == FAST_MODEL and asked["stream"] is False, asked
    assert "3 to 6 words" in asked["messages"][0]["content"]
    assert asked["messages"][1]["content"] == \
        f"User: Plan a trip to Kyoto {t}\n\nAssistant: Kyoto in spring: temples first.", asked
    assert len(asked["messages"]) == 2
    # stored, and the chat's version (its updated_at, its ETag) moved
    assert s.sql("SELECT title FROM chats WHERE id = ?", (chat_id,)) == [("Kyoto Trip Planning Guide",)]
    _, after = expect(s, "GET", chat_path(chat_id, user_id=user), 200)
    assert after["updated_at"] > before["updated_at"], (before, after)
    # later exchanges ask nothing more
    status, _, data = send(s, chat_id, user, f"And Osaka? {t}")
    assert status == 200, data
    time.sleep(0.5)
    assert len(title_requests(p, t)) == 1


@test
def a_streamed_first_exchange_is_named_too_and_long_titles_are_cut():
    with FakeProvider() as p, stack(p) as s:
        user = new_user("title")
        chat_id = create_chat(s, user)["id"]
        t = tag()
        p.plan(t, [{"reply": "Here it is."},
                   {"reply": "Title: one two three four five six seven eight\nsecond line", "delay": 2}])
        started = time.monotonic()
        with stream_chat(s, chat_id, user, f"Stream me {t}") as st:
            events = st.read_all()
        assert time.monotonic() - started < 1.5, events
        assert [e.name for e in events][-1] == "done", events
        wait_title(s, chat_id, user, "one two three four five six")


@test
def a_title_set_meanwhile_stays():
    with FakeProvider() as p, stack(p) as s:
        user = new_user("title")
        chat_id = create_chat(s, user)["id"]
        t = tag()
        p.plan(t, [{"reply": "An answer."}, {"reply": "Model Made Title Here", "delay": 2}])
        status, _, data = send(s, chat_id, user, f"Hello {t}")
        assert status == 200, data
        expect(s, "PATCH", chat_path(chat_id, user_id=user), 200, json={"title": "Mine"})
        deadline = time.monotonic() + 10
        while not title_requests(p, t):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2.5)   # the title's answer came and was not used
        assert title_of(s, chat_id, user) == "Mine"
        # a chat made with a title is never asked about
        titled = create_chat(s, user, "Given")["id"]
        t2 = tag()
        status, _, data = send(s, titled, user, f"Hi {t2}")
        assert status == 200, data
        time.sleep(0.5)
        assert title_requests(p, t2) == [] and title_of(s, titled, user) == "Given"


@test
def a_failed_title_leaves_the_chat_untitled():
    with FakeProvider() as p, stack(p, PROVIDER_RETRIES="0") as s:
        user = new_user("title")
        t = tag()
        for fault in ("500", "malformed"):
            chat_id = create_chat(s, user)["id"]
            tt = f"{t}-{fault}"
            p.plan(tt, [{"reply": "Fine."}, {"fault": fault}])
            status, _, data = send(s, chat_id, user, f"Hello {tt}")
            assert status == 200, data
            deadline = time.monotonic() + 10
            while not title_requests(p, tt):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            assert title_of(s, chat_id, user) is None
        # an answer with no words in it
        chat_id = create_chat(s, user)["id"]
        p.plan(f"{t}-empty", [{"reply": "Fine."}, {"reply": "\"...\""}])
        status, _, data = send(s, chat_id, user, f"Hello {t}-empty")
        assert status == 200, data
        time.sleep(1)
        assert len(title_requests(p, f"{t}-empty")) == 1 and title_of(s, chat_id, user) is None
        # a first exchange that failed asks for no title
        chat_id = create_chat(s, user)["id"]
        status, _, data = send(s, chat_id, user, f"#fault=500 {t}-failed")
        assert status == 503, data
        time.sleep(0.5)
        assert title_requests(p, f"{t}-failed") == []


@test
def auto_title_off():
    with FakeProvider() as p, Stack(env=model_env(p, AUTO_TITLE="0")) as s:
        user = new_user("title")
        chat_id = create_chat(s, user)["id"]
        t = tag()
        status, _, data = send(s, chat_id, user, f"Hello {t}")
        assert status == 200, data
        time.sleep(0.5)
        assert title_requests(p, t) == [] and len(p.requests_for(t)) == 1
        assert title_of(s, chat_id, user) is None


@test
def title_tokens_count_against_the_day():
    with FakeProvider() as p, stack(p, TOKENS_PER_DAY="1000000") as s:
        user = new_user("title")
        chat_id = create_chat(s, user)["id"]
        t = tag()
        p.plan(t, [{"reply": "Fine."}, {"reply": "Counted Title Tokens Here"}])
        status, _, data = send(s, chat_id, user, f"Hello {t}")
        assert status == 200, data
        wait_title(s, chat_id, user, "Counted Title Tokens Here")
        deadline = time.monotonic() + 5
        while True:
            tokens, = s.sql("SELECT tokens FROM user_limits WHERE user_id = ?", (user,))[0]
            if tokens > data["usage"]["total_tokens"]:
                break
            assert time.monotonic() < deadline, (tokens, data["usage"])
            time.sleep(0.05)
