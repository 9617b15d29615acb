"""Read deadlines: nothing a web server (or anyone on the worker's socket) sends slowly, or stops
sending, holds a worker thread past FCGI_READ_TIMEOUT_S; nginx reads bodies whole before passing them
on; a CGI request reads CONTENT_LENGTH bytes of stdin and no more, within the deadline."""

import json
import os
import socket
import struct
import subprocess
import tempfile
import time

from api import new_user
from fastcgi_client import BEGIN_REQUEST, PARAMS, RESPONDER, STDIN, _record, encode_params, socket_path
from harness import WORKER, Stack, encode_json, read_response, test

DEADLINE = 2   # FCGI_READ_TIMEOUT_S of these stacks


def stalled_env(threads):
    return {"WORKER_PROCESSES": "1", "WORKER_THREADS": str(threads), "FCGI_READ_TIMEOUT_S": str(DEADLINE)}


def raw_connection(s, data):
    """A connection straight to the worker's socket that sends data and then nothing."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path(s))
    sock.sendall(data)
    return sock


def half_sent_body(s, user):
    """A whole FastCGI request head for POST /chats, and 10 of its body's bytes."""
    body = encode_json({"user_id": user, "title": "never finished"})
    env = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/chats", "QUERY_STRING": "", "SCRIPT_NAME": "",
           "PATH_INFO": "/chats", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "application/json",
           "CONTENT_LENGTH": str(len(body))}
    out = _record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0))
    out += _record(PARAMS, encode_params(env)) + _record(PARAMS, b"") + _record(STDIN, body[:10])
    return raw_connection(s, out)


