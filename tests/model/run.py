#!/usr/bin/env python3
"""Model-based randomized test of sends, repeats, regenerates, edits and branch switches.

    python3 tests/model/run.py [--seeds N] [--steps N] [--seed S]

Seeded random sequences of operations run against the real stack (nginx, the worker, a real
database, tests/fake_provider.py): sends with and without an Idempotency-Key, idempotent repeats,
regenerates, edits, active-path switches and chat deletes; provider failures before the first byte
and mid-stream, and clients that leave mid-stream; and, one step in four, several clients at once on
the same chats.  The test keeps its own model of every chat's message tree and checks after every
step that

- nothing once answered is lost: a reply a client was given keeps its content and place until its
  chat is deleted, and no shown row ever changes;
- every reply hangs under the user message it answers;
- an idempotency key maps to one user message and at most one complete answer;
- the active path is a path from a root, and message_count counts its shown messages;
- the model's context (what the provider was sent) is the path up to the message answered;
- after a step by one client alone, the whole tree (ids, parents, states, which rows are on the
  active path, contents) and GET .../messages are exactly what the model predicts.

Faults are directives in the message texts (#fault=500 #fail_times=1: the first attempt fails), so
an answer's fate is known from its text and the provider's count of attempts.  A failing seed is
printed with the command that reruns it alone.  Ends with "model: N passed, N failed" (a test per seed).
"""

import argparse
import os
import random
import re
import sys
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from api import chat_path, create_chat, new_user  # noqa: E402
from harness import Stack  # noqa: E402
from provider import SYSTEM_PROMPT, EventStream, FakeProvider, model_env  # noqa: E402

STORED, INCOMPLETE, GENERATING, FAILED = 0, 1, 2, 3
SETTLE_TIMEOUT = 20
FAULTS = {   # a message's kind -> its directives
    "ok": "",
    "fail": "#fault=500 #fail_times=1",
    "midstream": "#fault=midstream #fail_times=1",
    "slow": "#chunk_delay=0.05",
}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def pieces(reply):
    return [p for p in re.findall(r"\S*\s*", reply) if p]


class Node:
    def __init__(self, id, parent, role, state, active, content):
        self.id, self.parent, self.role, self.state, self.active, self.content = \
            id, parent, role, state, bool(active), content

    def row(self):
        return (self.id, self.parent, self.role, self.state, int(self.active), self.content)

    def __repr__(self):
        return f"Node{self.row()}"


class ChatModel:
    """One chat's tree, as the repository's state machine (common/repo.h) says it must be."""

    def __init__(self, chat_id, user):
        self.chat_id, self.user = chat_id, user
        self.nodes = {}

    @staticmethod
    def shown(n):
        return n.state in (STORED, INCOMPLETE)

    def path(self):
        return sorted((n for n in self.nodes.values() if n.active), key=lambda n: n.id)

    def shown_path(self):
        return [n for n in self.path() if self.shown(n)]

    def leaf(self):
        p = self.path()
        return p[-1].id if p else None

    def children(self, id):
        return sorted((n for n in self.nodes.values() if n.parent == id), key=lambda n: n.id)

    def ancestors(self, id):
        out = []
        while id is not None:
            out.append(self.nodes[id])
            id = self.nodes[id].parent
        return out[::-1]

    def context(self, u):
        """What the provider is sent to answer user message u: the shown messages of its path."""
        return [(n.role, n.content) for n in self.ancestors(u) if self.shown(n)]

    def set_path_to(self, leaf):
        for n in self.nodes.values():
            n.active = False
        for n in self.ancestors(leaf):
            n.active = True

    def last_user(self):
        users = [n for n in self.path() if n.role == "user"]
        return users[-1] if users else None

    def active_child(self, u, except_id=None):
        return next((n for n in self.children(u) if n.active and n.id != except_id), None)

    def maybe_show(self, n):
        """A complete alternative is shown if the reply it would replace still ends the active path."""
        if not self.nodes[n.parent].active:
            return
        c = self.active_child(n.parent, n.id)
        if c is not None and self.children(c.id):
            return
        if c is not None:
            c.active = False
        n.active = True

    def newest_leaf_under(self, x):
        under, i = [x], 0
        while i < len(under):
            under += [c.id for c in self.children(under[i])]
            i += 1
        return max(i for i in under if not self.children(i))

    def api_page(self):
        def siblings(n):
            return sorted(s.id for s in self.nodes.values() if s.parent == n.parent and self.shown(s))
        return [{"id": n.id, "parent_id": n.parent, "sibling_ids": siblings(n), "role": n.role,
                 "content": n.content, **({"incomplete": True} if n.state == INCOMPLETE else {})}
                for n in self.shown_path()]


