"""The fake model provider (tests/fake_provider.py) for the model tests, and the stacks that talk to it.

    with FakeProvider() as p:                       # a provider of its own
        with Stack(env=model_env(p, PROVIDER_RETRIES=0)) as s:
            ...

    p, s = shared()            # one provider and one stack for most tests, started on first use
    p, s = shared("no_retry")  # the same provider, a stack with PROVIDER_RETRIES=0, PROVIDER_TIMEOUT_S=2

The provider answers "Echo: <last user message>"; faults are directives in that message
(#fault=500 #fail_times=1 ...) and it counts attempts per message text, so every test puts a unique tag
in its messages (tag()) and looks at the provider's requests for that tag alone (requests_for()).
Shared stacks and the shared provider are stopped when the test process exits (atexit: the runner has
no teardown hook of its own). Below them: helpers the model tests share (sending, stored rows, failure
checks, and EventStream, a server-sent-events reader that notes when each event arrived).
"""

import atexit
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from api import create_chat, new_user
from harness import ROOT, Response, Stack, check_schema, encode_json

FAKE_PROVIDER = ROOT / "tests" / "fake_provider.py"
API_KEY = "test-key"
MODELS_CONF = ROOT / "conf" / "models.conf"
SYSTEM_PROMPT = "You are a helpful, friendly AI assistant. Answer clearly and concisely."
START_TIMEOUT = 10


