"""CORS as browsers need it: the headers our answers carry are exposed to code on another origin, and
with a CORS_ORIGINS list every answer says it varies by Origin (a missing or refused one too)."""

from api import chat_path, create_chat, expect, new_user
from harness import Stack, default_stack, test

EXPOSED = {"x-has-more", "retry-after", "idempotent-replayed"}
A, OTHER = "https://a.example", "https://evil.example"


def tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


@test
def our_headers_are_exposed_to_other_origins():
    # Regression: no Access-Control-Expose-Headers, so browser code on another origin could not read
    # X-Has-More (paging), Retry-After (503s) or Idempotent-Replayed.
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    headers, _ = expect(s, "GET", chat_path(chat["id"], "/messages", user_id=user, newest="true"), 200,
                        headers={"Origin": OTHER})
    assert headers.get("access-control-allow-origin") == "*", headers
    assert EXPOSED <= tokens(headers.get("access-control-expose-headers")), headers
    headers, _ = expect(s, "GET", "/health", 200)   # no Origin: no CORS headers needed
    assert "access-control-expose-headers" not in headers, headers


@test
def a_list_of_origins_varies_every_answer_by_origin():
    # Regression: with CORS_ORIGINS a list, answers to a missing or refused Origin had no Vary: Origin,
    # so a cache could hand them to an allowed origin (or the reverse).
    with Stack(env={"CORS_ORIGINS": A, "WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as s:
        user = new_user()
        chat = create_chat(s, user)
        path = chat_path(chat["id"], user_id=user)
        for origin in (None, OTHER, A):
            headers, _ = expect(s, "GET", path, 200, chat, headers={"Origin": origin} if origin else {})
            assert "origin" in tokens(headers.get("vary")), f"Origin {origin!r}: no Vary: Origin: {headers}"
            if origin == A:
                assert headers.get("access-control-allow-origin") == A, headers
                assert EXPOSED <= tokens(headers.get("access-control-expose-headers")), headers
            else:
                assert not any(h.startswith("access-control-") for h in headers), headers
        resp = s.request("OPTIONS", "/chats", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"})
        assert resp.status == 400 and "origin" in tokens(resp.headers.get("vary")), resp.describe()
