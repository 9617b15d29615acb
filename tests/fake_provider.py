#!/usr/bin/env python3
"""A stand-in for Groq's OpenAI-compatible API, for the tests and the benchmark.

POST <any prefix>/chat/completions answers like Groq does, plain or as server-sent events.
The reply is "Echo: <the last user message>" unless a directive says otherwise.

Faults are asked for by directives in the LAST user message, so concurrent tests never interfere:
  #fault=429        429 with retry-after (#retry_after=N, default 1)
  #fault=500        500 with an error body
  #fault=drop       close the connection without an answer
  #fault=malformed  200 with a body that is not JSON
  #fault=hang       never answer (until the client gives up)
  #fault=midstream  (stream) send a few pieces, then drop the connection
  #fault=error_event (stream) send a piece, then an error event
  #fault=echo_key   400 whose error message quotes the API key sent, whole and masked
  #fail_times=N     apply the fault only to the first N attempts of this message, then answer
  #ok_times=N       answer the first N attempts of this message, then apply the fault
  #delay=S          wait S seconds before answering
  #chunk_delay=S    (stream) wait S seconds between pieces
  #reply=TEXT       reply TEXT (JSON-decoded if it starts with a quote) instead of the echo
  #words=N          reply N words
  #piece_bytes=B    (with #words) each word is B bytes long (a large reply in few pieces)
  #reasoning=N      (stream) N pieces of reasoning (delta.reasoning, as gpt-oss sends) before the reply
  #reasoning_delay=S (stream) wait S seconds after each piece of reasoning
A wrong key (anything but Bearer test-key, or FAKE_PROVIDER_KEY) is 401 whose message quotes the key
masked, as OpenAI's does ("Incorrect API key provided: wro***-key."); a model whose id contains
"unknown" is 404 model_not_found.  GET /_requests returns every request body received (JSON list);
GET /_request_ids the X-Request-Id header of each (null when absent), in the same order;
DELETE /_requests clears them (and every plan).  POST /_plan {"match": TEXT, "steps": [...]} scripts the
attempts whose last user message contains TEXT, one step each, in order: a step is {"fault": one of the
faults above or null, "reply": TEXT, "delay": S, "chunk_delay": S (each optional)}; when the steps run out, the
message's directives apply again.  --delay S delays every answer (the 1 s and 2 s provider tests).
"""
import argparse
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("FAKE_PROVIDER_KEY", "test-key")
LOCK = threading.Lock()
REQUESTS = []
REQUEST_IDS = []   # the X-Request-Id of each of REQUESTS
ATTEMPTS = {}
PLANS = []   # [match, [steps]]
ARGS = None


