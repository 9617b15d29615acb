"""CORS: every origin by default; CORS_ORIGINS restricts them (echo + Vary: Origin); preflights."""

from api import chat_path, create_chat, expect, new_user, qs
from harness import Stack, default_stack, test

A, B, OTHER = "https://a.example", "https://b.example:8443", "https://evil.example"


def tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def preflight(s, path, origin, method, request_headers=None):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    resp = s.request("OPTIONS", path, headers=headers)
    if resp.body:  # every body is JSON
        resp.data()
    return resp


def check_preflight_allowed(resp, allow_origin, method, request_headers):
    assert resp.status == 200, resp.describe()
    h = resp.headers
    assert h.get("access-control-allow-origin") == allow_origin, resp.describe()
    assert method.lower() in tokens(h.get("access-control-allow-methods")), resp.describe()
    assert tokens(request_headers) <= tokens(h.get("access-control-allow-headers")), resp.describe()
    assert h.get("access-control-max-age") == "600", resp.describe()


@test
def any_origin_by_default():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    for method, path, status in [("GET", "/health", 200), ("GET", chat_path(chat["id"], user_id=user), 200),
                                 ("GET", "/nope", 404), ("GET", "/chats", 422),
                                 ("GET", chat_path(chat["id"], user_id=new_user()), 404)]:
        headers, _ = expect(s, method, path, status, headers={"Origin": "https://anywhere.example"})
        assert headers.get("access-control-allow-origin") == "*", f"{method} {path}: {headers}"
    headers, _ = expect(s, "POST", "/chats", 201, json={"user_id": user}, headers={"Origin": OTHER})
    assert headers.get("access-control-allow-origin") == "*", headers


@test
def preflight_by_default():
    s = default_stack()
    user = new_user()
    chat = create_chat(s, user)
    for path, method, req_headers in [("/chats", "POST", "content-type"),
                                      (chat_path(chat["id"], user_id=user), "PATCH", "Content-Type, X-Custom"),
                                      (chat_path(chat["id"], user_id=user), "DELETE", None),
                                      ("/chats" + qs(user_id=user), "GET", "authorization")]:
        resp = preflight(s, path, "https://anywhere.example", method, req_headers)
        check_preflight_allowed(resp, "*", method, req_headers)
    expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)  # nothing changed


@test
def restricted_origins():
    with Stack(env={"CORS_ORIGINS": f"{A},{B}", "WORKER_PROCESSES": "1", "WORKER_THREADS": "4"}) as s:
        user = new_user()
        chat = create_chat(s, user)
        path = chat_path(chat["id"], user_id=user)
        for origin in (A, B):
            headers, _ = expect(s, "GET", path, 200, chat, headers={"Origin": origin})
            assert headers.get("access-control-allow-origin") == origin, headers
            assert "origin" in tokens(headers.get("vary")), f"no Vary: Origin: {headers}"
            check_preflight_allowed(preflight(s, "/chats", origin, "POST", "content-type"), origin, "POST",
                                    "content-type")
        for origin in (OTHER, A + "/", "https://A.example.evil", "null"):
            headers, _ = expect(s, "GET", path, 200, chat, headers={"Origin": origin})
            assert not any(h.startswith("access-control-") for h in headers), f"{origin}: {headers}"
            resp = preflight(s, "/chats", origin, "POST", "content-type")
            assert resp.status == 400, f"preflight from {origin}: {resp.describe()}"
            assert "access-control-allow-origin" not in resp.headers, resp.describe()
        headers, _ = expect(s, "GET", "/health", 200)  # no Origin, no CORS answer needed
        assert headers.get("access-control-allow-origin") in (None, A, B), headers
