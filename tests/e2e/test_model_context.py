"""What the model is sent: the chat's history, oldest first, trimmed to the newest messages that fit
the model's context; a message that cannot fit is a 413 and is not stored."""

from api import insert_messages
from harness import test
from provider import (SYSTEM_PROMPT, check_reply, new_chat, registry_file, rows, send, shared, tag)

# A model with room for about 1457 tokens of history (2000 - 500 - the system prompt), about 2900
# bytes at the documented one token per two bytes.
TINY = "fast openai/gpt-oss-20b context_window=2000 max_completion_tokens=500\n"
TINY_BUDGET = 2000 - 500 - len(SYSTEM_PROMPT) // 2


def tiny_stack():
    return shared("tiny", MODELS_FILE=registry_file(TINY))


def history(n, t, size=0):
    """n earlier messages, numbered, padded to about size bytes."""
    return [f"message {i} {t} ".ljust(size, "x") for i in range(n)]


def sent_history(p, t):
    """The messages (after the system prompt) of the one request the provider got for tag t."""
    sent = p.requests_for(t + " new")
    assert len(sent) == 1, f"the provider got {len(sent)} requests"
    messages = sent[0]["messages"]
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}, messages[0]
    return messages[1:]


@test
def long_chat_is_sent_in_order():
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    earlier = history(59, t)
    insert_messages(s, chat_id, earlier)
    message = f"the newest {t} new"
    status, _, data = send(s, chat_id, user, message)
    assert status == 200, f"{status} {data!r}"
    check_reply(data, chat_id, "Echo: " + message)
    got = sent_history(p, t)
    want = [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(earlier)]
    want.append({"role": "user", "content": message})
    assert got == want, f"sent {len(got)} messages: {got[:2]!r} ... {got[-2:]!r}"
    assert len(rows(s, chat_id)) == 61


@test
def history_is_trimmed_to_the_newest_that_fit():
    p, s = tiny_stack()
    user, chat_id = new_chat(s)
    t = tag()
    earlier = history(59, t, size=200)   # about 100 tokens each: 59 of them are far over the budget
    insert_messages(s, chat_id, earlier)
    message = f"the newest {t} new"
    status, _, data = send(s, chat_id, user, message)
    assert status == 200, f"{status} {data!r}"
    got = [m["content"] for m in sent_history(p, t)]
    assert got[-1] == message, f"the last message sent is {got[-1]!r}"
    kept = got[:-1]
    assert 0 < len(kept) < len(earlier), f"{len(kept)} of {len(earlier)} earlier messages sent"
    assert kept == earlier[-len(kept):], f"not the newest messages, in order: {kept!r}"
    size = sum(len(c.encode()) for c in got)
    assert size // 2 <= TINY_BUDGET, f"{size} bytes sent: over the budget of {TINY_BUDGET} tokens"
    assert size // 2 > TINY_BUDGET // 2, f"only {len(kept)} messages ({size} bytes) sent: far fewer than fit"


@test
def message_over_the_budget_is_413_and_not_stored():
    p, s = tiny_stack()
    user, chat_id = new_chat(s)
    t = tag()
    insert_messages(s, chat_id, history(2, t))
    status, _, data = send(s, chat_id, user, f"{t} new " + "y" * 4000)
    assert status == 413, f"{status} {data!r}"
    assert set(data) == {"detail"} and data["detail"].startswith("Message too long"), data
    assert data["detail"].startswith("Message too long for model 'fast': about "), data
    assert len(rows(s, chat_id)) == 2, f"the message was stored: {rows(s, chat_id)[-1]!r}"
    assert p.requests_for(t) == [], "the message was sent to the provider"


@test
def history_stops_at_ten_thousand_messages():
    # HISTORY_MAX_MESSAGES in fcgi/chat.c: however small the messages, at most 10,000 of them (the
    # new one included) are sent; these 10,050 tiny ones would all fit the budget.
    p, s = shared()
    user, chat_id = new_chat(s)
    t = tag()
    earlier = [f"m{i}" for i in range(10050)]
    insert_messages(s, chat_id, earlier)
    message = f"the newest {t} new"
    status, _, data = send(s, chat_id, user, message)
    assert status == 200, f"{status} {data!r}"
    got = [m["content"] for m in sent_history(p, t)]
    assert len(got) == 10000, f"sent {len(got)} messages"
    assert got[-1] == message and got[0] == "m51" and got[-2] == "m10049", (got[:2], got[-2:])
