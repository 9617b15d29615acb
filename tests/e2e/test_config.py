"""Configuration: bad settings stop the start naming the setting; .env is read, the environment wins."""

import os
import shutil
import subprocess
import tempfile

from api import check_chat_stored, create_chat, expect, new_user
from harness import SETTINGS, WORKER, Stack, encode_json, sqlite_only, test

BAD = [  # setting, value
    ("WORKER_THREADS", "0"), ("WORKER_THREADS", "1025"), ("WORKER_THREADS", "abc"), ("WORKER_THREADS", "8x"),
    ("WORKER_PROCESSES", "0"), ("WORKER_PROCESSES", "65"), ("WORKER_PROCESSES", "-1"),
    ("MAX_BODY_BYTES", "1023"), ("MAX_BODY_BYTES", "67108865"), ("MAX_BODY_BYTES", "1MiB"),
    ("DB_BUSY_TIMEOUT_MS", "-1"), ("DB_BUSY_TIMEOUT_MS", "600001"), ("DB_BUSY_TIMEOUT_MS", "soon"),
    ("DATABASE_URL", "postgres:x"), ("DATABASE_URL", "sqlite:"), ("DATABASE_URL", "mysql://u@h/db"),
    ("FCGI_SOCKET_MODE", "999"), ("FCGI_SOCKET_MODE", "rw"),
    ("PORT", "abc"), ("PORT", "70000"),
]
GOOD = [
    {"WORKER_THREADS": "1"}, {"WORKER_THREADS": "1024"}, {"WORKER_PROCESSES": "1"}, {"WORKER_PROCESSES": "64"},
    {"MAX_BODY_BYTES": "1024"}, {"MAX_BODY_BYTES": "67108864"}, {"DB_BUSY_TIMEOUT_MS": "0"},
    {"DB_BUSY_TIMEOUT_MS": "600000"}, {"CORS_ORIGINS": "https://a.example,https://b.example"},
    {"CORS_ORIGINS": "*"}, {"FCGI_SOCKET_MODE": "0600"}, {"DATABASE_URL": "sqlite:///./relative.db"},
]


def check_config(env=None, dotenv=None):
    """Runs build/ai-chat-fcgi --check-config in a fresh directory; returns (exit status, output)."""
    tmp = tempfile.mkdtemp(prefix="ai-chat-e2e-config-")
    try:
        full_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        full_env["DATABASE_URL"] = f"sqlite:///{tmp}/config.db"
        full_env["AUTH"] = "none"  # AUTH=token's own settings: test_auth.py
        full_env.update(env or {})
        if dotenv is not None:
            with open(os.path.join(tmp, ".env"), "w") as f:
                f.write(dotenv)
        done = subprocess.run([str(WORKER), "--check-config"], cwd=tmp, env=full_env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30)
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def bad_settings_are_named():
    for name, value in BAD:
        status, output = check_config({name: value})
        assert status != 0, f"{name}={value!r}: --check-config exited 0: {output!r}"
        assert name in output, f"{name}={value!r}: the message does not name {name}: {output!r}"


@test
def good_settings_pass():
    assert check_config()[0] == 0, check_config()
    for env in GOOD:
        status, output = check_config(env)
        assert status == 0, f"{env}: --check-config exited {status}: {output!r}"


@test
def unusable_database_fails_check():
    status, output = check_config({"DATABASE_URL": "sqlite:////nonexistent-dir-e2e/sub/x.db"})
    assert status != 0, f"--check-config exited 0 for a database that cannot be created: {output!r}"
    assert output.strip(), "no message"


