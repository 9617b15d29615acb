"""README's "## Examples" run as written: every ```sh block there is one curl command, run with bash
against a stack talking to the fake provider, with API, CHAT_ID and MESSAGE_ID set; its output must be
what the OpenAPI document describes (openapi_check), and the streaming one a stream that ends in done.

One test per block (readme_examples.<n>_<method>_<path>), plus one that every endpoint has an example.
The curl is run as written, with a shell function in front that adds -D <file> to it (the response
head, for the status and headers; it changes nothing curl prints).
"""

import os
import re
import shlex
import subprocess
import tempfile
from urllib.parse import urlsplit

import openapi_check
from api import create_chat, expect
from harness import ROOT, Response, add_test, check_schema
from provider import shared

README = ROOT / "README.md"
USER = "user123"
RUN_TIMEOUT = 30
VARIABLES = ("API", "CHAT_ID", "MESSAGE_ID", "USER_MESSAGE_ID")

# The endpoints the examples must show (method, path template).
REQUIRED = [
    ("GET", "/"), ("GET", "/health"), ("POST", "/chats"), ("GET", "/chats"), ("GET", "/chats/{chat_id}"),
    ("PATCH", "/chats/{chat_id}"), ("DELETE", "/chats/{chat_id}"), ("GET", "/chats/{chat_id}/messages"),
    ("POST", "/chat"), ("POST", "/chats/{chat_id}/regenerate"), ("GET", "/models"), ("GET", "/openapi.json"),
    ("POST", "/chats/{chat_id}/messages/{message_id}/edit"), ("PUT", "/chats/{chat_id}/active"),
    ("GET", "/search"), ("GET", "/chats/{chat_id}/export"), ("GET", "/export"), ("POST", "/import"),
]

# curl options that take a value (so the value is not taken for the URL).
VALUE_OPTIONS = {"-X", "--request", "-H", "--header", "-d", "--data", "--data-raw", "--data-binary",
                 "--json", "-u", "--user", "-A", "--user-agent", "-e", "--referer", "-m", "--max-time",
                 "--connect-timeout", "-w", "--write-out", "-o", "--output", "-D", "--dump-header",
                 "-b", "--cookie", "-T", "--upload-file", "-F", "--form", "--url", "--retry", "--data-urlencode"}
DATA_OPTIONS = {"-d", "--data", "--data-raw", "--data-binary", "--json", "-F", "--form", "--data-urlencode"}