class Run:
    """One seeded sequence against one stack."""

    def __init__(self, stack, provider, seed, steps, log):
        self.s, self.p, self.seed, self.steps, self.log = stack, provider, seed, steps, log
        self.rng = random.Random(seed)
        self.chats = {}            # chat_id -> ChatModel
        self.keys = {}             # key -> {chat, text, user_message_id, reply, answer}
        self.answered = {}         # reply id -> (chat_id, user message id, reply): every answer given
        self.lock = threading.Lock()
        self.tagbase = f"s{seed}x{uuid.uuid4().hex[:6]}"
        self.n = 0

    # -- the database and the provider as they are

    def db_rows(self, chat_id):
        return [tuple(r) for r in self.s.sql(
            "SELECT id, parent_id, role, state, active, content FROM messages WHERE chat_id = ? ORDER BY id",
            (chat_id,))]

    def settle(self):
        """Waits until no reply is being generated (for clients that left, the worker finishes it)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while self.s.sql("SELECT count(*) FROM messages WHERE state = 2")[0][0]:
            check(time.monotonic() < deadline, "a reply stayed generating")
            time.sleep(0.05)

    def attempts(self, text):
        return len(self.p.requests_for(text))

    def adopt_new_rows(self, m, roles):
        """The rows added to chat m since the model last looked: their roles must be roles, in order."""
        new = [r for r in self.db_rows(m.chat_id) if r[0] not in m.nodes]
        check([r[2] for r in new] == roles, f"new rows {new}, the model expects {roles}")
        return [Node(*r) for r in new]

    # -- requests

    def new_text(self, kind):
        with self.lock:
            self.n += 1
            n = self.n
        return f"m{n} {FAULTS[kind]} {self.tagbase}n{n}".replace("  ", " ")

    def post(self, path, body, stream, leave=False, headers=None):
        """POST; returns (status, data): data is the reply object of a 200 (JSON or the stream's done
        event); status "error-event" for a stream that ended in an error, "left" when we left."""
        if not stream:
            status, hdrs, data = self.s.json("POST", path, json=body, headers=headers)
            return status, data, hdrs
        st = EventStream(self.s, path, dict(body, stream=True), headers)
        try:
            if st.status != 200:
                return st.status, st.resp.read(), st.headers
            if leave:
                for e in st.events():
                    if e.name == "delta" and e.json()["content"]:
                        return "left", None, st.headers
                return "left-late", None, st.headers
            events = st.read_all()
        finally:
            st.close()
        if events and events[-1].name == "done":
            return 200, events[-1].json(), st.headers
        return "error-event", None, st.headers

    def predict(self, text, attempt, leave, stream):
        """(status, state, full reply, partial) of attempt number attempt (1-based) to answer text."""
        full = "Echo: " + text
        if "#fault=500" in text and attempt <= 1:
            return "error-event" if stream else 503, FAILED, full, ""
        if "#fault=midstream" in text and attempt <= 1:
            return "error-event", INCOMPLETE, full, "".join(pieces(full)[:2])
        if leave:
            return "left", INCOMPLETE, full, None   # what came before the worker saw us go
        return 200, STORED, full, full

    def expect_reply(self, m, node, status, data, text, attempt, leave, ctx_before, stream):
        """Checks a sequential answer and sets node (the reply row) to what the model expects."""
        want_status, state, full, partial = self.predict(text, attempt, leave, stream)
        check(status == want_status or (leave and status == "left-late"),
              f"{text!r} attempt {attempt}: status {status}, wanted {want_status} ({data!r})")
        (row,) = [r for r in self.db_rows(m.chat_id) if r[0] == node.id]
        if partial is None:   # left: whatever came, a proper prefix (or nothing at all)
            if row[3] == FAILED and row[5] == "":
                state, partial = FAILED, ""
            elif row[3] == STORED:
                state, partial = STORED, full   # the whole reply came before the worker saw us go
            else:
                check(row[3] == INCOMPLETE and row[5] and full.startswith(row[5]),
                      f"a cut-short reply holds {row}: not a prefix of {full!r}")
                partial = row[5]
        node.state, node.content = state, partial
        if status == 200:
            check(data["reply"] == full and data["message_id"] == node.id and data["user_message_id"] == node.parent,
                  f"answer {data!r}: not {full!r} in row {node.id} under {node.parent}")
        sent = self.p.requests_for(text)
        check(len(sent) == attempt, f"{len(sent)} provider requests for {text!r}, wanted {attempt}")
        got = [(x["role"], x["content"]) for x in sent[-1]["messages"]]
        check(got == [("system", SYSTEM_PROMPT)] + ctx_before,
              f"the context for {text!r}:\n  sent {got}\n  path {ctx_before}")

    def remember(self, m, status, data):
        if status == 200 and isinstance(data, dict):
            with self.lock:
                self.answered[data["message_id"]] = (m.chat_id, data["user_message_id"], data["reply"])

    # -- operations: seq (one client alone) predicts and updates the model; otherwise only acts

    def op_send(self, m, seq, keyed=False):
        kind = self.rng.choices(["ok", "fail", "midstream", "slow"], [60, 15, 12, 13])[0]
        leave = kind == "slow" and not keyed
        stream = kind in ("midstream", "slow") or self.rng.random() < 0.2
        text = self.new_text(kind)
        key = f"k-{self.tagbase}-{self.n}" if keyed else None
        body = {"chat_id": m.chat_id, "user_id": m.user, "message": text}
        status, data, _ = self.post("/chat", body, stream, leave, {"Idempotency-Key": key} if key else None)
        self.remember(m, status, data)
        if key:
            with self.lock:
                self.keys[key] = {"chat": m.chat_id, "text": text, "answer": data if status == 200 else None,
                                  "stream": stream}
        if not seq:
            return f"send {text!r} key={key} -> {status}"
        self.settle()
        ctx = m.context(m.leaf()) if m.leaf() is not None else []
        u, r = self.adopt_new_rows(m, ["user", "assistant"])
        m.nodes[u.id] = Node(u.id, m.leaf(), "user", STORED, True, text)
        m.nodes[r.id] = Node(r.id, u.id, "assistant", GENERATING, True, "")
        self.expect_reply(m, m.nodes[r.id], status, data, text, 1, leave, ctx + [("user", text)], stream)
        if key:
            self.keys[key].update(user_message_id=u.id, reply=r.id)
        return f"send {text!r} key={key} -> {status}"

    def op_repeat(self, seq):
        with self.lock:
            usable = [k for k, v in self.keys.items() if v["chat"] in self.chats and "user_message_id" in v]
        if not usable:
            return None
        key = self.rng.choice(usable)
        v = self.keys[key]
        m = self.chats[v["chat"]]
        body = {"chat_id": m.chat_id, "user_id": m.user, "message": v["text"]}
        status, data, headers = self.post("/chat", body, v["stream"], False, {"Idempotency-Key": key})
        self.remember(m, status, data)
        if not seq:
            return f"repeat {key} -> {status}"
        self.settle()
        r = m.nodes[v["reply"]]
        u = m.nodes[v["user_message_id"]]
        if r.state == STORED:
            # answered: by the key's own send, or by a regenerate in the failed send's place
            check(status == 200 and headers.get("idempotent-replayed") == "true" and
                  data["message_id"] == r.id and data["reply"] == r.content and
                  (v["answer"] is None or data == v["answer"]),
                  f"a repeat of an answered key: {status} {headers} {data!r}, first {v['answer']!r}, row {r}")
            v["answer"] = data
            self.adopt_new_rows(m, [])
            return f"repeat {key} (answered) -> replayed"
        ctx = m.context(u.id)
        attempt = self.attempts(v["text"])
        if r.state == FAILED:   # answered in the failed row's place
            self.adopt_new_rows(m, [])
            target = r
        else:                   # after an incomplete one: an alternative
            (n,) = self.adopt_new_rows(m, ["assistant"])
            target = m.nodes[n.id] = Node(n.id, u.id, "assistant", GENERATING, False, "")
            v["reply"] = n.id
        self.expect_reply(m, target, status, data, v["text"], attempt, False, ctx, v["stream"])
        if target is not r and target.state == STORED:
            m.maybe_show(target)
        if status == 200:
            v["answer"] = data
        return f"repeat {key} -> {status}"

    def op_regenerate(self, m, seq):
        u = m.last_user()
        stream = self.rng.random() < 0.3 or (u is not None and "#fault=midstream" in u.content)
        status, data, _ = self.post(chat_path(m.chat_id, "/regenerate", user_id=m.user), {}, stream)
        self.remember(m, status, data)
        if not seq:
            return f"regenerate -> {status}"
        self.settle()
        if u is None:
            check(status == 409, f"regenerate without a user message: {status}")
            return "regenerate (no user message) -> 409"
        ctx = m.context(u.id)
        c = m.active_child(u.id)
        if c is not None and c.state == FAILED:
            self.adopt_new_rows(m, [])
            target = c
        else:
            (n,) = self.adopt_new_rows(m, ["assistant"])
            target = m.nodes[n.id] = Node(n.id, u.id, "assistant", GENERATING, False, "")
        self.expect_reply(m, target, status, data, u.content, self.attempts(u.content), False, ctx, stream)
        if target is not c and target.state == STORED:
            m.maybe_show(target)
        return f"regenerate {u.id} -> {status}"

    def op_edit(self, m, seq):
        users = [n for n in m.nodes.values() if n.role == "user"]
        if not users:
            return None
        x = self.rng.choice(users)
        kind = self.rng.choices(["ok", "fail", "midstream"], [75, 15, 10])[0]
        stream = kind == "midstream" or self.rng.random() < 0.2
        text = self.new_text(kind)
        status, data, _ = self.post(chat_path(m.chat_id, f"/messages/{x.id}/edit", user_id=m.user),
                                    {"content": text}, stream)
        self.remember(m, status, data)
        if not seq:
            return f"edit {x.id} -> {status}"
        self.settle()
        ctx = (m.context(x.parent) if x.parent is not None else []) + [("user", text)]
        e, r = self.adopt_new_rows(m, ["user", "assistant"])
        m.nodes[e.id] = Node(e.id, x.parent, "user", STORED, True, text)
        m.nodes[r.id] = Node(r.id, e.id, "assistant", GENERATING, True, "")
        m.set_path_to(r.id)
        self.expect_reply(m, m.nodes[r.id], status, data, text, 1, False, ctx, stream)
        return f"edit {x.id} -> {status}"

    def op_activate(self, m, seq):
        shown = [n for n in m.nodes.values() if m.shown(n)]
        if not shown:
            return None
        x = self.rng.choice(shown)
        status, _, data = self.s.json("PUT", chat_path(m.chat_id, "/active", user_id=m.user),
                                      json={"message_id": x.id})
        if not seq:
            return f"activate {x.id} -> {status}"
        check(status == 200, f"PUT active {x.id}: {status} {data!r}")
        m.set_path_to(m.newest_leaf_under(x.id))
        check(data["message_count"] == len(m.shown_path()), f"message_count {data['message_count']}")
        return f"activate {x.id}"

    def op_delete(self, m, seq):
        status = self.s.request("DELETE", chat_path(m.chat_id, user_id=m.user)).status
        with self.lock:
            self.chats.pop(m.chat_id, None)
            for rid in [k for k, v in self.answered.items() if v[0] == m.chat_id]:
                del self.answered[rid]
        check(status == 204, f"DELETE: {status}")
        check(self.s.sql("SELECT count(*) FROM messages WHERE chat_id = ?", (m.chat_id,)) == [(0,)],
              "a deleted chat left messages")
        return f"delete {m.chat_id}"

    # -- checks

    def check_chat(self, m, exact):
        rows = self.db_rows(m.chat_id)
        by_id = {r[0]: r for r in rows}
        for n in m.nodes.values():   # nothing known moves, nothing shown changes
            r = by_id.get(n.id)
            check(r is not None, f"row {n} is gone")
            check(r[1] == n.parent and r[2] == n.role, f"row {n} moved: {r}")
            if m.shown(n):
                check(r[3] == n.state and r[5] == n.content, f"shown row {n} changed: {r}")
        if exact:
            want = sorted(n.row() for n in m.nodes.values())
            check(rows == want, "the tree differs from the model:\n    db    " +
                  "\n          ".join(map(str, rows)) + "\n    model " + "\n          ".join(map(str, want)))
            status, _, page = self.s.json("GET", chat_path(m.chat_id, "/messages", user_id=m.user, limit=500))
            check(status == 200, f"GET messages: {status}")
            got = [{k: v for k, v in msg.items() if k not in ("chat_id", "created_at")} for msg in page]
            check(got == m.api_page(), f"GET messages:\n    {got}\n    model {m.api_page()}")
        else:   # what several clients did at once: adopted, once checked above and below
            m.nodes = {r[0]: Node(*r) for r in rows}
        path = m.path()
        check(not path or path[0].parent is None, f"the active path does not start at a root: {path}")
        for a, b in zip(path, path[1:]):
            check(b.parent == a.id, f"the active path is not a path: {a} then {b}")
        for n in m.nodes.values():
            if n.role == "assistant":
                p = m.nodes.get(n.parent)
                check(p is not None and p.role == "user", f"reply {n} does not hang under a user message")
        (count,) = self.s.sql("SELECT message_count FROM chats WHERE id = ?", (m.chat_id,))[0]
        check(count == len(m.shown_path()), f"message_count {count}, the path shows {len(m.shown_path())}")

    def check_all(self, exact):
        for m in list(self.chats.values()):
            self.check_chat(m, exact)
        for rid, (chat_id, parent, reply) in self.answered.items():
            n = self.chats[chat_id].nodes.get(rid)
            check(n is not None and n.state == STORED and n.content == reply and n.parent == parent,
                  f"the answer {reply!r} (reply {rid} to {parent}) is now {n}")
        for key, v in self.keys.items():
            if v["chat"] not in self.chats:
                continue
            got = self.s.sql("SELECT user_message_id, reply_message_id FROM idempotency_keys WHERE key = ?", (key,))
            check(len(got) == 1, f"key {key}: {got}")
            m = self.chats[v["chat"]]
            u, r = m.nodes.get(got[0][0]), m.nodes.get(got[0][1])
            check(u is not None and u.role == "user" and u.content == v["text"], f"key {key} names {u}")
            check(r is not None and r.parent == u.id, f"key {key}'s reply {r} does not answer {u}")
            if "user_message_id" in v:
                check(u.id == v["user_message_id"], f"key {key} moved from {v['user_message_id']} to {u.id}")
            if v["answer"] is not None:   # at most one complete answer, and it stays the key's
                check(r.id == v["answer"]["message_id"], f"key {key} answered {v['answer']!r}, now names {r}")
            if not exact:   # what several clients did at once, adopted
                v.update(user_message_id=u.id, reply=r.id)

    # -- the sequence

    def one_op(self, seq):
        with self.lock:
            if not self.chats or self.rng.random() < 0.05:
                user = new_user("model")
                chat = create_chat(self.s, user)
                self.chats[chat["id"]] = ChatModel(chat["id"], user)
            m = self.rng.choice(list(self.chats.values()))
        kind = self.rng.choices(["send", "keyed", "repeat", "regenerate", "edit", "activate", "delete"],
                                [30, 15, 12, 15, 12, 12, 3 if seq else 0])[0]
        if seq:
            self.log[-1] += f" {kind} in chat {m.chat_id[:8]}"
        if kind == "repeat":
            return self.op_repeat(seq) or self.op_send(m, seq)
        if kind == "regenerate":
            return self.op_regenerate(m, seq)
        if kind == "edit":
            return self.op_edit(m, seq) or self.op_send(m, seq)
        if kind == "activate":
            return self.op_activate(m, seq) or self.op_send(m, seq)
        if kind == "delete" and len(self.chats) > 1:
            return self.op_delete(m, seq)
        return self.op_send(m, seq, keyed=kind == "keyed")

    def run(self):
        for step in range(self.steps):
            if self.chats and self.rng.random() < 0.25:
                ops, errors = [], []

                def worker():
                    try:
                        ops.append(self.one_op(False))
                    except Exception as e:  # noqa: BLE001
                        errors.append(e)
                threads = [threading.Thread(target=worker) for _ in range(self.rng.randint(2, 3))]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                self.log.append(f"step {step}: at once: {ops} {errors or ''}")
                check(not errors, f"an operation of several at once failed: {errors!r}")
                self.settle()
                self.check_all(exact=False)
            else:
                self.log.append(f"step {step}:")
                self.log[-1] = f"step {step}: {self.one_op(True)}"
                self.check_all(exact=True)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=int(os.environ.get("MODEL_SEEDS", "3")))
    ap.add_argument("--steps", type=int, default=int(os.environ.get("MODEL_STEPS", "40")))
    ap.add_argument("--seed", type=int, help="run this seed alone")
    ap.add_argument("--verbose", action="store_true", help="print every step")
    args = ap.parse_args(argv[1:])
    seeds = [args.seed] if args.seed is not None else [1000 + i for i in range(args.seeds)]
    passed = failed = 0
    with FakeProvider() as p:
        env = model_env(p, PROVIDER_RETRIES="0", WORKER_PROCESSES="2", WORKER_THREADS="8")
        with Stack(env=env) as s:
            for seed in seeds:
                log = []
                started = time.monotonic()
                try:
                    Run(s, p, seed, args.steps, log).run()
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    first = str(e).splitlines()[0] if str(e) else ""
                    print(f"FAIL seed {seed}: {type(e).__name__}: {first}", flush=True)
                    print("    " + "\n    ".join(log[-12:]))
                    print("    " + "".join(traceback.format_exception(e)).replace("\n", "\n    "))
                    print(f"    rerun alone: python3 tests/model/run.py --seed {seed} --steps {args.steps}")
                    continue
                passed += 1
                if args.verbose:
                    print("    " + "\n    ".join(log))
                print(f"PASS seed {seed} ({args.steps} steps, {time.monotonic() - started:.1f} s)", flush=True)
    print(f"model: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
