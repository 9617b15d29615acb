#!/usr/bin/env python3
"""Browser test of the chat page (/ui/) in headless Chromium, against the real stack (conf/stack.sh:
nginx and the worker, AUTH=token) talking to tests/fake_provider.py: signing up and in, every action
of the page (new chat, send with the reply streaming in, Stop, Markdown sanitized, edit and branches,
regenerate, model choice, rename, pin, archive, search, export, delete), the keyboard, a phone-sized
viewport, the AUTH=none sign-in, and that no request leaves the host.  Drives the browser as
tests/browser/run.py does (W3C WebDriver over HTTP, Python's standard library only).

    python3 tests/browser/ui.py [--out DIR] [--only NAME ...]      (E2E_DB=postgres: on PostgreSQL)

Screenshots go to --out (default build/test-output/ui).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (tests/browser/run.py: the stack, the browser, the helpers)
from run import ELEMENT_KEY, Failure, WebDriverError, check, element, poll  # noqa: E402

ROOT = base.ROOT
PASSWORD = "correct horse battery"
WAIT = 20


class Provider:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ai-chat-ui-provider-"))
        port_file = self.dir / "port"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_provider.py"), "--port-file",
                                      str(port_file)], start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise Failure("the fake provider did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def requests(self):
        with urllib.request.urlopen(self.url + "/_requests", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        base.kill_group(self.proc)


import urllib.request  # noqa: E402


class UiStack(base.Stack):
    """run.py's stack, with the model at the fake provider, and the mode asked for."""

    def __init__(self, provider, auth="token", database_url=None):
        super().__init__()
        self.provider = provider
        self.auth = auth
        self.database_url = database_url

    def start(self):
        env = {k: v for k, v in os.environ.items() if k not in base.SETTINGS}
        env.update({"PORT": str(self.port), "RUN_DIR": str(self.tmp / "run"), "AUTH": self.auth,
                    "DATABASE_URL": f"sqlite:///{self.tmp}/ui.db", "GROQ_API_KEY": "test-key",
                    "GROQ_BASE_URL": self.provider.url + "/v1", "WORKER_PROCESSES": "1"})
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["/bin/bash", str(base.STACK_SCRIPT)], cwd=self.tmp, env=env,
                                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + base.STACK_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"conf/stack.sh exited with status {self.proc.returncode}\n{self.log_tail()}")
            try:
                if base.http_get(self.url + "/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Failure(f"the stack did not answer within {base.STACK_START_TIMEOUT} s\n{self.log_tail()}")
            time.sleep(0.1)


class Ctx:
    def __init__(self, url, out, browser, provider):
        self.url = url
        self.out = out
        self.b = browser
        self.provider = provider
        self.email = f"ui-{os.getpid()}-{int(time.time())}@example.com"
        self.shots = 0
        self.requests = []       # every request the page made (the DevTools log), for the last test

    def shot(self, name):
        self.shots += 1
        self.b.screenshot(self.out / f"{self.shots:02d}-{name}.png")

    def q(self, css):
        return element(self.b.execute("return document.querySelector(arguments[0]);", css))

    def wait(self, css, timeout=WAIT, what=None):
        found = poll(lambda: self.q(css), timeout)
        check(found, f"{what or css} did not appear within {timeout} s")
        return found

    def js(self, script, *args):
        return self.b.execute(script, *args)

    def click(self, css):
        self.b.click(self.wait(css))

    def type(self, css, text):
        self.b.type(self.wait(css), text)

    def keys(self, *keys):
        """Keys pressed on whatever has the focus (WebDriver actions)."""
        actions = []
        for k in keys:
            actions += [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]
        self.b.cmd("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def collect(self):
        self.requests += base.network_requests(self.b)

    def api(self, method, path, body=None):
        token = self.js("return localStorage.getItem('ac_token');")
        return base.http_json(method, self.url + path, body, {"Authorization": f"Bearer {token}"})

    def messages(self):
        return self.js("return Array.from(document.querySelectorAll('#messages .message')).map(function (m) {"
                       "return {id: m.dataset.id, role: m.dataset.role, text: m.querySelector('.body').textContent,"
                       "html: m.querySelector('.body').innerHTML, streaming: m.classList.contains('streaming'),"
                       "incomplete: !!m.querySelector('.badge.incomplete'),"
                       "branch: (m.querySelector('.branch-at') || {}).textContent || ''}; });")

    def idle(self, timeout=WAIT):
        """Until no reply streams and the page shows the stored messages."""
        ok = poll(lambda: self.js("return document.getElementById('stop').hidden && "
                                  "!document.querySelector('#messages .streaming');"), timeout)
        check(ok, "the reply did not finish")
        time.sleep(0.3)

    def send(self, text):
        self.click("#input")
        self.b.type(self.q("#input"), text)
        self.keys("\ue007")   # Enter sends


# ---- the tests, in order (each builds on the one before) ----

def sign_up_and_log_in(ctx):
    b = ctx.b
    b.get(ctx.url + "/ui/")
    ctx.wait("#login:not([hidden])", what="the sign-in form")
    check(ctx.js("return !document.getElementById('signup-button').hidden;"), "no Sign up button in AUTH=token")
    ctx.type("#email", ctx.email)
    ctx.type("#password", PASSWORD)
    ctx.shot("login")
    ctx.click("#signup-button")
    ctx.wait("#main:not([hidden])", what="the chat page after signing up")
    who = poll(lambda: ctx.js("return document.getElementById('who').textContent;"), 10)
    check(who == ctx.email, f"the page says it is {who!r}")
    # Log out and in again with the keyboard (Enter submits the form).
    ctx.click("#logout")
    ctx.wait("#login:not([hidden])", what="the sign-in form after logging out")
    check(ctx.js("return localStorage.getItem('ac_token');") is None, "the token outlived the logout")
    ctx.js("document.getElementById('email').value = ''; document.getElementById('password').value = '';")
    ctx.type("#email", ctx.email)
    ctx.type("#password", PASSWORD)
    ctx.keys("\ue007")
    ctx.wait("#main:not([hidden])", what="the chat page after logging in")
    ctx.shot("logged-in")


def new_chat_and_streamed_reply(ctx):
    ctx.click("#new-chat")
    ctx.wait("#composer:not([hidden])", what="the composer of a new chat")
    check(ctx.js("return document.activeElement.id;") == "input", "the new chat does not focus the message box")
    ctx.send("Tell me a story #words=40 #chunk_delay=0.08")
    # While it streams: Stop is shown and the reply grows piece by piece.
    seen = set()

    def growing():
        for m in ctx.messages():
            if m["streaming"] and m["text"]:
                seen.add(len(m["text"]))
        return len(seen) >= 3
    check(poll(growing, WAIT, 0.05), f"the reply did not stream in (lengths seen: {sorted(seen)})")
    check(ctx.js("return !document.getElementById('stop').hidden;"), "no Stop button while streaming")
    ctx.shot("streaming")
    ctx.idle()
    msgs = ctx.messages()
    check([m["role"] for m in msgs] == ["user", "assistant"], f"messages shown: {msgs}")
    check(msgs[1]["text"].strip() == " ".join(f"w{i}" for i in range(40)), f"the reply is {msgs[1]['text'][:80]!r}")
    check(all(m["id"] != "0" for m in msgs), "the stored messages did not replace the pending ones")
    ctx.shot("replied")


def stop_keeps_an_incomplete_reply(ctx):
    ctx.send("A long one #words=400 #chunk_delay=0.05")
    check(poll(lambda: any(m["streaming"] and len(m["text"]) > 20 for m in ctx.messages()), WAIT, 0.05),
          "the long reply did not start streaming")
    ctx.click("#stop")
    ctx.idle()
    msgs = poll(lambda: (lambda ms: ms if ms and ms[-1]["incomplete"] else None)(ctx.messages()), 10)
    if not msgs:   # stored a moment after the page looked: open the chat again
        ctx.js("document.querySelector('#chat-list button[aria-current=\"true\"]').click();")
        msgs = poll(lambda: (lambda ms: ms if ms and ms[-1]["incomplete"] else None)(ctx.messages()), 10)
    check(msgs, f"the stopped reply is not shown as incomplete: {ctx.messages()[-2:]}")
    words = len(msgs[-1]["text"].split())
    check(2 < words < 400, f"the stopped reply has {words} words")
    ctx.shot("stopped")
    # Esc stops too.
    ctx.send("Another long one #words=400 #chunk_delay=0.05")
    check(poll(lambda: any(m["streaming"] and m["text"] for m in ctx.messages()), WAIT, 0.05), "no stream to stop")
    ctx.keys("\ue00c")
    ctx.idle()


def markdown_is_rendered_and_sanitized(ctx):
    ctx.send('**bold** and `code` <script>window.pwned=1</script> <img src=x onerror="window.pwned=2"> '
             '[a link](javascript:window.pwned=3)')
    ctx.idle()
    reply = ctx.messages()[-1]
    check(reply["role"] == "assistant", f"the last message is {reply}")
    html = reply["html"]
    check("<strong>bold</strong>" in html and "<code>code</code>" in html, f"Markdown not rendered: {html}")
    check("<script" not in html and "<img" not in html, f"raw HTML reached the page: {html}")
    check(ctx.js("return document.querySelectorAll('#messages [onerror], #messages [href^=\"javascript\"]').length;")
          == 0, f"an event handler or a javascript: link reached the page: {html}")
    check("<script>window.pwned=1</script>" in reply["text"] and 'onerror="window.pwned=2"' in reply["text"],
          f"the HTML is not shown as text: {reply['text']!r}")
    check(ctx.js("return window.pwned === undefined;"), "the reply's script ran")
    check(ctx.js("return document.querySelectorAll('#messages script, #messages img').length;") == 0,
          "a script or image element in the messages")
    ctx.shot("sanitized")


def edit_and_flip_branches(ctx):
    first = ctx.messages()[0]
    ctx.b.click(element(ctx.js("return document.querySelector('#messages .message.user .edit');")))
    area = ctx.wait("#messages .edit-input", what="the edit box")
    ctx.js("arguments[0].value = '';", {ELEMENT_KEY: area})
    ctx.b.type(area, "An edited first message")
    ctx.keys("\ue007")
    ctx.idle()
    msgs = ctx.messages()
    check([m["text"].strip() for m in msgs][:2] == ["An edited first message", "Echo: An edited first message"],
          f"after the edit: {[m['text'][:40] for m in msgs]}")
    check(msgs[0]["branch"] == "2/2", f"the edited message shows {msgs[0]['branch']!r}, not 2/2")
    ctx.shot("edited")
    ctx.b.click(element(ctx.js("return document.querySelector('#messages .message.user .prev');")))
    check(poll(lambda: (ctx.messages() or [{}])[0].get("branch") == "1/2", 10), "‹ did not flip to the first branch")
    msgs = ctx.messages()
    check(msgs[0]["text"] == first["text"] and len(msgs) >= 4, f"the first branch: {[m['text'][:30] for m in msgs]}")
    ctx.shot("branch-1")
    ctx.b.click(element(ctx.js("return document.querySelector('#messages .message.user .next');")))
    check(poll(lambda: (ctx.messages() or [{}])[0].get("branch") == "2/2", 10), "› did not flip back")


def regenerate_adds_an_alternative(ctx):
    ctx.click("#messages .message.assistant:last-child .regenerate")
    ctx.idle()
    last = ctx.messages()[-1]
    check(last["role"] == "assistant" and last["branch"] == "2/2", f"after regenerate: {last}")
    ctx.shot("regenerated")


def model_choice_is_the_chats(ctx):
    ctx.js("var s = document.getElementById('model'); s.value = 'smart';"
           "s.dispatchEvent(new Event('change'));")
    chat_id = ctx.js("return document.querySelector('#chat-list button[aria-current=\"true\"]').dataset.chat;")
    check(poll(lambda: ctx.api("GET", f"/chats/{chat_id}")[1].get("model") == "smart", 10),
          "choosing a model did not set the chat's")
    ctx.send("Which model now? #words=3")
    ctx.idle()
    sent = [r for r in ctx.provider.requests() if "Which model now?" in r["messages"][-1]["content"]]
    check(sent and sent[-1]["model"] == "openai/gpt-oss-120b" and sent[-1].get("reasoning_effort") == "high",
          f"the provider got {sent[-1:] if sent else 'nothing'}")


def first_listed(ctx):
    return ctx.js("var b = document.querySelector('#chat-list li button'); return b ? b.textContent : '';")


def rename_pin_archive(ctx):
    ctx.click("#rename")
    ctx.js("document.getElementById('rename-input').value = '';")
    ctx.type("#rename-input", "Story time")
    ctx.keys("\ue007")
    check(poll(lambda: ctx.js("return document.getElementById('chat-title').textContent;") == "Story time", 10),
          "the title did not change")
    check(poll(lambda: ctx.js("return Array.from(document.querySelectorAll('#chat-list button'))"
                              ".some(function (b) { return b.textContent === 'Story time'; });"), 10),
          "the list does not show the new title")
    # A second chat, then pin the first: it is listed first.
    ctx.click("#new-chat")
    ctx.wait("#composer:not([hidden])")
    ctx.send("Second chat about zebras #words=3")
    ctx.idle()
    first = ctx.js("return Array.from(document.querySelectorAll('#chat-list button'))"
                   ".filter(function (b) { return b.textContent === 'Story time'; })[0];")
    ctx.b.click(element(first))
    check(poll(lambda: ctx.js("return document.getElementById('chat-title').textContent;") == "Story time", 10),
          "the first chat did not open")
    ctx.click("#pin")
    check(poll(lambda: first_listed(ctx) == "📌 Story time",
               10), "the pinned chat is not listed first")
    ctx.shot("pinned")
    ctx.click("#archive")
    check(poll(lambda: not ctx.js("return Array.from(document.querySelectorAll('#chat-list button'))"
                                  ".some(function (b) { return b.textContent.indexOf('Story time') >= 0; });"), 10),
          "the archived chat is still listed")
    ctx.click("#show-archived")
    check(poll(lambda: first_listed(ctx) == "📌 Story time", 10),
          "the Archived tab does not list it")
    ctx.shot("archived")
    ctx.click("#archive")   # unarchive
    ctx.click("#show-active")
    check(poll(lambda: first_listed(ctx) == "📌 Story time",
               10), "the unarchived chat is not back")


def search_finds_and_opens(ctx):
    ctx.b.click(ctx.q("#messages"))
    ctx.keys("/")   # focuses the search box
    check(ctx.js("return document.activeElement.id;") == "search", "/ does not focus the search box")
    ctx.keys(*"zebra")
    check(poll(lambda: ctx.js("return !document.getElementById('search-results').hidden && "
                              "document.querySelectorAll('#search-results mark').length > 0;"), 10),
          "no search result with a marked word")
    marks = ctx.js("return Array.from(document.querySelectorAll('#search-results mark'))"
                   ".map(function (m) { return m.textContent.toLowerCase(); });")
    check(all(m.startswith("zebra") for m in marks), f"marked: {marks}")
    ctx.shot("search")
    ctx.click("#search-results li button[data-message]:not([data-message=''])")
    check(poll(lambda: ctx.q("#messages .message.highlight"), 10), "the result's message is not shown")
    check("zebra" in ctx.js("return document.querySelector('#messages .message.highlight').textContent;").lower(),
          "the highlighted message is not the match")
    ctx.js("var s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));")


def export_downloads(ctx):
    chat_id = ctx.js("return document.querySelector('#chat-list button[aria-current=\"true\"]').dataset.chat;")
    for button, ext in (("#export-md", "md"), ("#export-json", "json")):
        ctx.click(button)
        got = poll(lambda: ctx.js("var a = document.getElementById('last-export');"
                                  "return a && a.download.endsWith(arguments[0]) ? "
                                  "{name: a.download, size: +a.dataset.size, href: a.href} : null;", "." + ext), 10)
        check(got and got["name"] == f"chat-{chat_id}.{ext}" and got["size"] > 50, f"the {ext} export: {got}")
        check(got["href"].startswith("blob:"), f"the download is not made in the page: {got['href']}")


def long_chat_pages_back(ctx):
    """A chat of 450 messages (imported): the newest 200 first, earlier ones on request, and a search
    result among the oldest brought into view."""
    msgs = [{"id": i + 1, "parent_id": i or None, "role": ("user", "assistant")[i % 2],
             "content": f"message number {i + 1}" + (" about a quokka" if i == 4 else ""),
             "created_at": "2026-01-01T00:00:00Z"} for i in range(450)]
    status, got = ctx.api("POST", "/import", {"chats": [{"title": "Long one", "created_at": "2026-01-01T00:00:00Z",
                                                         "updated_at": "2099-01-01T00:00:00Z", "messages": msgs}]})
    check(status == 201, f"the import: {status} {got}")
    ctx.click("#show-active")
    button = poll(lambda: ctx.js("return Array.from(document.querySelectorAll('#chat-list button'))"
                                 ".filter(function (b) { return b.textContent === 'Long one'; })[0];"), 10)
    check(element(button), "the imported chat is not listed")
    ctx.b.click(element(button))
    check(poll(lambda: len(ctx.messages()) == 200, 10), f"{len(ctx.messages())} messages shown, not the newest 200")
    check(ctx.messages()[-1]["text"].strip() == "message number 450", "the newest message is not last")
    for shown in (400, 450):
        ctx.click("#earlier")
        check(poll(lambda: len(ctx.messages()) == shown, 10), f"{len(ctx.messages())} shown, not {shown}")
    check(not ctx.q("#earlier"), "Load earlier is still offered at the first message")
    check(ctx.messages()[0]["text"].strip() == "message number 1", "the first message is not first")
    ctx.shot("long-chat")
    # A search result far back: the page reads back to it.
    ctx.click("#chat-list button")   # another chat first
    ctx.js("var s = document.getElementById('search'); s.value = 'quokka'; s.dispatchEvent(new Event('input'));")
    check(poll(lambda: ctx.js("return !document.getElementById('search-results').hidden && Array.from("
                              "document.querySelectorAll('#search-results mark')).some(function (m) {"
                              "return m.textContent === 'quokka'; });"), 10), "no search result for quokka")
    ctx.click("#search-results:not([hidden]) li button[data-message]:not([data-message=''])")
    check(poll(lambda: ctx.q("#messages .message.highlight"), 10), "the old result's message is not shown")
    check("quokka" in ctx.js("return document.querySelector('#messages .message.highlight').textContent;"),
          "the highlighted message is not the match")
    ctx.js("var s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));")


def delete_after_confirming(ctx):
    title = ctx.js("return document.getElementById('chat-title').textContent;")
    ctx.click("#delete")
    check(ctx.js("return document.getElementById('delete').textContent;") == "Confirm delete", "no confirmation step")
    ctx.click("#delete")
    check(poll(lambda: ctx.js("return document.getElementById('composer').hidden;"), 10), "the chat did not close")
    check(not ctx.js("return Array.from(document.querySelectorAll('#chat-list button'))"
                     ".some(function (b) { return b.textContent.indexOf(arguments[0]) >= 0; });", title),
          f"{title!r} is still listed")
    ctx.shot("deleted")


def keyboard_only(ctx):
    """New chat, a message and its reply, with keys alone (Tab to the button, Enter, type, Enter)."""
    ctx.js("document.getElementById('search').focus();")
    order = []
    for _ in range(12):
        ctx.keys("\ue004")   # Tab
        order.append(ctx.js("return document.activeElement.id || document.activeElement.textContent;"))
        if order[-1] == "new-chat":
            break
    if "new-chat" not in order:   # Tab went on into the list: Shift+Tab back to the top
        ctx.js("document.getElementById('new-chat').focus();")
    ctx.keys("\ue007")
    check(poll(lambda: ctx.js("return document.activeElement.id;") == "input", 10), "Enter on New chat did not open one")
    ctx.keys(*"typed with keys alone")
    ctx.keys("\ue007")
    ctx.idle()
    msgs = ctx.messages()
    check([m["text"].strip() for m in msgs] == ["typed with keys alone", "Echo: typed with keys alone"], f"{msgs}")
    focusable = ctx.js("return Array.from(document.querySelectorAll('#main button, #main input, #main select, "
                       "#main textarea')).filter(function (e) { return e.offsetParent !== null && e.tabIndex < 0; })"
                       ".map(function (e) { return e.id || e.textContent; });")
    check(not focusable, f"controls out of the Tab order: {focusable}")


def phone_viewport(ctx):
    b = ctx.b
    b.cmd("POST", "/window/rect", {"width": 390, "height": 844})
    b.get(ctx.url + "/ui/")
    ctx.wait("#main:not([hidden])")
    time.sleep(0.5)
    wide = ctx.js("return [document.documentElement.scrollWidth, window.innerWidth];")
    check(wide[0] <= wide[1] + 1, f"the page is wider than the phone: {wide}")
    check(ctx.js("return document.getElementById('sidebar').offsetWidth > 0;"), "the chat list is not shown")
    ctx.shot("phone-list")
    if not ctx.q("#chat-list li button"):   # run alone: a chat to open
        ctx.click("#new-chat")
        ctx.wait("#composer:not([hidden])")
        ctx.send("a chat on a phone")
        ctx.idle()
        ctx.click("#back")
    ctx.click("#chat-list li button")
    ctx.wait("#composer:not([hidden])")
    time.sleep(0.5)
    state = ctx.js("var r = document.getElementById('input').getBoundingClientRect();"
                   "return {sidebar: document.getElementById('sidebar').offsetWidth, back: "
                   "document.getElementById('back').offsetWidth, inputBottom: r.bottom, height: window.innerHeight,"
                   "width: document.documentElement.scrollWidth, font: parseFloat(getComputedStyle("
                   "document.querySelector('#messages .message .body')).fontSize)};")
    check(state["sidebar"] == 0 and state["back"] > 0, f"on a phone the chat should replace the list: {state}")
    check(state["inputBottom"] <= state["height"] + 1 and state["width"] <= 391, f"the composer is off screen: {state}")
    check(state["font"] >= 14, f"the text is too small to read: {state}")
    ctx.shot("phone-chat")
    ctx.click("#back")
    check(poll(lambda: ctx.js("return document.getElementById('sidebar').offsetWidth > 0;"), 5), "Back does not show the list")
    b.cmd("POST", "/window/rect", {"width": 1400, "height": 2000})


def no_request_leaves_the_host(ctx):
    ctx.collect()
    origin = ctx.url
    urls = [u for u, _, _ in ctx.requests]
    check(any(u.endswith("/ui/app.js") for u in urls) and any("/chat" in u for u in urls),
          f"the DevTools log saw only {len(urls)} requests (is it working?)")
    away = sorted({u for u in urls if base.leaves_origin(u, origin)})
    check(not away, f"requests to other hosts: {away[:10]}")
    print(f"    {len(urls)} requests, every one to {origin}", flush=True)


def no_accounts_asks_for_a_user_id(ctx):
    """AUTH=none: the page asks for a user id, and its chats are that user's."""
    provider = ctx.provider
    stack = UiStack(provider, auth="none").start()
    try:
        b = ctx.b
        b.execute("localStorage.clear();")
        b.get(stack.url + "/ui/")
        ctx.wait("#login-none:not([hidden])", what="the user id field")
        ctx.type("#user-id", "ui-none-user")
        ctx.keys("\ue007")
        ctx.wait("#main:not([hidden])")
        ctx.click("#new-chat")
        ctx.wait("#composer:not([hidden])")
        ctx.send("hello without accounts")
        ctx.idle()
        status, listed = base.http_json("GET", stack.url + "/chats?user_id=ui-none-user")
        check(status == 200 and listed["total"] == 1, f"the chat is not the named user's: {status} {listed}")
        ctx.shot("auth-none")
        ctx.requests += [r for r in base.network_requests(b) if not base.leaves_origin(r[0], stack.url)]
    finally:
        stack.stop()


TESTS = [sign_up_and_log_in, new_chat_and_streamed_reply, stop_keeps_an_incomplete_reply,
         markdown_is_rendered_and_sanitized, edit_and_flip_branches, regenerate_adds_an_alternative,
         model_choice_is_the_chats, rename_pin_archive, search_finds_and_opens, export_downloads,
         long_chat_pages_back, delete_after_confirming, keyboard_only, phone_viewport, no_request_leaves_the_host,
         no_accounts_asks_for_a_user_id]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "test-output" / "ui"))
    parser.add_argument("--only", action="append")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):   # this run's screenshots only
        old.unlink()
    passed = failed = 0
    provider = stack = browser = cluster = None
    try:
        provider = Provider()
        url = None
        if os.environ.get("E2E_DB") == "postgres":
            sys.path.insert(0, str(ROOT / "tests"))
            import pgcluster
            cluster = pgcluster.Cluster().start()
            url = cluster.create_database()
            print(f"    on PostgreSQL ({url})", flush=True)
        stack = UiStack(provider, database_url=url).start()
        # As tests/browser/run.py does: a first chromium on a busy machine may outlast a session's
        # timeout; a second try with a new chromedriver.
        for attempt in (1, 2):
            browser = base.Browser()
            try:
                browser.start(session_timeout=45 * attempt)
                break
            except (Failure, WebDriverError, OSError) as e:
                tail = browser.log_tail()
                browser.stop()
                browser = None
                print(f"    the browser did not start ({e}); chromedriver said: {tail}", flush=True)
                if attempt == 2:
                    raise
        ctx = Ctx(stack.url, out, browser, provider)
        for t in TESTS:
            if args.only and t.__name__ not in args.only and t is not sign_up_and_log_in:
                continue
            t0 = time.monotonic()
            try:
                t(ctx)
                ctx.collect()
            except (Failure, WebDriverError, OSError) as e:
                failed += 1
                print(f"FAIL {t.__name__}: {e}", flush=True)
                try:
                    ctx.shot("FAIL-" + t.__name__)
                except Exception:
                    pass
            except Exception as e:
                failed += 1
                print(f"FAIL {t.__name__}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASS {t.__name__} ({time.monotonic() - t0:.1f} s)", flush=True)
    except (Failure, WebDriverError, OSError) as e:
        print(f"FAIL setup: {e}", flush=True)
        failed += 1
    finally:
        if browser is not None:
            browser.stop()
        if stack is not None:
            stack.stop()
        if provider is not None:
            provider.stop()
        if cluster is not None:
            cluster.stop()
    print(f"    screenshots in {out}", flush=True)
    # tests/run.sh counts the line of the suite's own name: ui, or ui-pg on PostgreSQL
    name = "ui-pg" if os.environ.get("E2E_DB") == "postgres" else "ui"
    print(f"{name}: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