class FakeProvider:
    """tests/fake_provider.py on a free port, as a context manager (or start()/stop())."""

    def __init__(self, delay=0):
        self.delay = delay
        self.proc = None
        self.port = None
        self.tmp = None

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="ai-chat-fake-provider-")
        port_file = os.path.join(self.tmp, "port")
        cmd = [sys.executable, str(FAKE_PROVIDER), "--port-file", port_file]
        if self.delay:
            cmd += ["--delay", str(self.delay)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the fake provider exited with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fake provider wrote no port file within {START_TIMEOUT} s")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self):
        return self.url + "/v1"

    def _call(self, method):
        req = urllib.request.Request(self.url + "/_requests", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def requests(self):
        """Every request body the provider received (decoded JSON), oldest first."""
        return self._call("GET")

    def clear(self):
        """Forgets the requests received and the attempts counted."""
        self._call("DELETE")

    def plan(self, match, steps):
        """Scripts the attempts whose last user message contains match: one step each, in order
        (see tests/fake_provider.py: {"fault": ..., "reply": ..., "delay": ...})."""
        body = json.dumps({"match": match, "steps": steps}).encode()
        req = urllib.request.Request(self.url + "/_plan", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def request_ids_for(self, text):
        """The X-Request-Id headers of the requests whose last message contains text (None: absent)."""
        bodies = self.requests()
        with urllib.request.urlopen(self.url + "/_request_ids", timeout=10) as resp:
            ids = json.loads(resp.read())
        return [i for r, i in zip(bodies, ids)
                if r.get("messages") and text in r["messages"][-1].get("content", "")]

    def requests_for(self, text):
        """The requests whose last message contains text (a test's tag)."""
        return [r for r in self.requests() if r.get("messages") and text in r["messages"][-1].get("content", "")]


def model_env(provider=None, **settings):
    """A Stack env for the model: the provider's URL and key, nothing leaking from the caller's
    environment; settings override (None removes one)."""
    env = {
        "GROQ_API_KEY": API_KEY,
        "GROQ_BASE_URL": provider.base_url if provider else None,
        "MODELS_FILE": str(MODELS_CONF),
        "SYSTEM_PROMPT": None,
        "PROVIDER_CONNECT_TIMEOUT_MS": "1000",
        "PROVIDER_TIMEOUT_S": "10",
        "PROVIDER_RETRIES": "1",
        "PROVIDER_MAX_RESPONSE_BYTES": None,
        "SSE_HEARTBEAT_S": "1",
        "WORKER_PROCESSES": "2",
        "WORKER_THREADS": "16",
    }
    env.update(settings)
    return env


def registry_file(text):
    """A temporary model registry (MODELS_FILE) holding text; removed at exit."""
    tmp = tempfile.mkdtemp(prefix="ai-chat-models-")
    atexit.register(shutil.rmtree, tmp, True)
    path = os.path.join(tmp, "models.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


# Shared stacks: name -> settings on top of model_env().
SHARED = {
    "default": {},
    "no_retry": {"PROVIDER_RETRIES": "0", "PROVIDER_TIMEOUT_S": "2"},
}
_provider = None
_stacks = {}


def shared_provider():
    global _provider
    if _provider is None:
        _provider = FakeProvider().start()
    return _provider


def shared(name="default", **settings):
    """(the shared provider, the shared stack of that name), started on first use with the settings
    of SHARED[name] or these (model_env() settings)."""
    provider = shared_provider()
    if name not in _stacks:
        _stacks[name] = Stack(env=model_env(provider, **SHARED.get(name, {}), **settings)).start()
    return provider, _stacks[name]


@atexit.register
def _stop_shared():
    global _provider
    for name, stack in list(_stacks.items()):
        stack.stop()
        if stack.stop_problem:
            print(f"FAIL model-stack-shutdown ({name}): {stack.stop_problem}", flush=True)
    _stacks.clear()
    if _provider is not None:
        _provider.stop()
        _provider = None


def tag():
    """A unique marker for a test's messages."""
    return "t" + uuid.uuid4().hex[:10]


# --------------------------------------------------------------------------------------------------
# Helpers for the model tests

FAILED = "Failed to get AI response: "
FAST_MODEL = "openai/gpt-oss-20b"
REPLY_KEYS = {"reply", "chat_id", "message_id", "user_message_id", "model", "usage"}


def new_chat(stack):
    """(a fresh user, the id of a fresh chat of theirs)."""
    user = new_user("model")
    return user, create_chat(stack, user)["id"]


def send(stack, chat_id, user, message, headers=None, **fields):
    """POST /chat; returns (status, headers, decoded body)."""
    body = {"chat_id": chat_id, "user_id": user, "message": message, **fields}
    return stack.json("POST", "/chat", json=body, headers=headers)


# A message row's state (sql/sqlite/003_tree.sql): stored, incomplete, generating, failed.
STORED, INCOMPLETE, GENERATING, FAILED_ROW = 0, 1, 2, 3


def all_rows(stack, chat_id):
    """Every message row of the chat, oldest first, as dicts (the tree's columns included)."""
    keys = ("id", "role", "content", "model", "prompt_tokens", "completion_tokens", "incomplete",
            "parent_id", "active", "state")
    found = stack.sql("SELECT id, role, content, model, prompt_tokens, completion_tokens, incomplete,"
                      " parent_id, active, state FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,))
    return [dict(zip(keys, r)) for r in found]


def rows(stack, chat_id, path_only=False):
    """The chat's shown messages (not a reply being generated, nor one that failed with nothing),
    oldest first, as dicts of the columns the API reports; path_only: only the active path."""
    keys = ("id", "role", "content", "model", "prompt_tokens", "completion_tokens", "incomplete")
    return [{k: r[k] for k in keys} for r in all_rows(stack, chat_id)
            if r["state"] < GENERATING and (r["active"] or not path_only)]


def roles(stack, chat_id):
    return [r["role"] for r in rows(stack, chat_id)]


def check_reply(data, chat_id, reply, model=FAST_MODEL):
    """A POST /chat answer: exactly its fields, this reply, consistent usage."""
    assert isinstance(data, dict) and set(data) == REPLY_KEYS, f"not a reply object: {data!r}"
    assert data["reply"] == reply, f"reply {data['reply']!r}, wanted {reply!r}"
    assert data["chat_id"] == chat_id and data["model"] == model, f"chat_id/model: {data!r}"
    assert type(data["message_id"]) is int and type(data["user_message_id"]) is int, data
    assert data["message_id"] > data["user_message_id"], f"the reply's id is not after the message's: {data!r}"
    usage = data["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}, usage
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], usage


def check_stored_reply(stack, data):
    """The rows behind a reply: the user's message, then the reply with its model and usage."""
    stored = {r["id"]: r for r in rows(stack, data["chat_id"])}
    user_row, reply_row = stored[data["user_message_id"]], stored[data["message_id"]]
    assert user_row["role"] == "user" and user_row["model"] is None, user_row
    assert reply_row == {"id": data["message_id"], "role": "assistant", "content": data["reply"],
                         "model": data["model"], "prompt_tokens": data["usage"]["prompt_tokens"],
                         "completion_tokens": data["usage"]["completion_tokens"], "incomplete": 0}, \
        f"stored reply {reply_row!r} differs from the answer {data!r}"


def check_failure(status, headers, data, what, key=API_KEY):
    """A 503 provider failure whose detail says what (a fragment), without the API key."""
    assert status == 503, f"status {status}, wanted 503: {data!r}"
    detail = data.get("detail") if isinstance(data, dict) else None
    assert isinstance(detail, str) and detail.startswith(FAILED), f"detail {detail!r}"
    assert what in detail, f"detail {detail!r} does not say {what!r}"
    assert key not in detail, f"the detail shows the API key: {detail!r}"


def check_message_kept(stack, chat_id, message):
    """After a failure: the user's message is stored once, and no reply (its reply row, if any,
    failed with nothing in it: hidden, empty, locked no more)."""
    assert [(r["role"], r["content"]) for r in rows(stack, chat_id)] == [("user", message)], \
        f"stored {rows(stack, chat_id)!r}, wanted only the user's message"
    hidden = [r for r in all_rows(stack, chat_id) if r["state"] >= GENERATING]
    assert all(r["state"] == FAILED_ROW and r["content"] == "" and r["role"] == "assistant" for r in hidden), \
        f"a failed send left {hidden!r}"


class Event:
    def __init__(self, name, data, at):
        self.name, self.data, self.at = name, data, at   # name "comment" for ": ..." lines

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return f"Event({self.name!r}, {self.data!r}, {self.at:.2f}s)"


class EventStream:
    """A streaming POST read incrementally: .status, .headers, then events() as they arrive."""

    def __init__(self, stack, path, body, headers=None, timeout=30):
        self.path = path
        self.raw = bytearray()  # every line read, checked against the OpenAPI document at the end
        self.conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
        self.started = time.monotonic()
        self.conn.request("POST", path, body=encode_json(body),
                          headers={"Content-Type": "application/json", **(headers or {})})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.seen = []

    def events(self):
        """Yields each event (and comment) when its last line arrives; at = seconds since the request."""
        name, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                check_schema("POST", self.path, Response(self.status, self.headers, bytes(self.raw)))
                return
            self.raw += line
            line = line.decode("utf-8").rstrip("\n")
            at = time.monotonic() - self.started
            if line.startswith(":"):
                self.seen.append(Event("comment", line[1:].strip(), at))
                yield self.seen[-1]
            elif line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].removeprefix(" "))
            elif line == "" and (name or data):
                self.seen.append(Event(name or "message", "\n".join(data), at))
                yield self.seen[-1]
                name, data = None, []

    def read_all(self):
        """Every event until the end of the stream (also kept in .seen)."""
        for _ in self.events():
            pass
        return [e for e in self.seen if e.name != "comment"]

    def close(self):
        """Goes away abruptly (both directions shut), like a closed browser tab."""
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.resp.close()
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def stream_chat(stack, chat_id, user, message, headers=None, stream=True, **fields):
    """POST /chat with "stream": stream (left out when None); returns the EventStream."""
    body = {"chat_id": chat_id, "user_id": user, "message": message, **fields}
    if stream is not None:
        body["stream"] = stream
    return EventStream(stack, "/chat", body, headers)


def deltas_text(events):
    return "".join(e.json()["content"] for e in events if e.name == "delta")
