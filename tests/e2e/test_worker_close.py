"""How the worker ends a connection once the answer is out.

A request the web server sent whole (its input ended, nothing left unread) on a connection it does not
keep is closed at once: no lingering, so the thread goes back to its next request instead of waiting
for the web server to close its end. A request whose body was left unread (a 413 decided from its
Content-Length) keeps libfcgi's lingering close, which reads what is still coming, so the web server
never gets a reset instead of the answer. A connection the web server keeps (FCGI_KEEP_CONN) serves
its next request."""

import socket
import struct
import time

from api import new_user
from fastcgi_client import (BEGIN_REQUEST, PARAMS, RESPONDER, STDIN, _record, encode_params, read_answer,
                            socket_path)
from harness import Stack, encode_json, test

KEEP_CONN = 1


def request_bytes(method, target, body=b"", content_length=None, flags=0, end_input=True):
    env = {"REQUEST_METHOD": method, "REQUEST_URI": target, "QUERY_STRING": target.partition("?")[2],
           "SCRIPT_NAME": "", "PATH_INFO": target.partition("?")[0], "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1"}
    if body or content_length is not None:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body) if content_length is None else content_length)
    out = _record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, flags))
    out += _record(PARAMS, encode_params(env)) + _record(PARAMS, b"")
    if body:
        out += _record(STDIN, body)
    if end_input:
        out += _record(STDIN, b"")
    return out


def wait_eof(sock, within=5):
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


def write_fails(sock, tries=20):
    """Whether writing to the connection fails (the worker closed it) rather than being read."""
    for _ in range(tries):
        try:
            sock.sendall(b"\0" * 8)
        except (BrokenPipeError, ConnectionResetError):
            return True
        time.sleep(0.05)
    return False


@test
def a_whole_request_is_closed_at_once_without_lingering():
    # Regression: libfcgi shut the connection down and then waited (up to 2 s) for the web server to
    # close its end: a sleep and a wake-up of the thread on every request. The worker now closes at
    # once when the request was read whole: the end of the answer is the end of the connection, and
    # what is written after it fails. (With the lingering close the worker read it, for 2 s.)
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        status, _, chat = s.json("POST", "/chats", json={"user_id": user, "title": "closed at once"})
        assert status == 201, chat
        for method, target in (("GET", "/health"), ("GET", f"/chats/{chat['id']}?user_id={user}"),
                               ("HEAD", "/health"), ("GET", "/no/such/route")):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(socket_path(s))
                sock.sendall(request_bytes(method, target))
                status, _, body = read_answer(sock)
                want = 404 if target == "/no/such/route" else 200
                assert status == want, f"{method} {target}: {status} {body[:200]!r}"
                if method == "GET" and want == 200:
                    assert body.startswith(b"{"), body[:200]
                wait_eof(sock)
                assert write_fails(sock), f"{method} {target}: the worker still reads the connection " \
                    "after its answer (a lingering close)"
        # A POST whose body was read whole is closed at once too, and what it wrote is stored.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(socket_path(s))
            sock.sendall(request_bytes("POST", "/chats", encode_json({"user_id": user, "title": "second"})))
            status, _, body = read_answer(sock)
            assert status == 201, body[:200]
            wait_eof(sock)
            assert write_fails(sock), "POST /chats: a lingering close after a body read whole"
        status, _, chats = s.json("GET", f"/chats?user_id={user}")
        assert status == 200, chats
        assert sorted(c["title"] for c in chats["chats"]) == ["closed at once", "second"], chats


@test
def an_unread_body_keeps_the_lingering_close_and_the_answer_arrives():
    # A body refused from its Content-Length (413) is left unread: the worker answers, then reads
    # what the web server still sends until it closes, so the web server's writes never meet a
    # reset and the 413 is what it passes on.
    max_body = 4096
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2", "MAX_BODY_BYTES": str(max_body)}) as s:
        body = encode_json({"user_id": new_user(), "title": "x" * (max_body * 16)})
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(socket_path(s))
            sock.sendall(request_bytes("POST", "/chats", content_length=len(body), end_input=False))
            status, _, answer = read_answer(sock)
            assert status == 413, f"{status} {answer[:200]!r}"
            assert b'"detail"' in answer, answer[:200]
            # The body comes after the answer, as from a web server still sending it: all of it is
            # taken (the worker drains it), none of it meets a closed socket.
            sock.sendall(_record(STDIN, body) + _record(STDIN, b""))
            sock.shutdown(socket.SHUT_WR)
            wait_eof(sock)
        assert s.request("GET", "/health").status == 200


@test
def a_kept_connection_serves_its_next_request():
    # FCGI_KEEP_CONN (nginx's fastcgi_keep_conn on): the connection stays open after the answer and
    # its next request is read on it; without the flag on the last one, the worker closes it.
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(socket_path(s))
            for i in range(3):
                sock.sendall(request_bytes("POST", "/chats", encode_json({"user_id": user, "title": f"kept {i}"}),
                                           flags=KEEP_CONN))
                status, _, body = read_answer(sock)
                assert status == 201, f"request {i} on the kept connection: {status} {body[:200]!r}"
            sock.sendall(request_bytes("GET", f"/chats?user_id={user}"))
            status, _, body = read_answer(sock)
            assert status == 200, body[:200]
            wait_eof(sock)
        status, _, chats = s.json("GET", f"/chats?user_id={user}")
        assert status == 200, chats
        assert sorted(c["title"] for c in chats["chats"]) == ["kept 0", "kept 1", "kept 2"], chats
