"""README's "## Using OpenAI clients" run as written: its ```sh blocks (curl, with $API and $TOKEN set) and
its ```js block (the official openai package, with the README's http://localhost:8080 pointed at the stack
and TOKEN set) against a stack in AUTH=token talking to the fake provider."""

import atexit
import json
import os
import re
import shutil
import subprocess

from auth_util import TOKEN_ENV, account
from harness import ROOT, Stack, test
from provider import model_env, shared_provider

README = ROOT / "README.md"
SDK_DIR = ROOT / "tests" / "openai"


def section():
    m = re.search(r"^## Using OpenAI clients\n(.*?)(?=^## )", README.read_text(), re.S | re.M)
    assert m, "README.md has no '## Using OpenAI clients' section followed by another '## ' section"
    return m.group(1)


def blocks(lang):
    return re.findall(rf"^```{lang}[ \t]*\n(.*?)^```[ \t]*$", section(), re.S | re.M)


_stack = None


def stack():
    """(the stack in AUTH=token, a token of an account of it), started on first use."""
    global _stack
    if _stack is None:
        s = Stack(env={**model_env(shared_provider()), **TOKEN_ENV, "WORKER_PROCESSES": "1"}).start()
        atexit.register(s.stop)
        _stack = (s, account(s, "readme")[2])
    return _stack


@test
def readme_openai_curl_examples_run():
    s, token = stack()
    found = blocks("sh")
    assert len(found) == 3, found
    outs = []
    for block in found:
        assert block.strip().startswith("curl ") and "$(" not in block, block
        out = subprocess.run(["bash", "-c", block], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "API": s.url, "TOKEN": token})
        assert out.returncode == 0, (block, out.stderr)
        outs.append(out.stdout)
    models = json.loads(outs[0])
    assert models["object"] == "list" and "fast" in [m["id"] for m in models["data"]], models
    reply = json.loads(outs[1])
    assert reply["choices"][0]["message"]["content"] == "Echo: Hello, AI!", reply
    assert outs[2].endswith("data: [DONE]\n\n") and '"delta":{"role":"assistant"' in outs[2], outs[2][-500:]


@test
def readme_openai_sdk_example_runs():
    node = shutil.which("node")
    assert node and (SDK_DIR / "node_modules" / "openai").is_dir(), "node or tests/openai/node_modules missing (make sdk)"
    s, token = stack()
    found = blocks("js")
    assert len(found) == 1, found
    code = found[0]
    assert "http://localhost:8080/v1" in code, code
    script = SDK_DIR / f".readme-example-{os.getpid()}.mjs"   # beside node_modules, for the import
    script.write_text(code.replace("http://localhost:8080", s.url))
    try:
        out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, cwd=SDK_DIR,
                             env={**os.environ, "TOKEN": token})
    finally:
        script.unlink()
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Echo: Hello, AI!\nEcho: Tell me a story", repr(out.stdout)
