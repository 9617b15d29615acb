"""Operations: the request log (what it says, and what it never says) and GET /health?deep=1."""

import os
import tempfile

from harness import Stack, free_port, test
from provider import API_KEY, model_env, new_chat, send, shared_provider, tag


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


@test
def request_lines_name_the_request_but_never_the_key_or_the_message():
    log = os.path.join(tempfile.mkdtemp(prefix="ai-chat-log-"), "worker.log")
    with Stack(env=model_env(shared_provider(), LOG_FILE=log)) as s:
        user, chat_id = new_chat(s)
        secret = f"my secret message {tag()}"
        status, _, data = send(s, chat_id, user, secret)
        assert status == 200, data
    text = read(log)
    lines = [line for line in text.splitlines() if " info request method=POST path=/chat " in line]
    assert len(lines) == 1, text[-2000:]
    line = lines[0]
    assert " status=200 " in line and f' user_id="{user}" ' in line, line
    assert " model=openai/gpt-oss-20b " in line, line
    assert f" tokens={data['usage']['prompt_tokens']}+{data['usage']['completion_tokens']}" in line, line
    assert API_KEY not in text, "the API key is in the log"
    assert secret not in text, "message content is in the log at the default level"


@test
def debug_with_log_content_shows_the_message():
    log = os.path.join(tempfile.mkdtemp(prefix="ai-chat-log-"), "worker.log")
    with Stack(env=model_env(shared_provider(), LOG_FILE=log, LOG_LEVEL="debug", LOG_CONTENT="1")) as s:
        user, chat_id = new_chat(s)
        message = f"show me in the log {tag()}"
        assert send(s, chat_id, user, message)[0] == 200
    text = read(log)
    assert message in text and API_KEY not in text, text[-2000:]


@test
def warn_level_writes_no_request_lines():
    log = os.path.join(tempfile.mkdtemp(prefix="ai-chat-log-"), "worker.log")
    with Stack(env=model_env(shared_provider(), LOG_FILE=log, LOG_LEVEL="warn")) as s:
        assert s.json("GET", "/health")[0] == 200
    assert " info request " not in read(log)   # (the AUTH=none warning says "request" too)


@test
def deep_health_asks_the_provider():
    with Stack(env=model_env(shared_provider())) as s:
        status, _, data = s.json("GET", "/health?deep=1")
        assert (status, data) == (200, {"status": "healthy", "database": "ok", "provider": "ok"}), data
        status, _, data = s.json("GET", "/health?deep=maybe")
        assert status == 422 and data["detail"][0]["loc"] == ["query", "deep"], data
    # A provider nobody listens for, and no key: the database is fine, the provider is not.
    unreachable = model_env(None, GROQ_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    with Stack(env=unreachable) as s:
        assert s.json("GET", "/health")[0] == 200
        status, _, data = s.json("GET", "/health?deep=1")
        assert status == 503 and data["detail"].startswith("Provider unavailable: could not reach"), data
    with Stack(env=model_env(shared_provider(), GROQ_API_KEY="")) as s:
        status, _, data = s.json("GET", "/health?deep=1")
        assert (status, data) == (503, {"detail": "Provider unavailable: GROQ_API_KEY is not set"}), data
