"""Status lines carry the right reason phrase, and nginx's own refusals use the right status."""

from api import create_chat, new_user
from harness import default_stack, test
from provider import shared


def status_line(resp):
    return resp.raw.split(b"\r\n", 1)[0]


@test
def conflict_has_its_reason_phrase():
    # regenerate in a chat with no user message: 409 (was "409 Unknown")
    _, s = shared()
    user = new_user()
    chat = create_chat(s, user)
    resp = s.raw(f"POST /chats/{chat['id']}/regenerate?user_id={user} HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert status_line(resp) == b"HTTP/1.1 409 Conflict", status_line(resp)
    assert resp.data() == {"detail": "The chat has no user message to answer"}, resp.raw[-200:]


@test
def headers_too_large_is_431():
    s = default_stack()
    resp = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20000 + b"\r\nConnection: close\r\n\r\n")
    assert resp.status == 431, status_line(resp)
    assert resp.data() == {"detail": "Request headers too large"}, resp.raw[-200:]
