"""The OpenAPI document (conf/docs/openapi.json): it documents exactly the worker's routes, the worker
serves it byte for byte, its examples fit its schemas, it lints clean, and real answers fit it."""

import json
import os
import re
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

from api import chat_path, create_chat, new_user, qs
from harness import ROOT, WORKER, default_stack, test

DOC_PATH = ROOT / "conf" / "docs" / "openapi.json"
DOCS_DIR = ROOT / "conf" / "docs"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TAGS = {"chats", "messages", "chat", "service", "auth", "admin", "monitoring", "openai"}
LINT_TIMEOUT = 180

try:
    import jsonschema
except ImportError:  # Debian: apt-get install python3-jsonschema
    jsonschema = None


def load_doc():
    with open(DOC_PATH, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def need_jsonschema():
    assert jsonschema is not None, "python3-jsonschema is not installed (apt-get install python3-jsonschema)"


def validator(doc, schema):
    """A Draft 2020-12 validator of schema whose "#/components/..." references resolve in doc."""
    need_jsonschema()
    cls = jsonschema.Draft202012Validator
    checker = getattr(cls, "FORMAT_CHECKER", None) or jsonschema.draft202012_format_checker
    resolver = jsonschema.RefResolver.from_schema(doc)
    return cls(schema, resolver=resolver, format_checker=checker)


def problems(doc, schema, instance):
    """The validation errors of instance against schema, as readable lines."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator(doc, schema).iter_errors(instance)]


def resolve(doc, obj):
    """obj, or what its "$ref" ("#/a/b") points to (followed until it is not a reference)."""
    seen = 0
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        assert ref.startswith("#/"), f"a reference outside the document: {ref}"
        target = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"unresolved reference {ref}"
            target = target[part]
        obj = target
        seen += 1
        assert seen < 20, f"a reference loop at {ref}"
    return obj


def operations(doc):
    """(METHOD, path template, operation) of every documented operation."""
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def worker_routes():
    out = subprocess.run([str(WORKER), "--routes"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, f"--routes exited {out.returncode}: {out.stderr}"
    routes = set()
    for line in out.stdout.splitlines():
        if line.strip():
            method, path = line.split()
            routes.add((method, path))
    assert routes, "--routes printed nothing"
    return routes


# --------------------------------------------------------------------------------------------------
# The document and the routes


@test
def document_is_openapi_3_1():
    doc = load_doc()
    assert doc.get("openapi") == "3.1.0", f"openapi {doc.get('openapi')!r}"
    info = doc.get("info", {})
    assert info.get("title") == "AI Chat Backend API" and info.get("version") == "1.0.0", info
    assert info.get("description"), "info has no description"
    wrong = []
    for method, path, o in operations(doc):
        for key in ("operationId", "summary", "description"):
            if not o.get(key):
                wrong.append(f"{method} {path}: no {key}")
        if not o.get("tags") or not set(o["tags"]) <= TAGS:
            wrong.append(f"{method} {path}: tags {o.get('tags')!r} not among {sorted(TAGS)}")
        for status, r in o.get("responses", {}).items():
            r = resolve(doc, r)
            if status not in ("204", "304") and not r.get("content"):
                wrong.append(f"{method} {path}: response {status} documents no body")
            for media, c in r.get("content", {}).items():
                if "schema" not in c:
                    wrong.append(f"{method} {path}: response {status} {media} has no schema")
    ids = [o["operationId"] for _, _, o in operations(doc) if "operationId" in o]
    if len(ids) != len(set(ids)):
        wrong.append(f"operationIds repeat: {sorted(ids)}")
    assert not wrong, "\n".join(wrong)


@test
def documented_operations_are_the_routes():
    doc = load_doc()
    routes = worker_routes()
    documented = {(m, p) for m, p, _ in operations(doc)}
    get_paths = {p for m, p in routes if m == "GET"}
    undocumented = sorted(routes - documented)
    # HEAD is answered wherever GET is: it may be documented there (it is not listed by --routes)
    unknown = sorted((m, p) for m, p in documented - routes if not (m == "HEAD" and p in get_paths))
    assert not undocumented and not unknown, (
        f"routes the document lacks: {undocumented}; documented operations with no route: {unknown}")


@test
def served_document_is_the_file():
    s = default_stack()
    want = DOC_PATH.read_bytes()
    resp = s.request("GET", "/openapi.json")
    assert resp.status == 200, resp.describe()
    media = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    assert media == "application/json", f"Content-Type {resp.headers.get('content-type')!r}"
    assert resp.body == want, (
        f"GET /openapi.json ({len(resp.body)} bytes) differs from {DOC_PATH} ({len(want)} bytes): run make")


# --------------------------------------------------------------------------------------------------
# Examples


def examples_in(doc):
    """(where, schema, example value) of every example in the document: media types' example(s),
    parameters' and headers' example(s), and schemas' own "examples"."""
    found = []

    def media_examples(where, media):
        schema = media.get("schema")
        if schema is None:
            return
        if "example" in media:
            found.append((f"{where} example", schema, media["example"]))
        for name, e in media.get("examples", {}).items():
            e = resolve(doc, e)
            if "value" in e:
                found.append((f"{where} examples/{name}", schema, e["value"]))

    def walk_schemas(where, node):
        if isinstance(node, dict):
            if isinstance(node.get("examples"), list) and ("type" in node or "$ref" in node):
                for i, value in enumerate(node["examples"]):
                    found.append((f"{where} examples[{i}]", node, value))
            for key, value in node.items():
                walk_schemas(f"{where}/{key}", value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk_schemas(f"{where}[{i}]", value)

    def param_examples(where, p):
        p = resolve(doc, p)
        if "schema" in p:
            if "example" in p:
                found.append((f"{where} example", p["schema"], p["example"]))
            for name, e in p.get("examples", {}).items():
                e = resolve(doc, e)
                if "value" in e:
                    found.append((f"{where} examples/{name}", p["schema"], e["value"]))

    components = doc.get("components", {})
    walk_schemas("#/components/schemas", components.get("schemas", {}))
    for name, p in components.get("parameters", {}).items():
        param_examples(f"#/components/parameters/{name}", p)
    for name, h in components.get("headers", {}).items():
        param_examples(f"#/components/headers/{name}", h)
    for name, r in components.get("responses", {}).items():
        for media_type, media in r.get("content", {}).items():
            media_examples(f"#/components/responses/{name} {media_type}", media)
    for name, b in components.get("requestBodies", {}).items():
        for media_type, media in b.get("content", {}).items():
            media_examples(f"#/components/requestBodies/{name} {media_type}", media)
    for method, path, o in operations(doc):
        where = f"{method} {path}"
        for p in o.get("parameters", []):
            if "$ref" not in p:
                param_examples(f"{where} parameter {p.get('name')}", p)
        body = o.get("requestBody")
        if body and "$ref" not in body:
            for media_type, media in body.get("content", {}).items():
                media_examples(f"{where} request {media_type}", media)
        for status, r in o.get("responses", {}).items():
            if "$ref" in r:
                continue
            for media_type, media in r.get("content", {}).items():
                media_examples(f"{where} {status} {media_type}", media)
    return found


@test
def examples_fit_their_schemas():
    doc = load_doc()
    found = examples_in(doc)
    assert len(found) >= 40, f"only {len(found)} examples found: is the walk broken?"
    wrong = []
    for where, schema, value in found:
        for problem in problems(doc, schema, value):
            wrong.append(f"{where}: {problem}")
    # the request bodies' and the success answers' examples exist
    for method, path, o in operations(doc):
        body = o.get("requestBody")
        if body:
            content = resolve(doc, body)["content"]
            media = content.get("application/json") or content.get("application/x-www-form-urlencoded")
            if "example" not in media and not media.get("examples"):
                wrong.append(f"{method} {path}: the request body has no example")
        for status, r in o.get("responses", {}).items():
            r = resolve(doc, r)
            for media_type, media in r.get("content", {}).items():
                if status.startswith("2") and path != "/openapi.json" \
                        and "example" not in media and not media.get("examples"):
                    wrong.append(f"{method} {path} {status} {media_type}: no example")
    assert not wrong, "\n".join(wrong)


@test
def stream_examples_are_well_formed_events():
    doc = load_doc()
    wrong = []
    for name, r in doc["components"]["responses"].items():
        media = r.get("content", {}).get("text/event-stream")
        if media is None:
            continue
        events = media.get("x-sse-events", {})
        for ex_name, e in media.get("examples", {}).items():
            for event, data in parse_sse(e["value"]):
                if event == "comment":
                    continue
                if event not in events:
                    wrong.append(f"{name} {ex_name}: event {event!r} is not in x-sse-events")
                    continue
                try:
                    decoded = json.loads(data)
                except ValueError:
                    decoded = data  # not JSON: OpenAI's "[DONE]"
                for problem in problems(doc, events[event], decoded):
                    wrong.append(f"{name} {ex_name} {event}: {problem}")
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------------------------------
# Lint


@test
def document_lints_clean():
    if not (DOCS_DIR / "node_modules" / "@redocly" / "cli").is_dir():
        raise AssertionError(f"{DOCS_DIR}/node_modules/@redocly/cli is missing: run npm ci in conf/docs "
                             "(make docs) to lint the OpenAPI document")
    npx = shutil.which("npx")
    assert npx, "npx (Node.js) is not installed: cannot lint the OpenAPI document"
    out = subprocess.run([npx, "--no-install", "redocly", "lint", "openapi.json"], cwd=DOCS_DIR,
                         capture_output=True, text=True, timeout=LINT_TIMEOUT,
                         env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"})
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"redocly lint exited {out.returncode}:\n{text[-4000:]}"
    warned = re.search(r"You have (\d+) warnings?", text)
    assert not warned, (f"redocly lint: {warned.group(0)} (fix them, or disable a rule that is wrong for "
                        f"this API in conf/docs/redocly.yaml saying why):\n{text[-4000:]}")


# --------------------------------------------------------------------------------------------------
# Real answers fit the document


def parse_sse(text):
    """(event name, data) of each event of a text/event-stream body; ("comment", text) for ": ..." lines."""
    found, name, data = [], None, []
    for line in text.split("\n"):
        if line.startswith(":"):
            found.append(("comment", line[1:].strip()))
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].removeprefix(" "))
        elif line == "" and (name or data):
            found.append((name or "message", "\n".join(data)))
            name, data = None, []
    return found


def find_operation(doc, method, target):
    """(path template, operation) answering method and target (a path with a query), or (None, None)."""
    path = urlsplit(target).path
    segs = path.strip("/").split("/") if path != "/" else []
    for template, item in doc["paths"].items():
        tsegs = template.strip("/").split("/") if template != "/" else []
        if len(tsegs) != len(segs):
            continue
        if all(t == s or (t.startswith("{") and s != "") for t, s in zip(tsegs, segs)):
            o = item.get(method.lower()) or (item.get("get") if method == "HEAD" else None)
            return template, o
    return None, None


def header_value(schema, value):
    if schema.get("type") == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    return value


def conformance(doc, method, target, resp):
    """Problems of one real answer against the document: its status documented for the operation, its
    media type and body fitting the schema, its documented headers present and fitting theirs."""
    what = f"{method} {target[:80]} -> {resp.status}"
    template, o = find_operation(doc, method, target)
    if o is None and resp.status in (404, 405, 414):
        # a method the path does not answer, or no path at all: every operation documents these alike
        item = doc["paths"].get(template, {}) if template else {}
        candidates = [item[m] for m in METHODS if m in item] + [x for _, _, x in operations(doc)]
        template, o = "(any)", next((x for x in candidates if str(resp.status) in x["responses"]), None)
    if o is None:
        return [f"{what}: no documented operation answers it"]
    documented = o["responses"].get(str(resp.status))
    if documented is None:
        return [f"{what}: status {resp.status} is not documented for {method} {template} ({resp.describe()})"]
    documented = resolve(doc, documented)
    wrong = []
    for name, h in documented.get("headers", {}).items():
        h = resolve(doc, h)
        value = resp.headers.get(name.lower())
        if value is None:
            if h.get("required"):
                wrong.append(f"{what}: no {name} header ({resp.headers})")
            continue
        for problem in problems(doc, h["schema"], header_value(h["schema"], value)):
            wrong.append(f"{what}: header {name}: {value!r}: {problem}")
    content = documented.get("content", {})
    if method == "HEAD" or resp.status == 204:
        if resp.body:
            wrong.append(f"{what}: a body where none is expected: {resp.body[:200]!r}")
        return wrong
    media = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in content:
        return wrong + [f"{what}: Content-Type {media!r} is not documented ({sorted(content)})"]
    text = resp.body.decode("utf-8")
    if media == "text/event-stream":
        events = content[media].get("x-sse-events", {})
        for event, data in parse_sse(text):
            if event == "comment":
                continue
            if event not in events:
                wrong.append(f"{what}: undocumented event {event!r}")
                continue
            for problem in problems(doc, events[event], json.loads(data)):
                wrong.append(f"{what}: event {event}: {problem} ({data[:200]})")
        return wrong
    for problem in problems(doc, content[media]["schema"], json.loads(text)):
        wrong.append(f"{what}: {problem} (body {text[:300]})")
    return wrong


class Checker:
    """Sends requests and collects where the answers depart from the document."""

    def __init__(self, stack):
        self.doc = load_doc()
        self.stack = stack
        self.wrong = []
        self.count = 0

    def __call__(self, method, target, status=None, **kwargs):
        resp = self.stack.request(method, target, **kwargs)
        self.count += 1
        if status is not None and resp.status != status:
            self.wrong.append(f"{method} {target[:80]}: status {resp.status}, wanted {status} ({resp.describe()})")
        self.wrong += conformance(self.doc, method, target, resp)
        return resp

    def done(self):
        assert not self.wrong, f"{len(self.wrong)} of {self.count} answers depart from the document:\n" + \
            "\n".join(self.wrong)


@test
def chat_management_answers_fit_the_document():
    need_jsonschema()
    s = default_stack()
    c = Checker(s)
    user = new_user("openapi")
    for target in ("/", "/health", "/models", "/openapi.json"):
        c("GET", target, 200)
        c("HEAD", target, 200)
    c("GET", "/health?deep=maybe", 422)
    c("GET", "/health?deep=1", 503)  # no GROQ_API_KEY in the shared stack
    chat = c("POST", "/chats", 201, json={"user_id": user, "title": "Doc"}).data()
    c("POST", "/chats", 201, json={"user_id": user})
    c("POST", "/chats", 201, json={"user_id": user, "title": None})
    c("POST", "/chats", 422, json={"title": ""})
    c("POST", "/chats", 422, json=[1])
    c("POST", "/chats", 422, body=b'{"user_id": ', headers={"Content-Type": "application/json"})
    c("POST", "/chats", 422)
    c("POST", "/chats", 415, body=b"user_id=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    c("PUT", "/chats", 405)
    c("DELETE", "/", 405)
    c("GET", "/chats" + qs(user_id=user), 200)
    c("GET", "/chats" + qs(user_id=user, limit=1, offset=1), 200)
    c("GET", "/chats" + qs(user_id="", limit=0, offset="x"), 422)
    c("GET", "/chats", 422)
    c("GET", "/chats?user_id=%ff", 422)
    c("GET", chat_path(chat["id"], user_id=user), 200)
    c("HEAD", chat_path(chat["id"], user_id=user), 200)
    c("GET", chat_path(chat["id"], user_id=new_user()), 404)
    c("GET", chat_path("not-a-uuid", user_id=user), 404)
    c("GET", "/chats/%zz" + qs(user_id=user), 400)
    c("PATCH", chat_path(chat["id"], user_id=user), 200, json={"title": "Renamed"})
    c("PATCH", chat_path(chat["id"], user_id=user), 422, json={"title": "x" * 201})
    c("PATCH", chat_path(chat["id"], user_id=user), 422, json={"title": None})
    c("POST", chat_path(chat["id"], user_id=user), 405)
    c("GET", chat_path(chat["id"], "/messages", user_id=user), 200)
    c("HEAD", chat_path(chat["id"], "/messages", user_id=user), 200)
    c("GET", chat_path(chat["id"], "/messages", user_id=user, newest="true", limit=5), 200)
    c("GET", chat_path(chat["id"], "/messages", user_id=user, before=1, after=2, limit=501), 422)
    c("GET", chat_path(chat["id"], "/messages", user_id=user, newest="maybe"), 422)
    c("GET", chat_path(chat["id"], "/messages", user_id=new_user()), 404)
    c("DELETE", chat_path(create_chat(s, user)["id"], user_id=user), 204)
    c("DELETE", chat_path(chat["id"], user_id=new_user()), 404)
    c("DELETE", chat_path(chat["id"]), 422)
    # no GROQ_API_KEY in the shared stack
    c("POST", "/chat", 503, json={"chat_id": chat["id"], "user_id": user, "message": "hi"})
    c("POST", chat_path(chat["id"], "/regenerate", user_id=user), 503)
    c("POST", "/chat", 422, json={"chat_id": "x" * 65, "user_id": None, "message": "", "model": "nope",
                                  "stream": "yes"})
    c("POST", "/chat", 422, json={"chat_id": chat["id"], "user_id": user, "message": "m"},
      headers={"Idempotency-Key": "k" * 256})
    c("POST", chat_path(chat["id"], "/regenerate", user_id=user), 422, json={"model": 1})
    c("GET", "/chat", 405)
    c("GET", "/" + "a" * 9000, 414)
    c.done()


@test
def model_answers_fit_the_document():
    need_jsonschema()
    from provider import new_chat, shared, tag

    _, s = shared("no_retry")
    c = Checker(s)
    c("GET", "/health?deep=true", 200)
    user, chat_id = new_chat(s)
    t = tag()
    body = {"chat_id": chat_id, "user_id": user}
    c("POST", "/chat", 200, json={**body, "message": f"hello {t}"})
    c("POST", "/chat", 200, json={**body, "message": f"stream {t} #words=5", "stream": True})
    c("POST", "/chat", 200, json={**body, "message": f"accept {t}"}, headers={"Accept": "text/event-stream"})
    key = {"Idempotency-Key": f"key-{t}"}
    c("POST", "/chat", 200, json={**body, "message": f"once {t}", "model": "balanced"}, headers=key)
    c("POST", "/chat", 200, json={**body, "message": f"once {t}", "model": "balanced"}, headers=key)
    c("POST", "/chat", 200, json={**body, "message": f"once {t}", "stream": True}, headers=key)
    c("POST", "/chat", 422, json={**body, "message": f"another {t}"}, headers=key)
    c("POST", "/chat", 404, json={**body, "chat_id": str(uuid.uuid4()), "message": "x"})
    c("POST", "/chat", 413, json={**body, "message": "a" * 300000})
    c("POST", "/chat", 503, json={**body, "message": f"fails {t} #fault=500"})
    c("POST", "/chat", 503, json={**body, "message": f"limited {t} #fault=429 #retry_after=1"})
    c("POST", "/chat", 200, json={**body, "message": f"cut {t} #fault=midstream", "stream": True})
    c("GET", chat_path(chat_id, "/messages", user_id=user, newest="true", limit=3), 200)
    c("POST", chat_path(chat_id, "/regenerate", user_id=user), 200)
    c("POST", chat_path(chat_id, "/regenerate", user_id=user), 200, json={"model": "smart", "stream": True})
    c("POST", chat_path(chat_id, "/regenerate", user_id=new_user()), 404)
    c("GET", chat_path(chat_id, "/messages", user_id=user), 200)
    c("GET", chat_path(chat_id, "/messages", user_id=user, newest=1, limit=2), 200)
    c("GET", chat_path(chat_id, "/messages", user_id=user, after=0, limit=2), 200)
    other, empty = new_chat(s)
    c("POST", chat_path(empty, "/regenerate", user_id=other), 409)
    c.done()