def directives(text):
    return dict(re.findall(r"#(\w+)=(\S+)", text or ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/_request_ids"):
            with LOCK:
                self.send_json(200, REQUEST_IDS)
            return
        if self.path.endswith("/_requests"):
            with LOCK:
                self.send_json(200, REQUESTS)
            return
        if self.path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "openai/gpt-oss-20b", "object": "model"}]})
            return
        self.send_json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})

    def do_DELETE(self):
        with LOCK:
            REQUESTS.clear()
            REQUEST_IDS.clear()
            ATTEMPTS.clear()
            PLANS.clear()
        self.send_json(200, {"ok": True})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            req = json.loads(raw)
        except ValueError:
            self.send_json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
            return
        if self.path.endswith("/_plan"):
            with LOCK:
                PLANS.append([req["match"], list(req["steps"])])
            self.send_json(200, {"ok": True})
            return
        with LOCK:
            REQUESTS.append(req)
            REQUEST_IDS.append(self.headers.get("X-Request-Id"))
        if not self.path.endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})
            return
        sent_key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if sent_key != KEY:
            masked = sent_key[:3] + "***" + sent_key[-4:]
            self.send_json(401, {"error": {"message": f"Incorrect API key provided: {masked}.",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        model = req.get("model", "")
        if "unknown" in model:
            self.send_json(404, {"error": {"message": "The model `%s` does not exist" % model,
                                           "type": "invalid_request_error", "code": "model_not_found"}})
            return
        msgs = req.get("messages") or []
        last = next((m.get("content", "") for m in reversed(msgs) if m.get("role") == "user"), "")
        d = directives(last)
        with LOCK:
            n = ATTEMPTS.get(last, 0) + 1
            ATTEMPTS[last] = n
        fault = d.get("fault")
        if fault and "fail_times" in d and n > int(d["fail_times"]):
            fault = None
        if fault and "ok_times" in d and n <= int(d["ok_times"]):
            fault = None
        step = None
        with LOCK:
            for plan in PLANS:
                if plan[0] in last and plan[1]:
                    step = plan[1].pop(0)
                    break
        if step is not None:
            fault = step.get("fault")
            if "reply" in step:
                d["reply"] = json.dumps(step["reply"])
            for k in ("delay", "chunk_delay"):
                if k in step:
                    d[k] = step[k]
        delay = float(d.get("delay", 0)) + ARGS.delay
        if delay:
            time.sleep(delay)
        if fault == "429":
            self.send_json(429, {"error": {"message": "Rate limit reached", "type": "tokens",
                                           "code": "rate_limit_exceeded"}},
                           {"retry-after": d.get("retry_after", "1")})
            return
        if fault == "echo_key":
            masked = sent_key[:3] + "***" + sent_key[-4:]
            self.send_json(400, {"error": {"message": f"Bad request with key {sent_key} ({masked})",
                                           "type": "invalid_request_error", "code": "invalid_request"}})
            return
        if fault == "500":
            self.send_json(500, {"error": {"message": "Internal server error", "type": "internal_server_error"}})
            return
        if fault == "drop":
            self.close_now()
            return
        if fault == "hang":
            time.sleep(3600)
            return
        if fault == "malformed":
            body = b"<html>not json"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        reply = self.reply_text(last, d)
        prompt_tokens = sum(len(m.get("content", "")) for m in msgs) // 4 + 1
        pieces = re.findall(r"\S*\s*", reply)
        pieces = [p for p in pieces if p] or [""]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                 "total_tokens": prompt_tokens + len(pieces)}
        if req.get("stream"):
            self.stream(model, pieces, usage, fault, float(d.get("chunk_delay", 0)),
                        int(d.get("reasoning", 0)), float(d.get("reasoning_delay", 0)))
            return
        self.send_json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": usage, "x_groq": {"id": "req_fake"}})

    def reply_text(self, last, d):
        if "reply" in d:
            r = d["reply"]
            return json.loads(r) if r.startswith('"') else r
        if "words" in d and "piece_bytes" in d:
            width = max(2, int(d["piece_bytes"]))
            return " ".join(("w%d" % i).ljust(width - 1, "x") for i in range(int(d["words"])))
        if "words" in d:
            return " ".join("w%d" % i for i in range(int(d["words"])))
        return "Echo: " + last

    def close_now(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    def stream(self, model, pieces, usage, fault, chunk_delay, reasoning=0, reasoning_delay=0.0):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        try:
            chunk(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]))
            for i in range(reasoning):
                chunk(dict(base, choices=[{"index": 0, "delta": {"reasoning": f"thought {i}. "},
                                           "finish_reason": None}]))
                if reasoning_delay:
                    time.sleep(reasoning_delay)
            for i, p in enumerate(pieces):
                if fault == "midstream" and i == 2:
                    self.close_now()
                    return
                if fault == "error_event" and i == 1:
                    chunk({"error": {"message": "Service overloaded", "type": "internal_server_error"}})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                chunk(dict(base, choices=[{"index": 0, "delta": {"content": p}, "finish_reason": None}]))
                if chunk_delay:
                    time.sleep(chunk_delay)
            chunk(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       x_groq={"id": "req_fake", "usage": usage}))
            chunk(b"[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ARGS = ap.parse_args()
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    port = srv.server_address[1]
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    print("fake provider on 127.0.0.1:%d" % port, file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
