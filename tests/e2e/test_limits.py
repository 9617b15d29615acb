"""Request body limits: MAX_BODY_BYTES from Content-Length or chunked bodies, nginx's backstop."""

import json

from api import (DEFAULT_MAX_BODY, check_chat_stored, count_chats, expect_jsondecode_422, new_user,
                 too_large)
from harness import Stack, assert_json_type, default_stack, encode_json, test

MiB = 1024 * 1024


def body_of_size(user, size):
    """A valid chat body of exactly size bytes (padded with an ignored field)."""
    base = len(encode_json({"user_id": user, "pad": ""}))
    body = encode_json({"user_id": user, "pad": "x" * (size - base)})
    assert len(body) == size
    return body


def chunked(body, chunk=64 * 1024):
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk]) for i in range(0, len(body), chunk)]
    return parts + [b"0\r\n\r\n"]


def post(s, body, chunk_encoding=False, content_length=None, send_body=True, timeout=30):
    """POST /chats over a raw socket; the body is sent from a thread while the response is read."""
    head = "POST /chats HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if chunk_encoding:
        head += "Transfer-Encoding: chunked\r\n"
        parts = chunked(body)
    else:
        head += f"Content-Length: {len(body) if content_length is None else content_length}\r\n"
        parts = [body]
    return s.raw((head + "\r\n").encode(), body_chunks=parts if send_body else (), timeout=timeout)


def expect_worker_413(resp, limit):
    assert resp.status == 413, resp.describe()
    assert_json_type(resp)
    assert resp.data() == too_large(limit), resp.describe()


def expect_any_413(resp):
    """The worker's 413 or nginx's backstop: JSON with a detail about the size."""
    assert resp.status == 413, resp.describe()
    assert_json_type(resp)
    detail = json.loads(resp.body).get("detail", "")
    assert detail.startswith("Request body too large"), resp.describe()


def check_limit(s, limit):
    user = new_user()
    resp = post(s, body_of_size(user, limit))
    assert resp.status == 201, f"a body of exactly {limit} bytes: {resp.describe()}"
    check_chat_stored(s, resp.data())
    other = new_user()
    expect_worker_413(post(s, body_of_size(other, limit + 1)), limit)
    expect_worker_413(post(s, body_of_size(other, limit + 1), chunk_encoding=True), limit)
    assert count_chats(s, other) == 0, "an over-limit body was stored"


@test
def default_limit_is_1_mib():
    check_limit(default_stack(), DEFAULT_MAX_BODY)


@test
def smaller_limit_setting():
    with Stack(env={"MAX_BODY_BYTES": "2048", "WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as s:
        check_limit(s, 2048)
        expect_any_413(post(s, body_of_size(new_user(), 3 * MiB)))


@test
def over_limit_is_refused_before_the_body_is_sent():
    s = default_stack()
    resp = post(s, b"", content_length=DEFAULT_MAX_BODY + 1, send_body=False, timeout=5)
    expect_worker_413(resp, DEFAULT_MAX_BODY)


@test
def far_over_limit_gets_nginx_backstop():
    s = default_stack()
    user = new_user()
    expect_any_413(post(s, body_of_size(user, 3 * MiB)))
    expect_any_413(post(s, body_of_size(user, 3 * MiB), chunk_encoding=True))
    expect_any_413(post(s, b"", content_length=3 * MiB, send_body=False, timeout=5))
    assert count_chats(s, user) == 0


@test
def chunked_body_is_accepted():
    s = default_stack()
    user = new_user()
    resp = post(s, encode_json({"user_id": user, "title": "chunked"}), chunk_encoding=True)
    assert resp.status == 201 and resp.raw.startswith(b"HTTP/1.1 201 "), resp.describe()
    chat = resp.data()
    assert chat["title"] == "chunked"
    check_chat_stored(s, chat)


@test
def body_cut_by_content_length_is_a_json_error():
    s = default_stack()
    user = new_user()
    body = encode_json({"user_id": user})
    resp = post(s, body, content_length=len(body) - 3)
    assert resp.status == 422, resp.describe()
    assert_json_type(resp)
    assert resp.data()["detail"][0]["type"] == "value_error.jsondecode", resp.describe()
    expect_jsondecode_422(s, "POST", "/chats", body=body[:-1])
    assert count_chats(s, user) == 0
