"""Request ids (X-Request-Id), LOG_FORMAT=json, and GET /metrics with the real Prometheus tools."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import ROOT, WORKER, Stack, free_port, test
from provider import model_env, new_chat, send, shared, shared_provider, stream_chat, tag

NGINX_ID = re.compile(r"^[0-9a-f]{32}$")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def scrape(s, validate=True):
    resp = s.request("GET", "/metrics", validate=validate)
    return resp


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


# --------------------------------------------------------------------------------------------------
# Request ids


@test
def every_answer_carries_the_web_servers_request_id():
    _, s = shared()
    ids = set()
    for method, path, status in (("GET", "/health", 200), ("GET", "/nowhere", 404), ("DELETE", "/health", 405),
                                 ("GET", "/chats", 422)):
        resp = s.request(method, path)
        assert resp.status == status, resp.describe()
        rid = resp.headers.get("x-request-id", "")
        assert NGINX_ID.match(rid), f"{method} {path}: X-Request-Id {rid!r} is not nginx's $request_id"
        ids.add(rid)
    assert len(ids) == 4, ids


@test
def a_clients_request_id_is_taken_only_when_trusted():
    _, s = shared()
    resp = s.request("GET", "/health", headers={"X-Request-Id": "client-chosen-1"})
    assert NGINX_ID.match(resp.headers["x-request-id"]), resp.headers
    with Stack(env={"TRUST_REQUEST_ID": "1", "WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as t:
        resp = t.request("GET", "/health", headers={"X-Request-Id": "client-chosen-1"})
        assert resp.headers["x-request-id"] == "client-chosen-1", resp.headers
        # One we could not send back or log as it is: replaced by the web server's.
        for bad in ("has space", "x" * 65, "quote\"d"):
            resp = t.request("GET", "/health", headers={"X-Request-Id": bad})
            assert NGINX_ID.match(resp.headers["x-request-id"]), (bad, resp.headers)


@test
def the_request_id_reaches_the_provider_and_the_log():
    log = os.path.join(tempfile.mkdtemp(prefix="ai-chat-log-"), "worker.log")
    provider = shared_provider()
    with Stack(env=model_env(provider, LOG_FILE=log)) as s:
        user, chat_id = new_chat(s)
        t = tag()
        status, headers, data = send(s, chat_id, user, f"plain {t}")
        assert status == 200, data
        plain_id = headers["x-request-id"]
        with stream_chat(s, chat_id, user, f"streamed {t}") as es:
            events = es.read_all()
            stream_id = es.headers["x-request-id"]
        assert events[-1].name == "done", events
        assert provider.request_ids_for(f"plain {t}") == [plain_id]
        assert provider.request_ids_for(f"streamed {t}") == [stream_id]
    text = read(log)
    for rid, route in ((plain_id, "/chat"), (stream_id, "/chat")):
        lines = [line for line in text.splitlines() if f" request_id={rid}" in line]
        assert len(lines) == 1, (rid, text[-3000:])
        assert f" route={route} " in lines[0] and " status=200 " in lines[0], lines[0]


@test
def json_logs_are_one_object_a_line():
    log = os.path.join(tempfile.mkdtemp(prefix="ai-chat-log-"), "worker.log")
    with Stack(env=model_env(shared_provider(), LOG_FILE=log, LOG_FORMAT="json")) as s:
        user, chat_id = new_chat(s)
        status, headers, data = send(s, chat_id, user, f"json log {tag()}")
        assert status == 200, data
        rid = headers["x-request-id"]
        missing = s.request("GET", f"/chats/{chat_id}?user_id=someone-else")
        assert missing.status == 404
    lines = [json.loads(line) for line in read(log).splitlines() if line.strip()]   # every line is JSON
    assert lines and all({"time", "level"} <= set(o) for o in lines), lines[:3]
    sends = [o for o in lines if o.get("msg") == "request" and o.get("request_id") == rid]
    assert len(sends) == 1, lines[-5:]
    o = sends[0]
    assert (o["level"], o["method"], o["route"], o["status"], o["user"], o["model"]) == \
        ("info", "POST", "/chat", 200, user, "openai/gpt-oss-20b"), o
    assert o["tokens"] == {"prompt": data["usage"]["prompt_tokens"],
                           "completion": data["usage"]["completion_tokens"]}, o
    assert isinstance(o["duration_ms"], float) and o["path"] == "/chat", o
    gets = [o for o in lines if o.get("msg") == "request" and o.get("status") == 404]
    assert gets and gets[-1]["route"] == "/chats/{chat_id}" and gets[-1]["user"] == "someone-else", gets
    out = subprocess.run([str(WORKER), "--check-config"], capture_output=True, text=True, timeout=10,
                         env={"PATH": os.environ["PATH"], "LOG_FORMAT": "yaml"}, cwd=tempfile.mkdtemp())
    assert out.returncode == 2 and "LOG_FORMAT: 'yaml' is not text or json" in out.stderr, out


# --------------------------------------------------------------------------------------------------
# Metrics


def metrics_env(**settings):
    return model_env(shared_provider(), METRICS="1", WORKER_PROCESSES="2", WORKER_THREADS="4", **settings)


@test
def metrics_are_off_unless_asked_for_and_only_for_allowed_addresses():
    _, s = shared()
    resp = s.request("GET", "/metrics")
    assert resp.status == 404 and resp.data() == {"detail": "Not Found"}, resp.describe()
    with Stack(env=metrics_env(METRICS_ALLOW="10.0.0.0/8, 2001:db8::/32")) as t:
        resp = t.request("GET", "/metrics")
        assert resp.status == 404 and resp.data() == {"detail": "Not Found"}, resp.describe()
    out = subprocess.run([str(WORKER), "--check-config"], capture_output=True, text=True, timeout=10,
                         env={"PATH": os.environ["PATH"], "METRICS_ALLOW": "10.0.0.0/33"}, cwd=tempfile.mkdtemp())
    assert out.returncode == 2 and "METRICS_ALLOW: '10.0.0.0/33'" in out.stderr, out


@test
def metrics_count_every_worker_process_and_pass_promtool():
    with Stack(env=metrics_env(PROVIDER_RETRIES="1")) as s:
        before = scrape(s)
        assert before.status == 200, before.describe()
        assert before.headers["content-type"].startswith("text/plain; version=0.0.4"), before.headers
        base = value(before.body.decode(), "http_requests_total", route="/health", method="GET", status="200")
        for _ in range(30):
            assert s.request("GET", "/health").status == 200
        user, chat_id = new_chat(s)
        t = tag()
        status, _, data = send(s, chat_id, user, f"counted {t}")
        assert status == 200, data
        with stream_chat(s, chat_id, user, f"streamed {t}") as es:
            assert es.read_all()[-1].name == "done"
        status, _, data = send(s, chat_id, user, f"limited {t} #fault=429 #retry_after=0")
        assert status == 503, data
        # Two worker processes answer in turn: every scrape, whichever answers it, sees all 30.
        for _ in range(6):
            text = scrape(s).body.decode()
            assert value(text, "http_requests_total", route="/health", method="GET", status="200") == base + 30
        assert value(text, "server_processes") == 3, text   # the supervisor and its two workers
        assert value(text, "http_requests_total", route="/chats/{chat_id}", method="GET", status="200") == 0
        assert value(text, "http_requests_total", route="/chats", method="POST", status="201") == 1
        assert value(text, "http_requests_total", route="/chat", method="POST", status="200") == 2
        assert value(text, "provider_requests_total", model="fast", outcome="ok") == 2, text
        assert value(text, "provider_requests_total", model="fast", outcome="rate_limited") == 1, text
        assert value(text, "provider_retries_total") == 1, text
        assert value(text, "rate_limited_total", limit="provider") == 1, text
        assert value(text, "llm_tokens_total", model="fast", kind="completion") >= 4, text
        assert value(text, "provider_time_to_first_token_seconds_count", model="fast") == 1, text
        assert value(text, "provider_request_duration_seconds_count", model="fast") == 3, text
        assert value(text, "http_request_duration_seconds_bucket", route="/health", le="+Inf") == \
            value(text, "http_request_duration_seconds_count", route="/health"), text
        assert value(text, "chats_in_flight") == 0, text
        assert value(text, "process_resident_memory_bytes") > 0 and value(text, "process_open_fds") > 0, text
        assert user not in text and chat_id not in text and t not in text, "a user's id or content in the metrics"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian's prometheus package: make deps)"
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), \
        f"promtool check metrics: {out.returncode}\n{out.stdout}{out.stderr}"


@test
def metrics_prometheus_scrapes_the_stack_and_counts_our_requests():
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed (Debian's prometheus package: make deps)"
    tmp = tempfile.mkdtemp(prefix="ai-chat-prometheus-")
    with Stack(env=metrics_env()) as s:
        user = f"prom-{tag()}"
        for i in range(7):
            status, _, data = s.json("POST", "/chats", json={"user_id": user, "title": f"c{i}"})
            assert status == 201, data
        port = free_port()
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: ai-chat\n    metrics_path: /metrics\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{s.port}']\n")
        proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "prometheus.log"), "wb"))
        try:
            query = urllib.parse.quote('sum(http_requests_total{job="ai-chat",route="/chats",method="POST",status="201"})')
            deadline = time.monotonic() + 40
            seen = None
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={query}",
                                                timeout=2) as resp:
                        answer = json.loads(resp.read())
                    result = answer["data"]["result"]
                    seen = result[0]["value"][1] if result else None
                    if seen == "7":
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            assert seen == "7", f"Prometheus saw {seen!r}; its log:\n{read(os.path.join(tmp, 'prometheus.log'))[-2000:]}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as resp:
                targets = json.loads(resp.read())["data"]["activeTargets"]
            assert [t["health"] for t in targets] == ["up"], targets
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


def fastcgi_passes(text):
    """(line, the fastcgi_param values it gets) for every fastcgi_pass: nginx gives a block the
    fastcgi_params of the nearest enclosing level that has any (a level with one of its own inherits none)."""
    stack = [[]]        # the params of each open block, outermost first
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        for part in re.split(r"(?<=[{};])", line):
            part = part.strip()
            if part.endswith("{"):
                stack.append([])
            elif part == "}":
                stack.pop()
            elif part.startswith("fastcgi_param "):
                stack[-1].append(part[len("fastcgi_param "):].rstrip(";").strip())
            elif part.startswith("fastcgi_pass "):
                out.append((n, list(stack)))    # the blocks, read to their ends before they are asked
    return [(n, next((p for p in reversed(blocks) if p), [])) for n, blocks in out]


@test
def every_shipped_nginx_configuration_passes_the_request_id():
    found = []
    for path in [ROOT / "nginx.conf.example", *sorted((ROOT / "conf").glob("*.conf"))]:
        text = path.read_text()
        if "fastcgi_pass" not in text:
            continue
        found.append(path.name)
        for line, params in fastcgi_passes(text):
            assert any(re.match(r"REQUEST_ID\s+\$request_id$", p) for p in params), \
                f"{path}:{line}: the fastcgi_pass there gets no fastcgi_param REQUEST_ID $request_id"
    assert "nginx.conf.example" in found and "nginx-site.conf" in found, found