@test
def dotenv_is_read_and_environment_wins():
    dotenv = "# a comment\n\nWORKER_THREADS=0\n"
    status, output = check_config(dotenv=dotenv)
    assert status != 0 and "WORKER_THREADS" in output, f".env's WORKER_THREADS=0 was not read: {output!r}"
    status, output = check_config({"WORKER_THREADS": "4"}, dotenv=dotenv)
    assert status == 0, f"the environment did not win over .env: {output!r}"
    for line in ('MAX_BODY_BYTES="2048"\n', "MAX_BODY_BYTES='2048'\n", "# WORKER_THREADS=0\n",
                 "  # WORKER_THREADS=0\n", "CORS_ORIGINS=https://a.example\n"):
        status, output = check_config(dotenv=line)
        assert status == 0, f"a good .env line {line!r} was refused: {output!r}"
    for line in ('MAX_BODY_BYTES="12"\n', "DB_BUSY_TIMEOUT_MS=-5\n", "WORKER_PROCESSES='0'\n"):
        status, output = check_config(dotenv="# x\n" + line)
        assert status != 0, f"a bad .env line {line!r} was accepted (was .env read?): {output!r}"


def post_size(s, user, size):
    base = len(encode_json({"user_id": user, "p": ""}))
    return s.request("POST", "/chats", json={"user_id": user, "p": "x" * (size - base)})


@test
def stack_reads_dotenv():
    dotenv = ("# settings for the e2e test\n"
              "MAX_BODY_BYTES=\"2048\"\n"
              "CORS_ORIGINS='https://a.example'\n"
              "WORKER_THREADS=0   \n"
              "\n")
    with Stack(env={"MAX_BODY_BYTES": "4096", "WORKER_THREADS": "2", "WORKER_PROCESSES": "1"},
               dotenv=dotenv) as s:
        user = new_user()
        resp = post_size(s, user, 4096)
        assert resp.status == 201, f"4096 bytes with MAX_BODY_BYTES=4096 in the environment: {resp.describe()}"
        resp = post_size(s, user, 4097)
        assert resp.status == 413 and resp.data() == {
            "detail": "Request body too large: the limit is 4096 bytes"}, resp.describe()
        headers, _ = expect(s, "GET", "/health", 200, headers={"Origin": "https://a.example"})
        assert headers.get("access-control-allow-origin") == "https://a.example", headers
        headers, _ = expect(s, "GET", "/health", 200, headers={"Origin": "https://b.example"})
        assert "access-control-allow-origin" not in headers, headers


@test
def relative_database_url():
    sqlite_only("a sqlite:/// URL relative to the working directory")
    with Stack(database_url="sqlite:///./relative.db", db_file="relative.db",
               env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        chat = create_chat(s, user, "relative")
        assert s.db_path.exists()
        check_chat_stored(s, chat)


@test
def bad_model_registry_stops_the_start_naming_the_line():
    tmp = tempfile.mkdtemp(prefix="ai-chat-e2e-models-")
    try:
        path = os.path.join(tmp, "models.conf")
        with open(path, "w") as f:
            f.write("# registry\nfast openai/gpt-oss-20b\nsmart openai/gpt-oss-120b temperature=hot\n")
        status, output = check_config({"MODELS_FILE": path})
        assert status != 0, output
        assert path in output and "line 3" in output and "temperature" in output, output
        status, output = check_config({"MODELS_FILE": os.path.join(tmp, "missing.conf")})
        assert status != 0 and "MODELS_FILE" in output, output
        with open(path, "w") as f:
            f.write("fast openai/gpt-oss-20b\n")
        assert check_config({"MODELS_FILE": path})[0] == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def provider_settings_are_checked():
    for name, value in [("GROQ_BASE_URL", "ftp://x"), ("PROVIDER_RETRIES", "11"), ("PROVIDER_TIMEOUT_S", "0"),
                        ("SSE_HEARTBEAT_S", "0"), ("PROVIDER_CONNECT_TIMEOUT_MS", "50"),
                        ("GROQ_API_KEY", "has space")]:
        status, output = check_config({name: value})
        assert status != 0 and name in output, f"{name}={value!r}: {status} {output!r}"
        assert value not in output or name != "GROQ_API_KEY", f"the key is echoed: {output!r}"
