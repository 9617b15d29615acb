#!/usr/bin/env python3
"""Browser test of the API documentation pages: Swagger UI at /docs and ReDoc at /redoc.

Only Python's standard library: it drives Debian's chromium (headless) through chromedriver with the
W3C WebDriver protocol over HTTP (urllib + json).  Unless given --url, it starts a stack of its own
(conf/stack.sh on a free port, a temporary RUN_DIR and database) and stops it at the end.

    python3 tests/browser/run.py [--url http://127.0.0.1:8080] [--out DIR] [--only NAME ...]

Prints PASS name / FAIL name: why per test, then "browser: N passed, N failed"; exit status 1 if any
test failed.  Screenshots go to --out (default build/test-output/browser).
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parent.parent.parent
STACK_SCRIPT = ROOT / "conf" / "stack.sh"
WORKER = ROOT / "build" / "ai-chat-fcgi"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"

# Settings of the caller's environment that must not reach the test stack.
SETTINGS = (
    "DATABASE_URL", "PORT", "WORKER_PROCESSES", "WORKER_THREADS", "MAX_BODY_BYTES", "CORS_ORIGINS",
    "DB_BUSY_TIMEOUT_MS", "FCGI_SOCKET", "FCGI_SOCKET_MODE", "FCGI_SOCKET_GROUP", "RUN_DIR", "WORKER",
    "NGINX_WORKERS", "ACCESS_LOG", "GROQ_API_KEY", "GROQ_BASE_URL", "MODELS_FILE", "SYSTEM_PROMPT",
    "PROVIDER_CONNECT_TIMEOUT_MS", "PROVIDER_TIMEOUT_S", "PROVIDER_RETRIES", "PROVIDER_MAX_RESPONSE_BYTES",
    "SSE_HEARTBEAT_S", "AUTH", "JWT_SECRET", "REGISTRATION",
)

STACK_START_TIMEOUT = 15       # s until GET /health answers 200
DRIVER_START_TIMEOUT = 10      # s until chromedriver answers /status
HTTP_TIMEOUT = 30              # s for one WebDriver command (a session start is the slowest)
RENDER_TIMEOUT = 20            # s for a page to render its operations
STOP_TIMEOUT = 5               # s after SIGTERM before SIGKILL

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"

# Third-party addresses the served assets are known to contain, each neutralised by the pages:
# Swagger UI's default validator (the page sets validatorUrl: null) and the logo in ReDoc's menu footer
# (the page's Content-Security-Policy blocks images from anywhere but the server; the logo hides itself).
KNOWN_ASSET_URLS = {
    "swagger-ui/swagger-ui-bundle.js": {"https://validator.swagger.io/validator"},
    "redoc/redoc.standalone.js": {"https://cdn.redoc.ly/redoc/logo-mini.svg"},
}
# What an asset must not name: font services and CDNs.
EXTERNAL_PATTERN = re.compile(
    r"(?:https?:)?//[A-Za-z0-9.-]*(?:fonts\.googleapis|fonts\.gstatic|googleapis|unpkg|jsdelivr|cdnjs|"
    r"cdn\.|validator\.swagger\.io)[^\s\"'`)<>\\]*", re.I)


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    """(status, headers, body bytes) of a GET, errors included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def kill_group(proc, timeout=STOP_TIMEOUT):
    """SIGTERM to the process group of proc (started in a new session), then SIGKILL."""
    if proc is None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except OSError:
        pgid = None
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    if pgid is not None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.05)
        if group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    # Zombies of the group count as gone.
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def processes_mentioning(mark):
    """Live processes (not this one) whose command line names mark."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
            continue
        if mark.encode() in cmdline:
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------------------------------
# The stack


class Stack:
    """conf/stack.sh (nginx + the worker) on a free port, in a new session, with a fresh database."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="ai-chat-browser-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "stack.log"
        self.proc = None
        self._log = None

    def start(self):
        if not WORKER.exists():
            raise Failure(f"{WORKER} does not exist: run make")
        env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        # AUTH=token, with the secret conf/stack.sh generates (as under make run): Swagger UI's Authorize
        env.update({"PORT": str(self.port), "RUN_DIR": str(self.tmp / "run"), "AUTH": "token",
                    "DATABASE_URL": f"sqlite:///{self.tmp}/browser.db"})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["/bin/bash", str(STACK_SCRIPT)], cwd=self.tmp, env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STACK_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"conf/stack.sh exited with status {self.proc.returncode}\n{self.log_tail()}")
            try:
                if http_get(self.url + "/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Failure(f"GET /health did not answer 200 within {STACK_START_TIMEOUT} s\n"
                              f"{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines=30):
        parts = []
        for path in (self.log_path, self.tmp / "run" / "error.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}:\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self):
        kill_group(self.proc)
        for pid in processes_mentioning(str(self.tmp)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# WebDriver


class WebDriverError(Exception):
    pass


class Browser:
    """A chromedriver of its own and one headless chromium session, spoken to in W3C WebDriver."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="ai-chat-chromium-"))
        self.profile = self.tmp / "profile"
        self.profile.mkdir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.session = None

    def log_tail(self, n=600):
        try:
            return (self.tmp / "chromedriver.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, session_timeout=45):
        for path in (CHROMEDRIVER, CHROMIUM):
            if not os.path.exists(path):
                raise Failure(f"{path} is missing (apt-get install chromium chromium-driver)")
        self._log = open(self.tmp / "chromedriver.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + DRIVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"chromedriver exited with status {self.proc.returncode}")
            try:
                if self._call("GET", "/status", timeout=1).get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline:
                raise Failure(f"chromedriver did not answer within {DRIVER_START_TIMEOUT} s")
            time.sleep(0.05)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={self.profile}",
                "--window-size=1400,2000"]
        caps = {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": RENDER_TIMEOUT * 1000, "script": 10000, "implicit": 0},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            # The DevTools network events: every request the page tries, blocked or not.
            "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
        }
        value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}}, timeout=session_timeout)
        self.session = value["sessionId"]
        return self

    def _call(self, method, path, body=None, timeout=HTTP_TIMEOUT):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read())
            except ValueError:
                raise WebDriverError(f"{method} {path}: HTTP {e.code}") from None
            value = payload.get("value") or {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: "
                                 f"{(value.get('message') or '').splitlines()[0] if value.get('message') else ''}") from None
        return payload.get("value")

    def cmd(self, method, path, body=None, timeout=HTTP_TIMEOUT):
        return self._call(method, f"/session/{self.session}{path}", body, timeout)

    # -- commands

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def execute(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def click(self, element):
        self.cmd("POST", f"/element/{element}/click", {})

    def type(self, element, text):
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def text(self, element):
        return self.cmd("GET", f"/element/{element}/text")

    def screenshot(self, path):
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        Path(path).write_bytes(png)
        return path

    def log(self, kind):
        """Entries of the performance or browser log since the last call (chromedriver's extension)."""
        return self.cmd("POST", "/se/log", {"type": kind})

    def stop(self):
        if self.session is not None:
            try:
                self._call("DELETE", f"/session/{self.session}", timeout=10)
            except (OSError, WebDriverError):
                pass
            self.session = None
        kill_group(self.proc)
        # chromium and its helpers, wherever they went: they name the profile directory.
        for pid in processes_mentioning(str(self.profile)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and processes_mentioning(str(self.profile)):
            time.sleep(0.05)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def element(value):
    """A WebDriver element reference returned by execute, or None."""
    if isinstance(value, dict) and ELEMENT_KEY in value:
        return value[ELEMENT_KEY]
    return None


def poll(fn, timeout, interval=0.2):
    """fn() until it returns a true value (returned) or timeout s pass (the last value returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# The tests


class Context:
    def __init__(self, url, out, browser):
        self.url = url.rstrip("/")
        self.out = out
        self.browser = browser
        self._doc = None

    def doc(self):
        """The live /openapi.json (fetched once)."""
        if self._doc is None:
            status, headers, body = http_get(self.url + "/openapi.json")
            check(status == 200, f"GET /openapi.json answered {status}")
            try:
                self._doc = json.loads(body)
            except ValueError as e:
                raise Failure(f"/openapi.json is not JSON: {e}") from None
        return self._doc

    def operations(self):
        """{(METHOD, path): operation object} of the document; at least one."""
        ops = {}
        for path, item in (self.doc().get("paths") or {}).items():
            for method in HTTP_METHODS:
                if isinstance(item, dict) and isinstance(item.get(method), dict):
                    ops[(method.upper(), path)] = item[method]
        check(ops, "the document at /openapi.json has no operations")
        return ops


SWAGGER_OPERATIONS_JS = """
return Array.from(document.querySelectorAll('#swagger-ui .opblock')).map(function (o) {
  var m = o.querySelector('.opblock-summary-method');
  var p = o.querySelector('.opblock-summary-path');
  return [m ? m.textContent.trim() : '', p ? (p.getAttribute('data-path') || p.textContent) : ''];
});
"""

SWAGGER_ERRORS_JS = """
var e = document.querySelector('#swagger-ui .errors-wrapper, #swagger-ui .loading-container .info');
return e ? e.textContent.trim() : '';
"""


def open_swagger(ctx):
    """Opens /docs and waits until the operations are shown and their number stops changing."""
    b = ctx.browser
    b.get(ctx.url + "/docs")
    title = b.cmd("GET", "/title")
    check(title == "AI Chat Backend API - Swagger UI", f"/docs has the title {title!r}")
    seen = {"n": -1}

    def ready():
        shown = b.execute(SWAGGER_OPERATIONS_JS)
        n = len(shown)
        stable = n > 0 and n == seen["n"]
        seen["n"] = n
        return shown if stable else None

    shown = poll(ready, RENDER_TIMEOUT, 0.25)
    if not shown:
        errors = b.execute(SWAGGER_ERRORS_JS)
        raise Failure(f"no operation appeared in Swagger UI within {RENDER_TIMEOUT} s"
                      + (f" (page says: {errors[:300]})" if errors else ""))
    return shown


def swagger_lists_every_operation(ctx):
    expected = set(ctx.operations())
    shown = open_swagger(ctx)
    ctx.browser.screenshot(ctx.out / "docs.png")
    got = {(m.upper(), re.sub(r"[\u200b\s]", "", p)) for m, p in shown}
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    check(not missing and not extra,
          f"Swagger UI differs from /openapi.json: missing {missing}, extra {extra}")
    print(f"    {len(expected)} operations shown", flush=True)


FIND_OPBLOCK_JS = """
var want = arguments[0], path = arguments[1];
var blocks = document.querySelectorAll('#swagger-ui .opblock');
for (var i = 0; i < blocks.length; i++) {
  var m = blocks[i].querySelector('.opblock-summary-method');
  var p = blocks[i].querySelector('.opblock-summary-path');
  if (m && p && m.textContent.trim().toUpperCase() === want && p.getAttribute('data-path') === path)
    return blocks[i];
}
return null;
"""

IN_BLOCK_JS = """
var block = arguments[0], css = arguments[1];
return block.querySelector(css);
"""

LIVE_RESPONSE_JS = """
var block = arguments[0];
var table = block.querySelector('.live-responses-table');
if (!table) return null;
var status = table.querySelector('tbody .response-col_status');
var body = table.querySelector('tbody .response-col_description .microlight, tbody .response-col_description pre');
if (!status) return null;
return {status: status.textContent.trim(), body: body ? body.textContent : '',
        all: table.textContent};
"""


def swagger_try_it_out_health(ctx):
    check(("GET", "/health") in ctx.operations(), "the document has no GET /health")
    b = ctx.browser
    open_swagger(ctx)
    block = element(b.execute(FIND_OPBLOCK_JS, "GET", "/health"))
    check(block, "Swagger UI shows no GET /health block")
    ref = {ELEMENT_KEY: block}
    # Expand the operation: its summary control (a button in Swagger UI 5).
    control = element(b.execute(IN_BLOCK_JS, ref, ".opblock-summary-control")) or \
        element(b.execute(IN_BLOCK_JS, ref, ".opblock-summary"))
    check(control, "GET /health has no summary to click")
    b.click(control)
    try_out = poll(lambda: element(b.execute(IN_BLOCK_JS, ref, "button.try-out__btn")), 10)
    check(try_out, "no \"Try it out\" button after expanding GET /health")
    label = b.text(try_out).strip()
    check(label.lower() == "try it out", f"the button says {label!r}, not \"Try it out\"")
    b.click(try_out)
    execute = poll(lambda: element(b.execute(IN_BLOCK_JS, ref, "button.execute")), 10)
    check(execute, "no \"Execute\" button after \"Try it out\"")
    b.click(execute)
    live = poll(lambda: b.execute(LIVE_RESPONSE_JS, ref), 15)
    # Bring the response into the screenshot.
    b.execute("var t = arguments[0].querySelector('.live-responses-table');"
              "if (t) t.scrollIntoView({block: 'center'});", ref)
    b.screenshot(ctx.out / "docs-health.png")
    check(live, "no live response within 15 s of \"Execute\"")
    check(live["status"] == "200", f"the live response shows code {live['status']!r}: {live['all'][:300]}")
    check("healthy" in live["body"], f"the live response body lacks \"healthy\": {live['body'][:300]!r}")
    print(f"    live response {live['status']}: {' '.join(live['body'].split())[:120]}", flush=True)


def http_json(method, url, body=None, headers=None, timeout=10):
    """(status, decoded body) of one JSON request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


AUTHORIZE_FIELDS_JS = """
var modal = document.querySelector('.modal-ux');
if (!modal) return null;
var user = modal.querySelector('#oauth_username'), pass = modal.querySelector('#oauth_password');
if (!user || !pass) return null;
var wrapper = user.closest('.auth-container') || modal;
var button = wrapper.querySelector('.auth-btn-wrapper .btn.modal-btn.auth.authorize');
return {user: user, pass: pass, button: button};
"""

AUTHORIZED_JS = """
var modal = document.querySelector('.modal-ux');
if (!modal) return null;
var buttons = modal.querySelectorAll('.auth-btn-wrapper .btn.modal-btn.auth');
for (var i = 0; i < buttons.length; i++)
  if (buttons[i].textContent.trim() === 'Logout') return modal.querySelector('.btn-done, .close-modal');
var errors = modal.querySelector('.errors');
return errors ? {error: errors.textContent.trim()} : null;
"""


def swagger_authorize_then_list_chats(ctx):
    """Registers a user, logs in with Swagger UI's Authorize (the OAuth2 password flow against
    /auth/token), and gets 200 from GET /chats with the token Swagger UI then sends."""
    status, mode = http_json("GET", ctx.url + "/auth/config")
    check(status == 200 and mode.get("mode") == "token", f"the server is not in AUTH=token: {status} {mode}")
    email = f"browser-{os.getpid()}-{int(time.time())}@example.com"
    password = "correct horse battery"
    status, user = http_json("POST", ctx.url + "/auth/register", {"email": email, "password": password})
    check(status == 201, f"POST /auth/register: {status} {user}")
    status, _ = http_json("GET", ctx.url + "/chats")
    check(status == 401, f"GET /chats without a token answered {status}")
    b = ctx.browser
    open_swagger(ctx)
    authorize = poll(lambda: element(b.execute("return document.querySelector('.auth-wrapper .btn.authorize');")), 10)
    check(authorize, "Swagger UI shows no Authorize button")
    b.click(authorize)
    fields = poll(lambda: b.execute(AUTHORIZE_FIELDS_JS), 10)
    check(fields and element(fields.get("button")), "the Authorize dialog has no OAuth2 username/password form")
    b.type(element(fields["user"]), email)
    b.type(element(fields["pass"]), password)
    b.click(element(fields["button"]))
    done = poll(lambda: b.execute(AUTHORIZED_JS), 15)
    b.screenshot(ctx.out / "docs-authorized.png")
    check(done and not (isinstance(done, dict) and "error" in done),
          f"Authorize did not log in: {done}")
    b.click(element(done))
    block = element(b.execute(FIND_OPBLOCK_JS, "GET", "/chats"))
    check(block, "Swagger UI shows no GET /chats block")
    ref = {ELEMENT_KEY: block}
    control = element(b.execute(IN_BLOCK_JS, ref, ".opblock-summary-control")) or \
        element(b.execute(IN_BLOCK_JS, ref, ".opblock-summary"))
    b.click(control)
    try_out = poll(lambda: element(b.execute(IN_BLOCK_JS, ref, "button.try-out__btn")), 10)
    check(try_out, "no \"Try it out\" button on GET /chats")
    b.click(try_out)
    execute = poll(lambda: element(b.execute(IN_BLOCK_JS, ref, "button.execute")), 10)
    check(execute, "no \"Execute\" button on GET /chats")
    b.click(execute)
    live = poll(lambda: b.execute(LIVE_RESPONSE_JS, ref), 15)
    b.execute("var t = arguments[0].querySelector('.live-responses-table');"
              "if (t) t.scrollIntoView({block: 'center'});", ref)
    b.screenshot(ctx.out / "docs-chats.png")
    check(live, "no live response within 15 s of \"Execute\" on GET /chats")
    check(live["status"] == "200", f"GET /chats shows code {live['status']!r}: {live['all'][:300]}")
    check('"total"' in live["body"], f"the live response is not a chat list: {live['body'][:300]!r}")
    print(f"    authorized as {email}; GET /chats {live['status']}: {' '.join(live['body'].split())[:80]}",
          flush=True)


REDOC_STATE_JS = """
var root = document.querySelector('redoc');
var menu = document.querySelector('.menu-content');
var ops = document.querySelectorAll('[data-section-id^="operation/"], [id^="operation/"]');
var text = (document.body.textContent || '').replace(/\\s+/g, ' ');
var failed = /Something went wrong\\.\\.\\./.test(text);
return {menu: !!menu, operations: ops.length, text: text, failed: failed,
        error: failed ? text.slice(0, 400) : ''};
"""


def open_redoc(ctx, wanted):
    """Opens /redoc and waits until the menu renders and every wanted text appears (or the timeout)."""
    b = ctx.browser
    b.get(ctx.url + "/redoc")
    title = b.cmd("GET", "/title")
    check(title == "AI Chat Backend API - ReDoc", f"/redoc has the title {title!r}")

    def ready():
        state = b.execute(REDOC_STATE_JS)
        if state["failed"]:
            return state
        if state["menu"] and state["operations"] > 0 and all(w in state["text"] for w in wanted):
            return state
        return None

    state = poll(ready, RENDER_TIMEOUT, 0.25) or b.execute(REDOC_STATE_JS)
    check(not state["failed"], f"ReDoc reports an error: {state['error']}")
    check(state["menu"], f"ReDoc's menu did not render within {RENDER_TIMEOUT} s")
    check(state["operations"] > 0, f"ReDoc rendered no operation within {RENDER_TIMEOUT} s")
    return state


def redoc_lists_every_operation(ctx):
    ops = ctx.operations()
    wanted = {}
    for (method, path), op in ops.items():
        name = op.get("summary") or op.get("operationId")
        check(name, f"{method} {path} has neither a summary nor an operationId")
        wanted[(method, path)] = " ".join(str(name).split())
    state = open_redoc(ctx, set(wanted.values()))
    ctx.browser.screenshot(ctx.out / "redoc.png")
    missing = [f"{m} {p} ({w!r})" for (m, p), w in sorted(wanted.items()) if w not in state["text"]]
    check(not missing, f"ReDoc's page lacks {len(missing)} operation(s): {'; '.join(missing)}")
    check(state["operations"] >= len(ops),
          f"ReDoc rendered {state['operations']} operation sections for {len(ops)} operations")
    print(f"    {len(wanted)} operations named, {state['operations']} operation sections", flush=True)


RESOURCES_JS = """
return {origin: location.origin,
        entries: performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
                 .map(function (e) { return {url: e.name, status: e.responseStatus || 0,
                                             size: e.transferSize || 0, duration: e.duration || 0}; })};
"""


def network_requests(b):
    """[url, reason it failed or None, whether a response came] of each request the page made since the
    last call (the DevTools network events of the performance log)."""
    requests = {}
    for entry in b.log("performance"):
        try:
            message = json.loads(entry["message"])["message"]
        except (KeyError, ValueError):
            continue
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            requests.setdefault(params["requestId"], [params["request"]["url"], None, False])
        elif method == "Network.loadingFailed" and params.get("requestId") in requests:
            requests[params["requestId"]][1] = params.get("blockedReason") or params.get("errorText") or "failed"
        elif method == "Network.responseReceived" and params.get("requestId") in requests:
            requests[params["requestId"]][2] = True
    return list(requests.values())


def leaves_origin(url, origin):
    """Whether a request for url would go to another host than the page's (data:, blob: and the
    browser's own chrome: pages stay inside the browser)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss", "ftp"):
        return False
    return f"{parts.scheme}://{parts.netloc}" != origin


def no_external_requests(ctx):
    b = ctx.browser
    problems = []
    blocked_notes = []
    origin = ctx.url
    for page, opener in (("/docs", lambda: open_swagger(ctx)), ("/redoc", lambda: open_redoc(ctx, ()))):
        b.log("performance")  # discard what came before
        opener()
        time.sleep(1.0)  # late requests (images, workers) after the first render
        seen = b.execute(RESOURCES_JS)
        requests = network_requests(b)
        check(seen["origin"] == origin, f"{page} is at the origin {seen['origin']}, not {origin}")
        check(len(seen["entries"]) >= 3, f"{page}: the Resource Timing API lists {len(seen['entries'])} entries")
        check(any(url.endswith("/openapi.json") for url, _, _ in requests),
              f"{page}: the DevTools log shows no request for /openapi.json (is the log working?)")
        # What the browser refused to send (the page's Content-Security-Policy): it never left.
        blocked = {url: why for url, why, answered in requests
                   if leaves_origin(url, origin) and why and not answered}
        for entry in seen["entries"]:
            url = entry["url"]
            if not leaves_origin(url, origin):
                continue
            if url in blocked and entry["status"] == 0 and entry["size"] == 0:
                blocked_notes.append(f"{page}: {url} (blocked: {blocked[url]})")
            else:
                problems.append(f"{page} loaded {url} (status {entry['status']}, {entry['size']} bytes)")
        for url, why, answered in requests:
            if leaves_origin(url, origin) and url not in blocked:
                problems.append(f"{page} requested {url} ({'answered' if answered else why or 'pending'})")

    # The pages themselves: nothing that is not on this server.
    for page in ("/docs", "/redoc"):
        status, headers, body = http_get(ctx.url + page)
        check(status == 200, f"GET {page} answered {status}")
        html = body.decode("utf-8", "replace")
        for match in re.finditer(r"(?:https?:)?//[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}", html):
            problems.append(f"{page} names {match.group(0)}")
        for attr in re.finditer(r"\b(?:src|href|spec-url)\s*=\s*[\"']([^\"']*)[\"']", html):
            target = attr.group(1)
            if target.startswith("data:"):
                continue
            if not target.startswith("/") or target.startswith("//"):
                problems.append(f"{page} loads {target!r}, not a path on this server")
            else:
                if http_get(ctx.url + target)[0] != 200:
                    problems.append(f"{page} loads {target}, which does not answer 200")
        csp = re.search(r"http-equiv=[\"']Content-Security-Policy[\"']\s+content=[\"']([^\"']*)", html, re.I)
        if not csp:
            problems.append(f"{page} has no Content-Security-Policy")
        elif re.search(r"https?:|\*", csp.group(1)):
            problems.append(f"{page}: its Content-Security-Policy allows another host: {csp.group(1)}")
        if page == "/docs" and not re.search(r"validatorUrl\s*:\s*null", html):
            problems.append("/docs does not set validatorUrl: null (Swagger UI would call its validator)")

    # The served assets: no font service, no CDN, beyond the known addresses the pages neutralise.
    for asset, known in (("swagger-ui/swagger-ui-bundle.js", KNOWN_ASSET_URLS["swagger-ui/swagger-ui-bundle.js"]),
                         ("swagger-ui/swagger-ui.css", set()),
                         ("redoc/redoc.standalone.js", KNOWN_ASSET_URLS["redoc/redoc.standalone.js"])):
        status, headers, body = http_get(f"{ctx.url}/docs/assets/{asset}")
        check(status == 200, f"GET /docs/assets/{asset} answered {status}")
        text = body.decode("utf-8", "replace")
        for match in EXTERNAL_PATTERN.finditer(text):
            url = match.group(0)
            if url not in known:
                problems.append(f"/docs/assets/{asset} names {url}")

    check(not problems, "; ".join(problems[:20]))
    for note in blocked_notes:
        print(f"    blocked by the page's policy: {note}", flush=True)


TESTS = [swagger_lists_every_operation, swagger_try_it_out_health, swagger_authorize_then_list_chats,
         redoc_lists_every_operation, no_external_requests]


# --------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="test this running server instead of starting a stack")
    parser.add_argument("--out", default=str(ROOT / "build" / "test-output" / "browser"),
                        help="directory for the screenshots")
    parser.add_argument("--only", action="append", help="run only this test (repeatable)")
    args = parser.parse_args()

    tests = [t for t in TESTS if not args.only or t.__name__ in args.only]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    passed = failed = 0
    stack = browser = None
    started = time.monotonic()

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            url = args.url
            if not url:
                stack = Stack()
                url = stack.start().url
            # A first chromium on a fresh machine (its caches still to build, the machine busy) may take
            # longer than a session's timeout: a second try with a new chromedriver, after saying why.
            for attempt in (1, 2):
                browser = Browser()
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
                    print("    trying again with a new chromedriver", flush=True)
        except (Failure, WebDriverError, OSError) as e:
            print(f"FAIL setup: {e}", flush=True)
            failed = len(tests) or 1
            tests = []
        ctx = Context(url, out, browser) if tests else None
        for test in tests:
            t0 = time.monotonic()
            try:
                test(ctx)
            except (Failure, WebDriverError, OSError) as e:
                failed += 1
                print(f"FAIL {test.__name__}: {e}", flush=True)
            except Exception as e:
                failed += 1
                print(f"FAIL {test.__name__}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASS {test.__name__} ({time.monotonic() - t0:.1f} s)", flush=True)
    except KeyboardInterrupt:
        print("FAIL interrupted", flush=True)
        failed += 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if browser is not None:
            browser.stop()
        if stack is not None:
            stack.stop()
    print(f"    screenshots in {out} ({time.monotonic() - started:.1f} s in all)", flush=True)
    print(f"browser: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