def examples_section():
    text = README.read_text()
    m = re.search(r"^## Examples\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Examples' section followed by another '## ' section"
    return m.group(1)


def sh_blocks():
    """The text of each ```sh block of the Examples section, in order."""
    return re.findall(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", examples_section(), re.S | re.M)


def curl_words(block):
    """The words of a block that must be exactly one curl command; AssertionError otherwise."""
    lines = [l for l in block.replace("\\\n", " ").splitlines() if l.strip()]
    assert len(lines) == 1, f"not a single command (one line, or lines continued with \\): {block!r}"
    line = lines[0]
    assert "$(" not in line and "`" not in line, f"command substitution in an example: {line!r}"
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words = list(lexer)
    operators = [w for w in words if w and set(w) <= set("();<>|&")]
    assert not operators, f"not a single command (shell operators {operators}): {line!r}"
    assert words and words[0] == "curl", f"not a curl command: {line!r}"
    return words


def expand(word, env):
    """$NAME and ${NAME} of the example variables replaced (as bash does in a double-quoted word)."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), word)


def describe_request(words, env):
    """(method, path with query) of the curl command, from -X (else POST with a body, HEAD with -I, GET)
    and its "$API/..." URL."""
    method, url, has_data, head_only = None, None, False, False
    i = 1
    while i < len(words):
        word = words[i]
        if word in VALUE_OPTIONS:
            value = words[i + 1] if i + 1 < len(words) else ""
            if word in ("-X", "--request"):
                method = value
            elif word in DATA_OPTIONS:
                has_data = True
            elif word == "--url":
                url = value
            i += 2
            continue
        if word.startswith("-X") and len(word) > 2:
            method = word[2:]
        elif word in ("-I", "--head") or (word.startswith("-") and not word.startswith("--") and "I" in word):
            head_only = True
        elif not word.startswith("-"):
            url = word
        i += 1
    assert url and url.startswith("$API"), f"the URL is not \"$API/...\": {words!r}"
    parts = urlsplit(expand(url, env))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    method = method or ("HEAD" if head_only else "POST" if has_data else "GET")
    return method.upper(), path


def includes_head(words):
    """Whether curl prints the response head too (-i)."""
    return any(w == "--include" or (w.startswith("-") and not w.startswith("--") and "i" in w[1:])
               for w in words[1:] if w not in VALUE_OPTIONS)


def parse_head(text):
    """(status, headers) of the last response head in a -D dump."""
    heads = [h for h in re.split(r"\r?\n\r?\n", text) if h.startswith("HTTP/")]
    assert heads, f"no response head was dumped: {text!r}"
    lines = heads[-1].splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    return status, headers


# -- the stack and the chat each example gets

def stack():
    return shared("readme")[1]


def fresh_chat():
    """(chat id, id of its last reply, id of its last user message): a chat of user123 with two exchanges
    with the model, so there is a message to regenerate, one to edit and one to page before."""
    s = stack()
    chat_id = create_chat(s, USER, "README example")["id"]
    message_id = None
    for text in ("Hello, AI!", "Tell me a story"):
        _, reply = expect(s, "POST", "/chat", 200, json={"chat_id": chat_id, "user_id": USER, "message": text})
        message_id, user_message_id = reply["message_id"], reply["user_message_id"]
    return chat_id, str(message_id), str(user_message_id)


def run_example(block):
    words = curl_words(block)
    s = stack()
    env = {"API": s.url, "CHAT_ID": "", "MESSAGE_ID": "", "USER_MESSAGE_ID": ""}
    if any(f"${name}" in block or f"${{{name}}}" in block for name in VARIABLES[1:]):
        env["CHAT_ID"], env["MESSAGE_ID"], env["USER_MESSAGE_ID"] = fresh_chat()
    method, path = describe_request(words, env)
    with tempfile.TemporaryDirectory(prefix="ai-chat-readme-") as tmp:
        head_file = os.path.join(tmp, "head")
        script = 'curl() { command curl -D "$E2E_HEAD_FILE" "$@"; }\n' + block
        proc = subprocess.run(["/bin/bash", "-c", script], env={**os.environ, **env, "E2E_HEAD_FILE": head_file},
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT, cwd=tmp)
        shown = f"{method} {path}\n$ {block.strip()}\nstdout: {proc.stdout[:600]!r}\nstderr: {proc.stderr[:600]!r}"
        assert proc.returncode == 0, f"curl exited with status {proc.returncode}:\n{shown}"
        with open(head_file, encoding="latin-1") as f:
            status, headers = parse_head(f.read())
    body = proc.stdout
    if includes_head(words):  # -i: the head is printed before the body
        body = re.split(rb"\r?\n\r?\n", body, maxsplit=1)[1] if re.search(rb"\r?\n\r?\n", body) else b""
    assert status < 400, f"the example answered {status}:\n{shown}"
    resp = Response(status, headers, body)
    check_schema(method, path, resp, raw_request=f"{block.strip()}  (as {method} {path})".encode())
    if not openapi_check.active():  # until the document lands, at least the JSON must be JSON
        media = headers.get("content-type", "").split(";")[0].strip()
        if media == "application/json" and body:
            resp.data()
    if "-N" in words or any(w.startswith("-") and not w.startswith("--") and "N" in w for w in words[1:]):
        media = headers.get("content-type", "").split(";")[0].strip()
        assert media == "text/event-stream", f"the streaming example is not text/event-stream:\n{shown}"
        events = openapi_check.parse_sse(body.decode("utf-8"))
        names = [name for name, _ in events]
        assert names and names[-1] == "done" and names.count("done") == 1, \
            f"the stream does not end with one done event: {names}:\n{shown}"


def _example_name(i, block):
    try:
        method, path = describe_request(curl_words(block), {"API": "http://x", "CHAT_ID": "ID",
                                                             "MESSAGE_ID": "N", "USER_MESSAGE_ID": "U"})
        slug = re.sub(r"[^a-z0-9]+", "_", f"{method} {path.split('?')[0]}".lower()).strip("_")
        slug += "_root" if path.split("?")[0] == "/" else ""
        slug += "".join(f"_{key}" for key in ("newest", "before") if f"{key}=" in path)
        slug += "_stream" if '"stream": true' in block else ""
        return f"readme_examples.{i:02d}_{slug}"
    except AssertionError:
        return f"readme_examples.{i:02d}_not_a_curl_command"


def _register():
    try:
        blocks = sh_blocks()
    except AssertionError as e:
        def missing_section(e=e):
            raise e
        add_test("readme_examples.section", missing_section)
        return
    for i, block in enumerate(blocks, 1):
        add_test(_example_name(i, block), lambda block=block: run_example(block))

    def covers_every_endpoint():
        assert blocks, "the Examples section has no ```sh blocks"
        paths = {}
        for m, t in REQUIRED:
            paths.setdefault(t, {})[m.lower()] = {}
        doc = openapi_check.Document({"paths": paths})
        shown = set()
        for block in blocks:
            method, path = describe_request(curl_words(block), {"API": "http://x", "CHAT_ID": "ID",
                                                                "MESSAGE_ID": "1", "USER_MESSAGE_ID": "2"})
            found = doc.match_path(path.split("?")[0])
            if found and method.lower() in found[1]:
                shown.add((method, found[0]))
        missing = [f"{m} {t}" for m, t in REQUIRED if (m, t) not in shown]
        assert not missing, f"README's Examples show no {', '.join(missing)}"
        paged = [b for b in blocks if "/messages" in b and "newest=true" in b]
        before = [b for b in blocks if "/messages" in b and "before=" in b]
        streamed = [b for b in blocks if '"stream": true' in b]
        assert paged and before and streamed, "README's Examples miss newest=true, before= or a streaming chat"

    add_test("readme_examples.covers_every_endpoint", covers_every_endpoint)


_register()
