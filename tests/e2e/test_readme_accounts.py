"""README's "## Accounts" run as written: its ```sh blocks, in order, each one curl command, against a
stack in AUTH=token; after the login block TOKEN is that answer's access_token.  Every answer must be
a success and what the OpenAPI document describes; the account left is checked in the database.
After the POST /auth/keys block KEY is the key answered and KEY_ID its id."""

import json
import os
import re
import subprocess
import tempfile

from auth_util import TOKEN_ENV
from harness import ROOT, Response, Stack, check_schema, test
from provider import model_env, shared_provider
from test_readme_examples import curl_words, describe_request, parse_head


def accounts_blocks():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Accounts\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Accounts' section followed by another '## ' section"
    return re.findall(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", m.group(1), re.S | re.M)


@test
def readme_accounts_examples_run():
    blocks = accounts_blocks()
    assert len(blocks) >= 6, f"only {len(blocks)} examples in Accounts"
    with Stack(env={**model_env(shared_provider()), **TOKEN_ENV, "WORKER_PROCESSES": "1"}) as s:
        env = {"API": s.url, "TOKEN": ""}
        shown_paths = []
        for block in blocks:
            words = curl_words(block)
            method, path = describe_request(words, env)
            shown_paths.append((method, path.split("?")[0]))
            with tempfile.TemporaryDirectory(prefix="ai-chat-readme-") as tmp:
                head_file = os.path.join(tmp, "head")
                script = 'curl() { command curl -D "$E2E_HEAD_FILE" "$@"; }\n' + block
                proc = subprocess.run(["/bin/bash", "-c", script], env={**os.environ, **env, "E2E_HEAD_FILE": head_file},
                                      stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=tmp)
                shown = f"{method} {path}\n$ {block.strip()}\nstdout: {proc.stdout[:600]!r}"
                assert proc.returncode == 0, shown
                with open(head_file, encoding="latin-1") as f:
                    status, headers = parse_head(f.read())
            assert status < 400, f"answered {status}:\n{shown}"
            check_schema(method, path, Response(status, headers, proc.stdout), raw_request=block.encode())
            if path == "/auth/login":
                env["TOKEN"] = json.loads(proc.stdout)["access_token"]
            if (method, path) == ("POST", "/auth/keys"):
                made = json.loads(proc.stdout)
                env["KEY"], env["KEY_ID"] = made["key"], made["id"]
        for want in (("POST", "/auth/register"), ("POST", "/auth/login"), ("POST", "/auth/token"),
                     ("GET", "/auth/me"), ("POST", "/chat"), ("POST", "/auth/logout"), ("POST", "/auth/keys"),
                     ("GET", "/auth/keys"), ("DELETE", f"/auth/keys/{env.get('KEY_ID')}")):
            assert want in shown_paths, f"README's Accounts shows no {want}"
        (user_id,) = s.sql("SELECT id FROM users WHERE email = 'alice@example.com'")[0]
        assert s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user_id,))[0][0] == 1
        assert s.sql("SELECT token_version FROM users")[0][0] == 1, "the logout did not happen"
        # the key worked after the logout (every answer was a success), and was revoked at the end
        assert s.sql("SELECT count(*) FROM api_keys")[0][0] == 0, "the key was not revoked"