def closed_by_worker(sock, opened, within):
    """Waits for the worker to close sock; returns the seconds from opened, or fails."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        raise AssertionError(f"the worker kept a stalled connection open {within:.1f} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - opened


def timed_health(s, timeout=8):
    started = time.monotonic()
    resp = s.request("GET", "/health", timeout=timeout)
    return resp, time.monotonic() - started


@test
def connections_that_stall_in_their_records_freeze_nothing():
    # Regression: libfcgi read BEGIN_REQUEST and PARAMS inside FCGX_Accept_r with no timeout, while
    # the thread kept its acceptor slot: two connections that sent one byte froze the process.
    with Stack(env=stalled_env(4)) as s:
        opened = time.monotonic()
        stalled = [raw_connection(s, b"\x01") for _ in range(2)]
        time.sleep(0.3)
        for i in range(20):
            resp, took = timed_health(s)
            assert resp.status == 200 and took < 1.0, f"GET /health {i} took {took:.2f} s: {resp.describe()}"
        for sock in stalled:
            took = closed_by_worker(sock, opened, DEADLINE + 3)
            assert DEADLINE - 0.2 < took < DEADLINE + 1.5, f"closed after {took:.2f} s, deadline {DEADLINE} s"
            sock.close()
        assert timed_health(s)[0].status == 200


@test
def bodies_that_stall_hold_a_thread_until_the_deadline_only():
    # Regression: the body read had no deadline either; with 2 threads, 2 half-sent bodies on the
    # socket took the process for good.
    with Stack(env=stalled_env(2)) as s:
        user = new_user()
        opened = time.monotonic()
        stalled = [half_sent_body(s, user) for _ in range(2)]
        time.sleep(0.3)
        resp, took = timed_health(s)
        assert resp.status == 200, resp.describe()
        assert took < DEADLINE + 1.5, f"GET /health waited {took:.2f} s behind two stalled bodies"
        for sock in stalled:
            closed_by_worker(sock, opened, DEADLINE + 3)
            sock.close()
        assert s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user,)) == [(0,)], "a half body was stored"
        for i in range(10):
            resp, took = timed_health(s)
            assert resp.status == 200 and took < 1.0, f"GET /health {i}: {took:.2f} s {resp.describe()}"


@test
def a_slow_body_through_nginx_holds_no_worker_thread():
    # Regression: the shipped nginx configuration turned request buffering off, so a body trickled
    # through nginx held a thread; with one thread, three slow clients stopped the worker.
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "1"}) as s:
        user = new_user()
        body = encode_json({"user_id": user, "title": "slowly"})
        slow = []
        for _ in range(3):
            sock = s.connect()
            sock.sendall(b"POST /chats HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:5]))
            slow.append(sock)
        time.sleep(0.5)
        for i in range(10):
            resp, took = timed_health(s, timeout=5)
            assert resp.status == 200 and took < 1.0, f"GET /health {i}: {took:.2f} s {resp.describe()}"
        # Each body still arrives whole, and is answered, when its client gets round to it.
        for sock in slow:
            for b in body[5:]:
                sock.sendall(bytes([b]))
            resp = read_response(sock, "POST")
            sock.close()
            assert resp.status == 201 and resp.data()["title"] == "slowly", resp.describe()
        assert s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user,)) == [(3,)]


@test
def the_request_deadline_is_a_setting():
    with Stack(env=stalled_env(1) | {"FCGI_READ_TIMEOUT_S": "1"}) as s:
        opened = time.monotonic()
        sock = raw_connection(s, b"\x01\x01")
        took = closed_by_worker(sock, opened, 4)
        sock.close()
        assert 0.8 < took < 2.5, f"closed after {took:.2f} s with FCGI_READ_TIMEOUT_S=1"
    for bad in ("0", "3601", "soon"):
        r = subprocess.run([str(WORKER), "--check-config"], capture_output=True, text=True,
                           env={"PATH": os.environ.get("PATH", ""), "FCGI_READ_TIMEOUT_S": bad,
                                "DATABASE_URL": "sqlite:////nonexistent/x.db"})
        assert r.returncode == 2 and "FCGI_READ_TIMEOUT_S" in r.stderr, f"{bad}: {r.returncode} {r.stderr}"


# --------------------------------------------------------------------------------------------------
# CGI: CONTENT_LENGTH bytes of stdin (RFC 3875 4.2), within the deadline


def cgi(tmp, method, target, body, content_length, close_stdin, extra=None, timeout=10):
    """Runs the worker as a CGI program with stdin a pipe that stays open unless close_stdin;
    returns (status, body, seconds)."""
    env = {"PATH": os.environ.get("PATH", ""), "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method,
           "REQUEST_URI": target, "SCRIPT_NAME": "", "PATH_INFO": target.split("?")[0],
           "QUERY_STRING": target.partition("?")[2], "SERVER_PROTOCOL": "HTTP/1.1",
           "DATABASE_URL": f"sqlite:///{tmp}/cgi.db", "AI_CHAT_CONFIG": f"{tmp}/none.env", "AUTH": "none",
           "CONTENT_TYPE": "application/json", "FCGI_READ_TIMEOUT_S": "1", **(extra or {})}
    if content_length is not None:
        env["CONTENT_LENGTH"] = str(content_length)
    started = time.monotonic()
    p = subprocess.Popen([str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env, cwd=tmp)
    try:
        p.stdin.write(body)
        p.stdin.flush()
        if close_stdin:
            p.stdin.close()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the CGI program still runs {timeout} s after its body was sent "
                                 f"(stdin {'closed' if close_stdin else 'open'})") from None
        took = time.monotonic() - started
        out = p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if not p.stdin.closed:
            p.stdin.close()
        p.stdout.close()
    head, _, payload = out.partition(b"\r\n\r\n")
    status = int(head.split(b"Status: ", 1)[1].split(b" ", 1)[0])
    return status, payload, took


@test
def cgi_reads_content_length_bytes_with_stdin_left_open():
    # Regression: CGI mode read stdin to its end, so behind a server that keeps it open it hung.
    with tempfile.TemporaryDirectory(prefix="ai-chat-cgi-") as tmp:
        body = encode_json({"user_id": "cgi user", "title": "from CGI"})
        status, payload, took = cgi(tmp, "POST", "/chats", body + b"trailing bytes", len(body), False)
        assert status == 201 and json.loads(payload)["title"] == "from CGI", (status, payload)
        assert took < 5, f"{took:.2f} s"
        # No CONTENT_LENGTH: no body, whatever stdin holds.
        status, payload, _ = cgi(tmp, "POST", "/chats", body, None, False)
        assert status == 422 and json.loads(payload)["detail"][0]["loc"] == ["body"], (status, payload)
        # A body that stops short: cut off at the deadline (1 s here), never waited for forever.
        status, payload, took = cgi(tmp, "POST", "/chats", body[:10], len(body), False)
        assert status == 400 and json.loads(payload) == {"detail": "Request body cut off before its end"}, payload
        assert 0.8 < took < 5, f"answered after {took:.2f} s"
        # The ordinary case still works: stdin closed after the body.
        status, payload, _ = cgi(tmp, "POST", "/chats", body, len(body), True)
        assert status == 201, (status, payload)
